'use strict'
// Loading the benchmark image (scripts/bench-image.sh: 6 gzip layers, ~350 MB,
// ~9k entries, whiteouts and an opaque dir) into a fresh, empty target:
//
//   strata Store.load        open a new store root, load the docker-archive, close
//   strata CLI               node bin/strata.js --root ROOT load -i FILE
//   docker load -i           private dockerd (scripts/peers/dockerd.sh), overlay2;
//                            docker rmi between iterations (untimed)
//   umoci unpack             --image OCI-DIR:latest BUNDLE (applies whiteouts, writes an mtree)
//   tar -xzf (sequential)    GNU tar, each layer in turn into one dir (whiteouts stay plain files)
//   tar -xzf (parallel)      GNU tar, every layer at once, one dir per layer
//   node-tar (sequential)    tar.x() per layer into one dir
//   node-tar (parallel)      tar.x() for every layer at once, one dir per layer
//
// Every contender reads the same inputs, which are read once beforehand so they
// sit in the page cache for all alike. Each iteration starts from an empty target
// after an untimed `sync`, so one contender's writeback does not land on the next; targets
// live in a directory of the run's own (never used before) and are removed when the run ends;
// the engine's rmi runs at the end of each round, and on ext4 without a journal the next round
// waits 61 s after it (--settle; see settleDefault() in lib/common.js).
// Timing is plain repeated wall-clock timing (process.hrtime), round-robin over the
// contenders, with untimed set-up and
// tear-down per iteration: benchmark.js has no untimed per-iteration tear-down for
// multi-second asynchronous operations (its setup/teardown are per cycle).
//
//   node bench/load.js [--iterations 5] [--warmup 1] [--budget 480] [--settle S] [--peers strata,docker,...] [--keep]
//   (rounds: each runs every contender once, in rotated order; --budget: seconds after
//    which no new round starts once 3 timed rounds are done;
//    --peers keys: strata strata-cli docker umoci tar tar-parallel node-tar node-tar-parallel)
// Env: STRATA_PKG (strata package root, default ..), STRATA_BENCH_WORK (scratch dir,
//      default bench/.cache/work), STRATA_BENCH_DOCKER_HOST (use this daemon instead of
//      starting scripts/peers/dockerd.sh; it must hold no other images).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const c = require('./lib/common')

const MB = 1024 * 1024

