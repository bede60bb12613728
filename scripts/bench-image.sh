#!/usr/bin/env bash
# Build the benchmark image: a Debian bookworm minbase rootfs as the base layer
# plus five layers on top (medium files, ~2000 small files with symlinks and
# hardlinks, whiteouts, an opaque directory, large assets): ~350 MB
# uncompressed, ~9k tar entries, gzip-compressed layers.
#
# Output (cached under bench/.cache/, gitignored; re-running is a no-op):
#   bench/.cache/image.docker.tar   docker-archive, Docker >= 25 layout
#                                   (blobs/sha256/, index.json, oci-layout, manifest.json)
#   bench/.cache/oci/               OCI image layout, ref "latest" (umoci, skopeo oci:)
#   bench/.cache/image.json         summary the benchmarks read (paths, digests, sizes)
#
# Layer tars are made by GNU tar (--sort=name --numeric-owner, fixed mtime,
# pax without atime/ctime) and gzip -n, so the bytes, digests and the image ID
# are the same on every build. Needs root (debootstrap).
#
# Env: STRATA_BENCH_MIRROR overrides the Debian mirror (default: the one in
#      /etc/apt/sources.list*), STRATA_BENCH_REBUILD=1 rebuilds the layers
#      (not the debootstrap rootfs).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CACHE=$REPO/bench/.cache
# Bump when the layer recipe changes: cached layers of another version are rebuilt.
RECIPE=2
MTIME=@1704067200 # 2024-01-01T00:00:00Z

log() { echo "bench-image: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root (debootstrap, file ownership)"; exit 1; }

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v gzip >/dev/null || need+=(gzip)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
tar --version | head -1 | grep -q 'GNU tar' || { log "GNU tar required"; exit 1; }

