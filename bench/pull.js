'use strict'
// Pulling the benchmark image (scripts/bench-image.sh: 6 gzip layers, ~350 MB) from the
// distribution registry on 127.0.0.1 (scripts/peers/registry.sh, same disk), after Docker pushed
// it there, into a fresh, empty target:
//
//   strata Store.pull        new store root, pull, close (download + verify + extract + metadata)
//   docker pull              private dockerd (scripts/peers/dockerd.sh); docker rmi between (untimed)
//   skopeo copy              docker://… → oci:DIR (download + verify, no extraction)
//   crane pull               --format oci (download + verify, no extraction); built with
//                            `go install github.com/google/go-containerregistry/cmd/crane@CRANE_VERSION`
//   strata Store.load        the same image from its OCI layout on local disk (no network)
//
// Interleaved rounds (each runs every contender once, in rotated order), medians of the rounds and
// per-round ratios. Every round writes into fresh dirs that are deleted only at the end; the
// engine's `docker rmi` between rounds deletes files, so on ext4 without a journal the next round
// waits for them to age out (see settleDefault()).
// Then three single measurements through a counting proxy: an up-to-date pull (requests made),
// a pull whose largest blob is cut at half (bytes of that blob fetched in total), and a 1 GiB
// single-layer image (peak RSS of the pulling process).
//
//   node bench/pull.js [--iterations 5] [--warmup 1] [--settle S] [--peers strata,docker,skopeo,crane,load] [--no-big]

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const crypto = require('node:crypto')
const { spawnSync } = require('node:child_process')
const c = require('./lib/common')

const MB = 1024 * 1024
const CRANE_VERSION = 'v0.20.2' // as pinned in scripts/peers/crane.sh
const REG = path.join(c.REPO, 'scripts/peers/registry.sh')
const DOCKERD = path.join(c.REPO, 'scripts/peers/dockerd.sh')

