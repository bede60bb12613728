'use strict'
// Push benchmarks: strata vs `docker push` (the private Docker Engine) vs `crane push`
// (go-containerregistry, built by scripts/peers/crane.sh at a pinned version), each into an
// empty CNCF distribution registry of its own on 127.0.0.1 (scripts/peers/registry.sh plain).
//
//   node bench/push.js [--rounds 5]      (or as a suite of bench/benchmark.js)
//
// Sections (interleaved rounds; medians and per-round ratios; one run):
//  1. pulled: the bench image as pulled from a source registry (strata keeps its compressed
//     blobs; docker keeps none and recompresses) vs crane push of the same OCI layout. The layer
//     and config digests strata pushed must equal crane's.
//  2. committed: the bench image plus a layer written in a container and committed (strata's
//     top layer never compressed: its kept blob is removed before each round) vs docker push of
//     the same commit in Docker.
// Every contender runs as a CLI process (strata's includes Node's start-up).

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { REPO, CACHE, ensureImage, run: runCmd, fmtSeconds, table, parseArgs, saveResults } = require('./lib/common')

const REGISTRY = path.join(REPO, 'scripts/peers/registry.sh')
const DOCKERD = path.join(REPO, 'scripts/peers/dockerd.sh')
const STRATA = path.join(REPO, 'bin/strata.js')

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`)
  return r.stdout
}

function startRegistry(dir) {
  const out = sh('bash', [REGISTRY, 'start', dir, 'plain'])
  return /REGISTRY=(\S+)/.exec(out)[1]
}
function stopRegistry(dir) {
  spawnSync('bash', [REGISTRY, 'stop', dir], { stdio: 'ignore' })
  fs.rmSync(dir, { recursive: true, force: true })
}

async function timed(fn) {
  const t0 = process.hrtime.bigint()
  const out = await fn()
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, out }
}

function manifestOf(host, repo, tag) {
  const r = spawnSync('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json', `http://${host}/v2/${repo}/manifests/${tag}`], { encoding: 'utf8' })
  return JSON.parse(r.stdout)
}