function contenders(img, work) {
  const pkg = c.strataPkg()
  const layers = img.layers.map((l) => l.path)
  const mk = (d) => { fs.mkdirSync(d, { recursive: true }); return d }
  let dockerHost = null
  let dockerStartedByUs = false

  return [
    {
      key: 'strata',
      label: 'strata Store.load',
      async available() {
        const r = c.tryRequireStrata('dist/ts/index.js')
        if (r.why) return r.why
        if (typeof r.mod.Store?.open !== 'function') return `${pkg}/dist/ts/index.js has no Store.open`
        this.Store = r.mod.Store
        return null
      },
      async once(dir) {
        const store = await this.Store.open({ root: path.join(dir, 'root') })
        try {
          const res = await store.load(img.dockerArchive)
          const ids = (res?.images || []).map((i) => i.id)
          if (!ids.includes(img.imageId)) throw new Error(`loaded images ${JSON.stringify(ids)}, expected ${img.imageId}`)
        } finally {
          await store.close()
        }
      },
    },
    {
      key: 'strata-cli',
      label: 'strata CLI load -i',
      async available() {
        const bin = path.join(pkg, 'bin/strata.js')
        if (!fs.existsSync(bin)) return `${bin} does not exist`
        if (!fs.existsSync(path.join(pkg, 'dist/ts/index.js'))) return `${pkg}/dist/ts/index.js does not exist (not built)`
        this.bin = bin
        return null
      },
      async once(dir) {
        await c.run(process.execPath, [this.bin, '--root', path.join(dir, 'root'), 'load', '-i', img.dockerArchive])
      },
    },
    {
      key: 'docker',
      label: 'docker load -i',
      async available() {
        if (!c.which('docker')) return 'docker CLI not installed (apt-get install docker.io)'
        if (process.env.STRATA_BENCH_DOCKER_HOST) {
          dockerHost = process.env.STRATA_BENCH_DOCKER_HOST
        } else {
          if (process.getuid() !== 0) return 'needs root to start a private dockerd'
          const st = spawnSync('bash', [path.join(c.REPO, 'scripts/peers/dockerd.sh'), 'status'], { encoding: 'utf8' })
          const r = spawnSync('bash', [path.join(c.REPO, 'scripts/peers/dockerd.sh'), 'start'], { encoding: 'utf8' })
          if (r.status !== 0) return `scripts/peers/dockerd.sh start failed: ${(r.stderr || '').trim().split('\n').slice(-6).join(' | ')}`
          dockerStartedByUs = st.status !== 0
          dockerHost = (r.stdout.match(/DOCKER_HOST=(\S+)/) || [])[1]
          if (!dockerHost) return `scripts/peers/dockerd.sh start printed no DOCKER_HOST: ${r.stdout}`
        }
        this.env = { ...process.env, DOCKER_HOST: dockerHost }
        const v = await c.run('docker', ['version', '--format', '{{.Server.Version}} {{.Client.Version}}'], { env: this.env, allowFail: true })
        if (v.code !== 0) return `docker daemon at ${dockerHost} does not answer: ${v.stderr.trim()}`
        const [server, client] = v.stdout.trim().split(' ')
        const drv = (await c.run('docker', ['info', '--format', '{{.Driver}}'], { env: this.env })).stdout.trim()
        this.label = `docker load -i (engine ${server}, ${drv})`
        this.note = `client ${client}, DOCKER_HOST=${dockerHost}`
        await this.clean()
        const left = (await c.run('docker', ['images', '-aq'], { env: this.env })).stdout.trim()
        if (left) return `daemon at ${dockerHost} holds other images; the target would not be empty`
        return null
      },
      cpuPids() {
        // the work of a load happens in dockerd (and the docker-untar children it waits for)
        const pidfile = '/run/strata-bench-docker.pid'
        if (process.env.STRATA_BENCH_DOCKER_HOST || !fs.existsSync(pidfile)) return [null]
        return [fs.readFileSync(pidfile, 'utf8').trim()]
      },
      async clean() {
        await c.run('docker', ['rmi', '-f', img.imageId], { env: this.env, allowFail: true })
      },
      async once() {
        const r = await c.run('docker', ['load', '-q', '-i', img.dockerArchive], { env: this.env })
        if (!r.stdout.includes(img.tag)) throw new Error(`docker load said: ${r.stdout.trim()}`)
      },
      async after() { await this.clean() },
      async finish() {
        if (dockerStartedByUs) spawnSync('bash', [path.join(c.REPO, 'scripts/peers/dockerd.sh'), 'stop'], { stdio: 'ignore' })
      },
    },
    {
      key: 'umoci',
      label: 'umoci unpack',
      async available() {
        if (!c.which('umoci')) return 'umoci not installed (apt-get install umoci)'
        if (process.getuid() !== 0) return 'not root: would need umoci --rootless, which measures something else'
        const v = (await c.run('umoci', ['--version'])).stdout.trim().replace(/^umoci version /, '')
        this.label = `umoci unpack (${v})`
        return null
      },
      async once(dir) {
        await c.run('umoci', ['unpack', '--image', `${img.ociLayout}:${img.ociRef}`, path.join(dir, 'bundle')])
      },
    },
    {
      key: 'tar',
      label: 'tar -xzf, sequential',
      async available() {
        if (!c.which('tar') || !c.which('gzip')) return 'GNU tar or gzip not installed'
        const v = (await c.run('tar', ['--version'])).stdout.split('\n')[0]
        if (!/GNU tar/.test(v)) return `not GNU tar: ${v}`
        this.label = `GNU tar -xzf, layers in turn, one dir (${v.replace(/^tar \(GNU tar\) /, '')})`
        return null
      },
      async once(dir) {
        const out = mk(path.join(dir, 'rootfs'))
        for (const l of layers) await c.run('tar', ['--numeric-owner', '-xzf', l, '-C', out])
      },
    },
    {
      key: 'tar-parallel',
      label: 'GNU tar -xzf, all layers at once, dir per layer',
      async available() {
        if (!c.which('tar') || !c.which('gzip')) return 'GNU tar or gzip not installed'
        return null
      },
      async once(dir) {
        await Promise.all(layers.map((l, i) => c.run('tar', ['--numeric-owner', '-xzf', l, '-C', mk(path.join(dir, `l${i}`))])))
      },
    },
    {
      key: 'node-tar',
      label: 'node-tar x(), layers in turn, one dir',
      async available() {
        try {
          this.tar = require('tar')
          this.label = `node-tar ${require('tar/package.json').version} x(), layers in turn, one dir`
          return null
        } catch (e) {
          return `require('tar') failed: ${e.message.split('\n')[0]}`
        }
      },
      async once(dir) {
        const out = mk(path.join(dir, 'rootfs'))
        for (const l of layers) await this.tar.x({ file: l, cwd: out })
      },
    },
    {
      key: 'node-tar-parallel',
      label: 'node-tar x(), all layers at once, dir per layer',
      async available() {
        try { this.tar = require('tar'); return null } catch (e) { return `require('tar') failed: ${e.message.split('\n')[0]}` }
      },
      async once(dir) {
        await Promise.all(layers.map((l, i) => this.tar.x({ file: l, cwd: mk(path.join(dir, `l${i}`)) })))
      },
    },
  ]
}