mirror() {
  if [ -n "${STRATA_BENCH_MIRROR:-}" ]; then echo "$STRATA_BENCH_MIRROR"; return; fi
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

mkdir -p "$CACHE"

# --- base rootfs ------------------------------------------------------------
ROOTFS=$CACHE/rootfs
if [ ! -f "$CACHE/rootfs.done" ]; then
  rm -rf "$ROOTFS" "$CACHE/rootfs.tmp.partial"
  if [ -d "$CACHE/rootfs.tmp" ] && grep -q '^I: Base system installed successfully' "$CACHE/debootstrap.log" 2>/dev/null; then
    log "reusing finished debootstrap in $CACHE/rootfs.tmp"
  else
    rm -rf "$CACHE/rootfs.tmp"
    log "debootstrap --variant=minbase bookworm from $(mirror) (a few minutes)"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs.tmp" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
      || { log "debootstrap failed; tail of $CACHE/debootstrap.log:"; tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  fi
  # What a published base image leaves out: package caches, apt lists, device
  # nodes (the runtime provides /dev), logs of the bootstrap itself.
  R=$CACHE/rootfs.tmp
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* \
    "$R"/var/log/* "$R"/debootstrap
  find "$R/dev" -mindepth 1 -delete
  find "$R/proc" "$R/sys" "$R/run" "$R/tmp" -mindepth 1 -delete 2>/dev/null || true
  mkdir -p "$R/var/lib/apt/lists/partial"
  mv "$R" "$ROOTFS"
  touch "$CACHE/rootfs.done"
fi

# --- layers -------------------------------------------------------------------
LAYERS=(base deps app cleanup config assets)
declare -A CREATED_BY=(
  [base]="debootstrap --variant=minbase bookworm"
  [deps]="COPY lib/ data/ /opt/app/ # 24 medium files"
  [app]="COPY src/ config/ /opt/app/ # ~2000 small files, symlinks, hardlinks"
  [cleanup]="RUN rm -rf /usr/share/doc/* /usr/share/man /opt/app/src/pkg19 /opt/app/data/table{1,3,5}.csv # whiteouts"
  [config]="RUN rm -rf /opt/app/config && COPY config-v2/ /opt/app/config/ # opaque dir"
  [assets]="COPY assets/ /opt/app/assets/ # large files"
)
L=$CACHE/layers
if [ "$(cat "$L/RECIPE" 2>/dev/null || true)" != "$RECIPE" ] || [ "${STRATA_BENCH_REBUILD:-0}" = 1 ]; then
  log "layer recipe changed (or rebuild asked): rebuilding layers"
  rm -rf "$L" "$CACHE/oci" "$CACHE/docker-archive.d" "$CACHE/image.docker.tar" "$CACHE/image.json"
fi
mkdir -p "$L"

# tar_layer NAME DIR: GNU tar of DIR's contents (names without "./"), then gzip.
tar_layer() {
  local name=$1 dir=$2 tarf=$L/$1.tar
  local -a top
  mapfile -t top < <(cd "$dir" && ls -A | LC_ALL=C sort)
  LC_ALL=C tar -C "$dir" --sort=name --numeric-owner --mtime="$MTIME" \
    --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
    --no-acls --no-selinux --no-xattrs \
    -cf "$tarf.tmp" -- "${top[@]}"
  mv "$tarf.tmp" "$tarf"
}

# finish_layer NAME: gzip, digests, sizes, entry count -> NAME.meta.json
finish_layer() {
  local name=$1 tarf=$L/$1.tar
  local diff size usize entries digest
  diff=$(sha256sum "$tarf" | cut -d' ' -f1)
  usize=$(stat -c %s "$tarf")
  entries=$(tar -tf "$tarf" | wc -l)
  gzip -n -6 -c "$tarf" >"$L/$name.tar.gz.tmp"
  mv "$L/$name.tar.gz.tmp" "$L/$name.tar.gz"
  digest=$(sha256sum "$L/$name.tar.gz" | cut -d' ' -f1)
  size=$(stat -c %s "$L/$name.tar.gz")
  rm -f "$tarf"
  CREATED_BY_V="${CREATED_BY[$name]}" node -e '
    const [name, diff, usize, entries, digest, size, gz] = process.argv.slice(1)
    process.stdout.write(JSON.stringify({ name, createdBy: process.env.CREATED_BY_V,
      diffId: "sha256:" + diff, uncompressedSize: +usize, entries: +entries,
      digest: "sha256:" + digest, size: +size, gzPath: gz }))' \
    "$name" "$diff" "$usize" "$entries" "$digest" "$size" "$L/$name.tar.gz" >"$L/$name.meta.json.tmp"
  mv "$L/$name.meta.json.tmp" "$L/$name.meta.json"
  log "layer $name: $entries entries, $((usize / 1048576)) MiB -> $((size / 1048576)) MiB gzip"
}

pids=()
for name in "${LAYERS[@]}"; do
  [ -f "$L/$name.meta.json" ] && continue
  log "building layer $name"
  if [ "$name" = base ]; then
    tar_layer base "$ROOTFS"
  else
    st=$L/$name.staging
    rm -rf "$st"; mkdir -p "$st"
    # files are created by root with a umask that makes the modes deterministic
    (umask 022; BASE_ROOTFS=$ROOTFS node "$REPO/bench/lib/image-build.js" gen "$name" "$st")
    tar_layer "$name" "$st"
    rm -rf "$st"
  fi
  # compress in the background: 2 cores, gzip is single-threaded
  finish_layer "$name" &
  pids+=($!)
  # at most two compressions at a time
  if ((${#pids[@]} >= 2)); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
printf '%s\n' "${LAYERS[@]}" | node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(0,"utf8").trim().split("\n")))' >"$L/order.json"
echo "$RECIPE" >"$L/RECIPE"

# --- image: config, OCI layout, docker-archive ----------------------------------
if [ ! -f "$CACHE/image.docker.tar" ] || [ ! -f "$CACHE/image.json" ]; then
  node "$REPO/bench/lib/image-build.js" write "$CACHE"
  (cd "$CACHE/docker-archive.d" && LC_ALL=C tar --sort=name --numeric-owner --owner=0 --group=0 --mtime="$MTIME" \
    --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
    -cf "$CACHE/image.docker.tar.tmp" blobs index.json manifest.json oci-layout)
  mv "$CACHE/image.docker.tar.tmp" "$CACHE/image.docker.tar"
  rm -rf "$CACHE/docker-archive.d"
  # verify with skopeo, when there is one
  if command -v skopeo >/dev/null; then
    for ref in "docker-archive:$CACHE/image.docker.tar" "oci-archive:$CACHE/image.docker.tar:latest" "oci:$CACHE/oci:latest"; do
      if out=$(skopeo inspect "$ref" 2>&1); then
        log "skopeo inspect $ref: ok ($(echo "$out" | node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8"));process.stdout.write(j.Layers.length+" layers, "+j.Digest)'))"
      else
        log "skopeo inspect $ref FAILED:"; echo "$out" >&2; exit 1
      fi
    done
  else
    log "skopeo not installed: skipped the skopeo check"
  fi
fi

node -e '
  const s = require(process.argv[1]); const MB = 1048576
  console.log(`${s.tag} ${s.imageId}`)
  for (const l of s.layers) console.log(`  ${l.name.padEnd(8)} ${String(l.entries).padStart(5)} entries  ${(l.uncompressedSize/MB).toFixed(1).padStart(6)} MiB  ${(l.size/MB).toFixed(1).padStart(6)} MiB gz  ${l.digest.slice(0,19)}`)
  console.log(`  total    ${String(s.totalEntries).padStart(5)} entries  ${(s.totalUncompressed/MB).toFixed(1).padStart(6)} MiB  ${(s.totalCompressed/MB).toFixed(1).padStart(6)} MiB gz`)
  console.log(`docker-archive: ${s.dockerArchive}\nOCI layout:     ${s.ociLayout} (ref ${s.ociRef})`)
' "$CACHE/image.json"