async function run(argv) {
  const args = parseArgs(argv)
  const rounds = Number(args.rounds ?? 5)
  const image = ensureImage()
  const layout = path.join(CACHE, 'oci')
  const crane = sh('bash', [path.join(REPO, 'scripts/peers/crane.sh')]).trim()
  const work = fs.mkdtempSync(path.join('/var/tmp', 'strata-bench-push-'))
  const dockerEnv = { ...process.env, STRATA_DOCKERD_NAME: 'strata-bench-push' }
  const dockerHost = /DOCKER_HOST=(\S+)/.exec(sh('bash', [DOCKERD, 'start'], { env: dockerEnv }))[1]
  const docker = (...a) => sh('docker', a, { env: { ...process.env, DOCKER_HOST: dockerHost } })
  const root = path.join(work, 'store')
  const strataEnv = { ...process.env, DOCKER_CONFIG: path.join(work, 'docker-config') }
  const strata = (...a) => sh(process.execPath, [STRATA, '--root', root, ...a], { env: strataEnv })
  const src = path.join(work, 'source')
  const rows = []
  const results = { rounds, image: image.name ?? 'bench', pulled: {}, committed: {} }
  try {
    // The source: the bench image's OCI layout, pushed as it is.
    const srcHost = startRegistry(src)
    sh(crane, ['push', layout, `${srcHost}/bench:latest`, '--insecure'])
    strata('pull', `${srcHost}/bench:latest`)
    docker('pull', `${srcHost}/bench:latest`)
    const pulledRef = `${srcHost}/bench:latest`

    // The committed image: the same commands in a container of each.
    const write = 'seq 1 6000000 > /numbers.txt && head -c 33554432 /dev/urandom > /random.bin && mkdir -p /many && for i in $(seq 1 2000); do echo "file $i" > /many/f$i; done'
    strata('run', '--name', 'bench-commit', pulledRef, 'sh', '-c', write)
    strata('commit', 'bench-commit', 'bench-committed:1')
    strata('rm', 'bench-commit')
    docker('run', '--name', 'bench-commit', '--network', 'none', pulledRef, 'sh', '-c', write)
    docker('commit', 'bench-commit', 'bench-committed:1')
    docker('rm', 'bench-commit')
    const committedTop = JSON.parse(strata('inspect', '--format', '{{json .RootFS.Layers}}', 'bench-committed:1')).pop()

    const samples = { pulled: { strata: [], docker: [], crane: [] }, committed: { strata: [], docker: [] } }
    for (let r = 0; r < rounds; r++) {
      // Interleaved: each contender once per round, each into an empty registry of its own.
      for (const who of r % 2 === 0 ? ['strata', 'docker', 'crane'] : ['crane', 'docker', 'strata']) {
        const dir = path.join(work, `reg-pulled-${r}-${who}`)
        const host = startRegistry(dir)
        const target = `${host}/bench:latest`
        let t
        if (who === 'strata') {
          strata('tag', pulledRef, target)
          t = await timed(() => runCmd(process.execPath, [STRATA, '--root', root, 'push', target], { env: strataEnv }))
          strata('rmi', target)
          const m = manifestOf(host, 'bench', 'latest')
          results.pulled.strataLayers = m.layers.map((l) => l.digest)
          results.pulled.strataConfig = m.config.digest
        } else if (who === 'docker') {
          docker('tag', pulledRef, target)
          t = await timed(() => runCmd('docker', ['push', target], { env: { ...process.env, DOCKER_HOST: dockerHost } }))
          docker('rmi', target)
        } else {
          t = await timed(() => runCmd(crane, ['push', layout, target, '--insecure']))
          const m = manifestOf(host, 'bench', 'latest')
          results.pulled.craneLayers = m.layers.map((l) => l.digest)
          results.pulled.craneConfig = m.config.digest
        }
        samples.pulled[who].push(t.s)
        stopRegistry(dir)
      }
      for (const who of r % 2 === 0 ? ['strata', 'docker'] : ['docker', 'strata']) {
        const dir = path.join(work, `reg-committed-${r}-${who}`)
        const host = startRegistry(dir)
        const target = `${host}/committed:1`
        let t
        if (who === 'strata') {
          // Never compressed before: forget the blob an earlier round kept.
          forgetKeptBlob(root, committedTop)
          strata('tag', 'bench-committed:1', target)
          t = await timed(() => runCmd(process.execPath, [STRATA, '--root', root, 'push', target], { env: strataEnv }))
          strata('rmi', target)
        } else {
          docker('tag', 'bench-committed:1', target)
          t = await timed(() => runCmd('docker', ['push', target], { env: { ...process.env, DOCKER_HOST: dockerHost } }))
          docker('rmi', target)
        }
        samples.committed[who].push(t.s)
        stopRegistry(dir)
      }
      process.stderr.write(`round ${r + 1}/${rounds} done\n`)
    }
    stopRegistry(src)

    const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2 }
    const med = (xs) => median(xs)
    const perRound = (a, b) => median(a.map((x, i) => b[i] / x))
    const p = samples.pulled
    const c = samples.committed
    results.samples = samples
    results.identicalDigests = JSON.stringify(results.pulled.strataLayers) === JSON.stringify(results.pulled.craneLayers) && results.pulled.strataConfig === results.pulled.craneConfig
    rows.push(['push of a pulled image', 'strata push', fmtSeconds(med(p.strata)), 'baseline', ''])
    rows.push(['', 'docker push', fmtSeconds(med(p.docker)), `${(med(p.docker) / med(p.strata)).toFixed(2)}× slower`, `${perRound(p.strata, p.docker).toFixed(2)}× per round`])
    rows.push(['', 'crane push (OCI layout)', fmtSeconds(med(p.crane)), `strata = ${(med(p.strata) / med(p.crane)).toFixed(2)}× crane`, `${(1 / perRound(p.strata, p.crane)).toFixed(2)}× per round`])
    rows.push(['push of a committed image', 'strata push', fmtSeconds(med(c.strata)), 'baseline', ''])
    rows.push(['', 'docker push', fmtSeconds(med(c.docker)), `${(med(c.docker) / med(c.strata)).toFixed(2)}× slower`, `${perRound(c.strata, c.docker).toFixed(2)}× per round`])
    console.log(table([['section', 'contender', 'median wall', 'vs strata (medians)', 'per-round median ratio'], ...rows]))
    console.log(`layer and config digests strata pushed = crane's: ${results.identicalDigests ? 'yes' : 'NO'}`)
    saveResults('push', results)
  } finally {
    for (const n of ['bench-commit']) {
      spawnSync(process.execPath, [STRATA, '--root', root, 'rm', '-f', n], { stdio: 'ignore', env: strataEnv })
      spawnSync('docker', ['rm', '-f', n], { stdio: 'ignore', env: { ...process.env, DOCKER_HOST: dockerHost } })
    }
    stopRegistry(src)
    sh('bash', [DOCKERD, 'stop'], { env: dockerEnv })
    fs.rmSync(work, { recursive: true, force: true })
  }
}

/** Removes the compressed blob strata kept for a layer (by DiffID) and the layer's record of it. */
function forgetKeptBlob(root, diffId) {
  const layerdb = path.join(root, 'image/overlay2/layerdb/sha256')
  for (const chain of fs.readdirSync(layerdb)) {
    const dir = path.join(layerdb, chain)
    if (fs.readFileSync(path.join(dir, 'diff'), 'utf8').trim() !== diffId) continue
    const cd = path.join(dir, 'compressed-digest')
    if (!fs.existsSync(cd)) continue
    const digest = fs.readFileSync(cd, 'utf8').trim()
    fs.rmSync(cd)
    fs.rmSync(path.join(root, 'content/blobs/sha256', digest.slice(7)), { force: true })
  }
}

module.exports = { name: 'push', description: 'push the benchmark image (pulled, and with a committed layer) to empty local registries: strata vs docker push and crane push', run }

if (require.main === module) {
  run(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1) })
}
