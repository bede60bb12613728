#!/usr/bin/env bash
# npm test: Rust tests, clippy, TypeScript type check, then the ava suite against real
# kernels and peers. Ends with one line `N passed, N failed` over everything it ran.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -d)
passed=0; failed=0; skipped=0; rc=0

echo "== cargo test"
cargo test --release --workspace 2>&1 | tee "$log/cargo.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
while read -r p f i; do
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + i))
done < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$log/cargo.txt")

echo "== cargo clippy"
if cargo clippy --release --workspace --all-targets -q -- -D warnings 2>&1 | tee "$log/clippy.txt"; then
  passed=$((passed + 1))
else
  echo "clippy: FAILED"; failed=$((failed + 1)); rc=1
fi

echo "== test addon (crates/strata-testing -> native/testing/)"
start=$(date +%s)
if npm run --silent build:testing 2>&1 | tee "$log/testing.txt"; [ "${PIPESTATUS[0]}" = 0 ]; then
  echo "test addon: built in $(($(date +%s) - start)) s"
else
  echo "test addon: FAILED"; failed=$((failed + 1)); rc=1
fi

echo "== tsc --noEmit"
if npx tsc -p tsconfig.test.json 2>&1 | tee "$log/tsc.txt"; [ "${PIPESTATUS[0]}" = 0 ]; then
  passed=$((passed + 1))
else
  echo "tsc: FAILED"; failed=$((failed + 1)); rc=1
fi

echo "== ava"
npx ava --tap "$@" 2>&1 | tee "$log/ava.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
ap=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$log/ava.txt" | tail -1)
af=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$log/ava.txt" | tail -1)
as=$(sed -nE 's/^# skip ([0-9]+)$/\1/p' "$log/ava.txt" | tail -1)
passed=$((passed + ${ap:-0})); failed=$((failed + ${af:-0})); skipped=$((skipped + ${as:-0}))
if [ -z "$ap" ] && [ -z "$af" ]; then echo "ava: no summary (crashed?)"; failed=$((failed + 1)); rc=1; fi

rm -rf "$log"
echo
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $rc