/** crane, from the one script that installs it (scripts/peers/crane.sh: pinned version, bench/.cache/go/bin). */
function crane() {
  const r = spawnSync('bash', [path.join(c.REPO, 'scripts/peers/crane.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  return r.status === 0 ? r.stdout.trim() : null
}

/** A forwarding proxy that counts requests and body bytes per path, and can cut one response. */
function countingProxy(upstream) {
  const log = []
  let cut = null
  const server = http.createServer((req, res) => {
    const e = { method: req.method, path: req.url, bytes: 0, range: req.headers.range }
    log.push(e)
    const [host, port] = upstream.split(':')
    const up = http.request({ host, port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream } }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers)
      const limit = cut && req.url.endsWith(cut.digest) && !cut.done ? cut.after : Infinity
      ur.on('data', (d) => {
        if (e.bytes + d.length >= limit) {
          cut.done = true
          res.write(d.subarray(0, limit - e.bytes), () => res.socket.destroy())
          e.bytes = limit
          ur.destroy()
          return
        }
        e.bytes += d.length
        res.write(d)
      })
      ur.on('end', () => res.end())
    })
    up.on('error', () => res.socket?.destroy())
    req.pipe(up)
  })
  return {
    log, server,
    cutOnce(digest, after) { cut = { digest, after, done: false } },
    start: () => new Promise((r) => server.listen(0, '127.0.0.1', () => r(`127.0.0.1:${server.address().port}`))),
    stop: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)) },
  }
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-4).join(' | ')}`)
  return r.stdout
}

const median = (xs) => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }

/** A 1 GiB single-layer image (uncompressed tar of incompressible data) as an OCI layout. */
function bigImage(dir) {
  const layout = path.join(dir, 'big-oci')
  if (fs.existsSync(path.join(layout, 'index.json'))) return layout
  fs.mkdirSync(path.join(layout, 'blobs/sha256'), { recursive: true })
  const src = path.join(dir, 'big-src')
  fs.mkdirSync(src, { recursive: true })
  sh('sh', ['-c', `head -c ${1 << 30} /dev/urandom > ${src}/blob.bin`])
  const tarFile = path.join(dir, 'big.tar')
  sh('tar', ['--numeric-owner', '-cf', tarFile, '-C', src, 'blob.bin'])
  fs.rmSync(src, { recursive: true })
  const digest = sh('sha256sum', [tarFile]).split(' ')[0]
  const size = fs.statSync(tarFile).size
  fs.renameSync(tarFile, path.join(layout, 'blobs/sha256', digest))
  const put = (obj) => { const b = Buffer.from(JSON.stringify(obj)); const d = crypto.createHash('sha256').update(b).digest('hex'); fs.writeFileSync(path.join(layout, 'blobs/sha256', d), b); return { digest: `sha256:${d}`, size: b.length } }
  const config = put({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${digest}`] }, config: {} })
  const manifest = put({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${digest}`, size }] })
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }))
  fs.writeFileSync(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  return layout
}

async function run(argv = []) {
  const opts = c.parseArgs(argv)
  const iterations = opts.iterations ?? 5
  const warmup = opts.warmup ?? 1
  const only = opts.peers ? String(opts.peers).split(',') : null
  const work = path.resolve(process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work'))
  const img = c.ensureImage()
  fs.mkdirSync(work, { recursive: true })
  const settleSeconds = opts.settle ?? c.settleDefault(work) // findmnt needs the dir to exist
  const { Store } = require(path.join(c.strataPkg(), 'dist/ts/index.js'))

  // The registry, and the image pushed to it by Docker.
  const regDir = path.join(work, 'registry')
  fs.rmSync(regDir, { recursive: true, force: true })
  const host = /REGISTRY=(\S+)/.exec(sh('bash', [REG, 'start', regDir, 'plain']))[1]
  const dockerHost = /DOCKER_HOST=(\S+)/.exec(sh('bash', [DOCKERD, 'start']))[1]
  const denv = { ...process.env, DOCKER_HOST: dockerHost }
  const ref = `${host}/bench/debian:latest`
  const craneBin = !only || only.includes('crane') ? crane() : null
  try {
    sh('docker', ['load', '-q', '-i', img.dockerArchive], { env: denv })
    sh('docker', ['tag', img.tag, ref], { env: denv })
    sh('docker', ['push', ref], { env: denv })
    sh('docker', ['rmi', '-f', img.imageId], { env: denv })
    const dockerVersion = sh('docker', ['version', '--format', '{{.Server.Version}}'], { env: denv }).trim()

    // The engine does the pull's work in the daemon (and the unpigz it waits for): its CPU counts.
    const dockerdPid = Number(fs.readFileSync(`/run/${process.env.STRATA_DOCKERD_NAME || 'strata-bench-docker'}.pid`, 'utf8').trim())
    const contenders = [
      { key: 'strata', label: 'strata Store.pull', once: async (dir) => {
        const s = await Store.open({ root: path.join(dir, 'root') })
        try { await s.pull(ref) } finally { await s.close() }
      } },
      { key: 'docker', label: `docker pull (engine ${dockerVersion})`, once: async () => { sh('docker', ['pull', '-q', ref], { env: denv }) },
        daemonCpu: () => c.cpuSeconds(dockerdPid) ?? 0,
        after: async () => { spawnSync('docker', ['rmi', '-f', ref], { env: denv }) } },
      { key: 'skopeo', label: 'skopeo copy → oci: (no extraction)', once: async (dir) => { sh('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${path.join(dir, 'oci')}:latest`]) } },
      ...(craneBin ? [{ key: 'crane', label: `crane pull ${CRANE_VERSION} --format oci (no extraction)`, once: async (dir) => { sh(craneBin, ['pull', '--insecure', '--format', 'oci', ref, path.join(dir, 'oci')]) } }] : []),
      { key: 'load', label: 'strata Store.load of the OCI layout (local disk)', once: async (dir) => {
        const s = await Store.open({ root: path.join(dir, 'root') })
        try { await s.load(img.ociLayout) } finally { await s.close() }
      } },
    ].filter((ct) => !only || only.includes(ct.key))

    console.log(`pull: ${ref} (${img.imageId.slice(0, 19)}), ${img.layers.length} gzip layers, ${(img.totalCompressed / MB).toFixed(1)} MiB compressed, ` +
      `${(img.totalUncompressed / MB).toFixed(1)} MiB uncompressed; ${iterations} timed rounds + ${warmup} warm-up; ${settleSeconds} s settle; load average ${os.loadavg()[0].toFixed(2)}`)
    const samples = new Map(contenders.map((ct) => [ct.key, []]))
    // CPU seconds: this process and the children it waited for (skopeo, crane, the docker CLI),
    // plus the daemon's for docker. The registry's own CPU is the same for all and not counted.
    const cpu = new Map(contenders.map((ct) => [ct.key, []]))
    const cpuNow = (ct) => c.cpuSeconds() + (ct.daemonCpu ? ct.daemonCpu() : 0)
    for (let round = 0; round < warmup + iterations; round++) {
      const order = contenders.map((_, i) => contenders[(i + round) % contenders.length])
      for (const ct of order) {
        const dir = path.join(work, `pull-${ct.key}`, `round${round}`)
        fs.mkdirSync(dir, { recursive: true })
        spawnSync('sync')
        const c0 = cpuNow(ct)
        const t0 = process.hrtime.bigint()
        await ct.once(dir)
        const s = Number(process.hrtime.bigint() - t0) / 1e9
        const used = cpuNow(ct) - c0
        if (round >= warmup) { samples.get(ct.key).push(s); cpu.get(ct.key).push(used) }
        process.stderr.write(`  ${ct.key} ${round < warmup ? 'warm-up' : `#${round - warmup + 1}`}: ${c.fmtSeconds(s)} (cpu ${used.toFixed(2)} s, load ${os.loadavg()[0].toFixed(1)})\n`)
      }
      // Each round's targets stay until the end (every round writes into fresh, never-deleted
      // dirs); only the engine must forget the image between rounds, and its deletions age
      // out before the next round (see settleDefault()).
      for (const ct of order) if (ct.after) await ct.after()
      if (round + 1 < warmup + iterations && contenders.some((ct) => ct.after)) await c.settle(settleSeconds)
    }
    for (const ct of contenders) await c.run('rm', ['-rf', path.join(work, `pull-${ct.key}`)])
    const base = samples.get('strata')
    const baseCpu = cpu.get('strata')
    const rows = [['contender', 'n', 'median', 'min', 'CPU (median)', 'vs strata pull (per-round median)', 'CPU vs strata pull (median)']]
    for (const ct of contenders) {
      const xs = samples.get(ct.key)
      const cs = cpu.get(ct.key)
      const ratio = base && ct.key !== 'strata' ? median(xs.map((x, i) => x / base[i])) : null
      const cratio = baseCpu && ct.key !== 'strata' ? median(cs.map((x, i) => x / baseCpu[i])) : null
      rows.push([ct.label, String(xs.length), c.fmtSeconds(median(xs)), c.fmtSeconds(Math.min(...xs)), c.fmtSeconds(median(cs)),
        ct.key === 'strata' ? 'baseline' : ratio ? `${ratio.toFixed(2)}x` : '', ct.key === 'strata' ? 'baseline' : cratio ? `${cratio.toFixed(2)}x` : ''])
    }
    console.log(c.table(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r']))
    const extra = {}

    // Up to date: one manifest request, no blob request.
    const proxy = countingProxy(host)
    const phost = await proxy.start()
    try {
      const root = path.join(work, 'pull-uptodate')
      const s = await Store.open({ root })
      await s.pull(`${phost}/bench/debian:latest`)
      proxy.log.length = 0
      await s.pull(`${phost}/bench/debian:latest`)
      await s.close()
      const manifests = proxy.log.filter((e) => e.path.includes('/manifests/')).length
      const blobs = proxy.log.filter((e) => e.path.includes('/blobs/')).length
      extra.upToDate = { manifests, blobs, requests: proxy.log.length }
      console.log(`up-to-date pull: ${manifests} manifest request(s), ${blobs} blob request(s), ${proxy.log.length} request(s) in all`)
      fs.rmSync(root, { recursive: true, force: true })

      // Resume: the largest blob (of the manifest Docker pushed: its own gzip) cut at half once.
      const manifest = await new Promise((resolve, reject) => {
        http.get({ host: host.split(':')[0], port: host.split(':')[1], path: '/v2/bench/debian/manifests/latest', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } }, (res) => {
          const chunks = []
          res.on('data', (d) => chunks.push(d))
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())))
        }).on('error', reject)
      })
      const largest = manifest.layers.map((l) => ({ digest: l.digest, compressedSize: l.size })).reduce((a, l) => (l.compressedSize > a.compressedSize ? l : a))
      proxy.log.length = 0
      proxy.cutOnce(largest.digest, Math.floor(largest.compressedSize / 2))
      const s2 = await Store.open({ root })
      await s2.pull(`${phost}/bench/debian:latest`)
      await s2.close()
      const bytes = proxy.log.filter((e) => e.path.endsWith(largest.digest)).reduce((a, e) => a + e.bytes, 0)
      extra.resume = { blob: largest.digest, size: largest.compressedSize, fetched: bytes, ratio: bytes / largest.compressedSize }
      console.log(`resume: largest blob ${(largest.compressedSize / MB).toFixed(1)} MiB cut at half: ${(bytes / MB).toFixed(1)} MiB fetched in all = ${(bytes / largest.compressedSize).toFixed(3)}x its size`)
      fs.rmSync(root, { recursive: true, force: true })
    } finally {
      await proxy.stop()
    }

    // 1 GiB single layer: peak RSS of a process that only pulls it.
    if (!opts['no-big']) {
      const layout = bigImage(c.CACHE)
      sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${host}/big:1`])
      const root = path.join(work, 'pull-big')
      const script = `const {Store}=require(${JSON.stringify(path.join(c.strataPkg(), 'dist/ts/index.js'))});(async()=>{const s=await Store.open({root:${JSON.stringify(root)}});const t=Date.now();await s.pull(${JSON.stringify(`${host}/big:1`)});await s.close();const hwm=/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status','utf8'))[1];console.log(JSON.stringify({ms:Date.now()-t,hwmKiB:Number(hwm)}))})()`
      const out = JSON.parse(sh(process.execPath, ['-e', script]).trim().split('\n').pop())
      extra.big = out
      console.log(`1 GiB single-layer pull: ${(out.ms / 1000).toFixed(1)} s, peak RSS ${(out.hwmKiB / 1024).toFixed(0)} MiB`)
      fs.rmSync(root, { recursive: true, force: true })
    }
    const file = c.saveResults('pull', { image: img, ref, iterations, warmup, settle: settleSeconds, date: new Date().toISOString(), loadavgEnd: os.loadavg(), samples: Object.fromEntries(samples), cpu: Object.fromEntries(cpu), extra })
    console.log(`results: ${path.relative(process.cwd(), file)}`)
  } finally {
    spawnSync('docker', ['rmi', '-f', ref, img.tag], { env: denv })
    spawnSync('bash', [REG, 'stop', regDir])
    spawnSync('bash', [DOCKERD, 'stop'], { stdio: 'ignore' })
    fs.rmSync(regDir, { recursive: true, force: true })
  }
}

module.exports = { name: 'pull', description: 'pull the benchmark image from a local registry: strata vs docker pull, skopeo, crane, strata load', run }

if (require.main === module) {
  run(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1) })
}