// One timed iteration of one contender in a fresh, empty dir.
async function timeOnce(ct, dir) {
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  spawnSync('sync')
  const cpu = () => {
    const self = c.cpuSeconds()
    const extra = ct.cpuPids ? ct.cpuPids().map((p) => c.cpuSeconds(p)) : []
    return extra.includes(null) || self === null ? null : extra.reduce((a, b) => a + b, self)
  }
  const cpu0 = cpu()
  const t0 = process.hrtime.bigint()
  await ct.once(dir)
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu1 = cpu()
  return { wall, cpu: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0 }
}

const median = (xs) => { const s = [...xs].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }

async function run(argv = []) {
  const opts = c.parseArgs(argv)
  const iterations = opts.iterations ?? 5
  const warmup = opts.warmup ?? 1
  const budget = opts.budget ?? 480
  const only = opts.peers ? String(opts.peers).split(',') : null
  const settleSeconds = opts.settle ?? c.settleDefault(path.resolve(process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work')))
  const img = c.ensureImage()
  const workRoot = path.resolve(process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work'))
  fs.mkdirSync(workRoot, { recursive: true })
  // A directory of this run's own, never used before: every round's targets go in it and stay
  // until the run ends. A target dir reused from a run that just deleted its ~9k files sits
  // in the ext4 group those frees left behind, and creates there cost several times the
  // system time (measured: the same Store.load took 2.0-3.2 s of system time in a just-emptied
  // bench/.cache/work/strata, 0.5 s in a new dir beside it).
  const work = fs.mkdtempSync(path.join(workRoot, 'load-'))

  const inputs = [img.dockerArchive, ...img.layers.map((l) => l.path),
    ...fs.readdirSync(path.join(img.ociLayout, 'blobs/sha256')).map((f) => path.join(img.ociLayout, 'blobs/sha256', f))]

  console.log(`load: ${img.tag} ${img.imageId.slice(0, 19)}: ${img.layers.length} gzip layers, ` +
    `${(img.totalUncompressed / MB).toFixed(1)} MiB uncompressed, ${(img.totalCompressed / MB).toFixed(1)} MiB compressed, ` +
    `${img.totalEntries} tar entries; ${iterations} timed rounds + ${warmup} warm-up, fresh empty target every time; ` +
    `work dir ${work}; ${settleSeconds} s settle between rounds${settleSeconds ? ' (ext4 without a journal)' : ''}; ` +
    `load average ${os.loadavg()[0].toFixed(2)}`)

  const results = []
  const active = []
  for (const ct of contenders(img, work)) {
    if (only && !only.includes(ct.key)) continue
    let why
    try { why = await ct.available() } catch (e) { why = `probe failed: ${e.message}` }
    if (why) {
      results.push({ key: ct.key, label: ct.label, unavailable: why })
      process.stderr.write(`  ${ct.key}: not available: ${why}\n`)
      if (ct.finish) await ct.finish()
      continue
    }
    active.push(ct)
    results.push({ key: ct.key, label: ct.label, note: ct.note })
  }

  // Round-robin: every round runs each contender once (in a rotated order), so load
  // from elsewhere on the machine falls on all of them alike and per-round ratios
  // can be taken.
  await c.warm(inputs)
  const samples = new Map(active.map((ct) => [ct.key, []]))
  const cpus = new Map(active.map((ct) => [ct.key, []]))
  const failed = new Map()
  const start = Date.now()
  try {
    for (let round = 0; round < warmup + iterations; round++) {
      if (round >= warmup + 3 && (Date.now() - start) / 1000 > budget) {
        process.stderr.write(`  ${budget} s budget spent: stopping after ${round - warmup} timed rounds\n`)
        break
      }
      const live = active.filter((ct) => !failed.has(ct.key))
      const order = live.map((_, i) => live[(i + round) % live.length])
      for (const ct of order) {
        const dir = path.join(work, ct.key, `round${round}`)
        try {
          const { wall: s, cpu } = await timeOnce(ct, dir)
          if (round >= warmup) { samples.get(ct.key).push(s); cpus.get(ct.key).push(cpu) }
          process.stderr.write(`  ${ct.key} ${round < warmup ? 'warm-up' : `#${round - warmup + 1}`}: ${c.fmtSeconds(s)}` +
            `${cpu === null ? '' : ` (cpu ${cpu.toFixed(2)} s)`}\n`)
        } catch (e) {
          failed.set(ct.key, e.message)
          process.stderr.write(`  ${ct.key}: FAILED: ${e.message}\n`)
        }
      }
      // Tear-downs (the engine's rmi: docker must forget the image to load it again) wait
      // for the round's end, then the file system settles (see settle()), so no contender's
      // deletions land in another's (or its own next) timed run. The targets themselves stay
      // until the run ends.
      for (const ct of order) {
        try { if (ct.after) await ct.after() } catch (e) { process.stderr.write(`  ${ct.key}: clean-up failed: ${e.message}\n`) }
      }
      if (round + 1 < warmup + iterations) await c.settle(settleSeconds)
    }
  } finally {
    for (const ct of active) if (ct.finish) await ct.finish()
    if (!opts.keep) fs.rmSync(work, { recursive: true, force: true })
  }
  for (const r of results) {
    if (r.unavailable) continue
    if (failed.has(r.key)) r.failed = failed.get(r.key)
    else {
      Object.assign(r, c.stats(samples.get(r.key)))
      const cs = cpus.get(r.key)
      r.cpuSamples = cs
      r.cpuMean = cs.length && !cs.includes(null) ? cs.reduce((a, b) => a + b, 0) / cs.length : null
    }
  }

  const strata = results.find((r) => r.key === 'strata' && r.mean)
  const docker = results.find((r) => r.key === 'docker' && r.mean)
  const base = strata || docker
  const baseName = strata ? 'strata' : 'docker load'
  for (const r of results) {
    if (!r.mean || !base || r === base) continue
    const n = Math.min(r.samples.length, base.samples.length)
    r.pairedRatio = median(r.samples.slice(0, n).map((x, i) => x / base.samples[i]))
  }
  const rows = [['contender', 'n', 'mean', '±95%', 'min', 'cpu', 'MB/s', strata ? 'vs strata (means)' : 'vs docker load (means; strata not measured)', 'per-round median']]
  for (const r of results) {
    if (r.unavailable) rows.push([r.label, '', '-', '', '', '', '', 'not available (below)'])
    else if (r.failed) rows.push([r.label, '', '-', '', '', '', '', 'FAILED (below)'])
    else {
      rows.push([r.label, String(r.n), c.fmtSeconds(r.mean), `±${r.rme.toFixed(1)}%`, c.fmtSeconds(r.min),
        r.cpuMean === null ? 'n/a' : c.fmtSeconds(r.cpuMean),
        (img.totalUncompressed / MB / r.mean).toFixed(0),
        r === base ? 'baseline' : c.ratioText(r.mean, base?.mean, baseName),
        r.pairedRatio ? `${r.pairedRatio.toFixed(2)}x` : ''])
    }
  }
  console.log(c.table(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'r']))
  for (const r of results) {
    if (r.unavailable) console.log(`  ${r.label}: not available: ${r.unavailable}`)
    if (r.failed) console.log(`  ${r.label}: FAILED: ${r.failed}`)
  }
  console.log('cpu = mean user+system CPU seconds of the bench process, its children and (docker) dockerd with its children: ' +
    'steadier than wall time when the machine is shared.')
  console.log('MB/s = uncompressed MiB of all layers per second. tar/node-tar do not apply whiteouts (they extract .wh. files as plain files); ' +
    'umoci also writes an mtree of the rootfs; docker includes its CLI start and layer-store bookkeeping.')
  for (const r of results) if (r.note) console.log(`  ${r.key}: ${r.note}`)
  const file = c.saveResults("load", { image: img, iterations, warmup, settle: settleSeconds, work, date: new Date().toISOString(), loadavgEnd: os.loadavg(), results })
  console.log(`results: ${path.relative(process.cwd(), file)}`)
  return results
}

module.exports = { name: 'load', description: 'load the benchmark image: strata vs docker load, umoci, tar, node-tar', run }

if (require.main === module) {
  run(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1) })
}
