#!/usr/bin/env bash
# Run the benchmarks at raised CPU and I/O priority, so other work on a shared
# 2-core machine (cargo builds of other sessions) disturbs them less. Everything
# the suites start inherits it: tar, umoci, the docker CLI, the private dockerd
# that bench/load.js starts (stop a dockerd you started yourself first, or it
# runs at its own priority), and strata's worker threads.
#
#   scripts/bench-run.sh [benchmark.js args]      e.g. --only load --iterations 3
# Env: STRATA_BENCH_NICE (default -15).
set -euo pipefail
cd "$(dirname "$0")/.."
NICE=${STRATA_BENCH_NICE:--15}
if [ "$(id -u)" != 0 ]; then
  echo "bench-run: not root; running at normal priority" >&2
  npm run --silent build:testing
  exec node bench/benchmark.js "$@"
fi
[ -f bench/.cache/image.json ] || bash scripts/bench-image.sh
# bench/union.js mounts its stacks with the test addon (native/testing/).
npm run --silent build:testing
exec nice -n "$NICE" ionice -c 2 -n 0 node bench/benchmark.js "$@"
