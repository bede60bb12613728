'use strict'
// Build: `strata build` / `store.build()` against BuildKit (Debian's docker 20.10 CLI with
// DOCKER_BUILDKIT=1, the builder embedded in its engine) and the classic builder
// (DOCKER_BUILDKIT=0), both on a private Docker Engine (scripts/peers/dockerd.sh).
//
// Fixture (bench/lib/build-fixture.js): a 10-instruction, two-stage Dockerfile FROM the
// busybox image of bench/lib/containers-image.js, with ~2,000 source files (~50 MB) in two
// COPY steps, RUN, ENV, WORKDIR, and one COPY --from of the first stage.
//
// Sections (every round runs each contender once, in a rotated order; medians of the rounds;
// ratios are per-round medians of the peer's time over strata's):
//   cold      a build with nothing cached: a fresh copy of the context (BuildKit and the classic
//             builder keep their context caches by path) and --no-cache for the engine; a fresh
//             store for strata. Targets: >= 2x BuildKit, >= 4x classic (CLI).
//   nochange  a rebuild with nothing changed: strata through the API (store.build in this
//             process) and the CLI, BuildKit through its CLI. Targets: API >= 3x BuildKit, CLI
//             no slower; strata reads no file contents (bytes read reported).
//   onefile   a rebuild after one source file changed (CLI both). Target: >= 3x BuildKit.
//   (strata's CLI is the installed program, bin/strata.js run as npm links it; where
//   NODE_EXTRA_CA_CERTS is set, `node bin/strata.js` is timed too, in the same rounds: see
//   CLI_STARTS.)
//   touch     every file's mtime changed: strata's cache hit rate (target 100%).
//   stale     the edits BuildKit serves stale results for here: a content change that keeps
//             size and mtime, a chmod of a directory; checked in the image each builder makes.
//
//   node bench/build.js [--rounds 5] [--sections cold,nochange,onefile,touch,stale] [--settle S]
// Env: STRATA_PKG, STRATA_BENCH_WORK (scratch dir, default bench/.cache/work-build),
//      STRATA_BENCH_DOCKER_HOST (use this daemon instead of starting one),
//      STRATA_DOCKERD_NAME (the name of the engine it starts, default strata-bench-build).

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const c = require('./lib/common')
const { ensureImages } = require('./lib/containers-image')
const { writeFixture, FIXTURE_DOCKERFILE } = require('./lib/build-fixture')

const LEGACY_DOCKER = '/usr/bin/docker'
let ROUNDS = 5
let SECTIONS = ['cold', 'nochange', 'onefile', 'touch', 'stale']
const WORK = path.resolve(process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work-build'))
const CLI = path.join(c.strataPkg(), 'bin', 'strata.js')

function now() {
  return Number(process.hrtime.bigint()) / 1e9
}

let dockerHost = process.env.STRATA_BENCH_DOCKER_HOST
// The engine's name (shared between checkouts): STRATA_DOCKERD_NAME when set.
const ENGINE_NAME = process.env.STRATA_DOCKERD_NAME || 'strata-bench-build'
function startEngine() {
  if (dockerHost) return
  const r = spawnSync('bash', [path.join(c.REPO, 'scripts/peers/dockerd.sh'), 'start'], {
    env: { ...process.env, STRATA_DOCKERD_NAME: ENGINE_NAME }, encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`dockerd.sh start: ${r.stderr}`)
  dockerHost = /DOCKER_HOST=(\S+)/.exec(r.stdout)[1]
}
function stopEngine() {
  if (process.env.STRATA_BENCH_DOCKER_HOST) return
  spawnSync('bash', [path.join(c.REPO, 'scripts/peers/dockerd.sh'), 'stop'], { env: { ...process.env, STRATA_DOCKERD_NAME: ENGINE_NAME }, stdio: 'ignore' })
}

function docker(argv, { buildkit = true, allowFail = false } = {}) {
  const r = spawnSync(LEGACY_DOCKER, argv, {
    env: { ...process.env, DOCKER_HOST: dockerHost, DOCKER_BUILDKIT: buildkit ? '1' : '0' }, encoding: 'utf8', maxBuffer: 1 << 28,
  })
  if (r.status !== 0 && !allowFail) throw new Error(`docker ${argv.join(' ')}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  return r
}

function timed(fn) {
  spawnSync('sync')
  const t0 = now()
  fn()
  return now() - t0
}

async function timedAsync(fn) {
  spawnSync('sync')
  const t0 = now()
  const r = await fn()
  return { s: now() - t0, r }
}

/**
 * How strata's CLI is started. `strataCli` is the program as npm installs it (`strata` on the
 * PATH is a link to bin/strata.js, run by the kernel through its `#!/bin/sh` line): that line
 * starts Node without NODE_EXTRA_CA_CERTS, which Node 20 parses at every start-up before any
 * JavaScript runs (~30 ms of CPU for this workplace's 220 KB bundle; strata never uses Node's
 * TLS: its registry client is Rust), and bin/strata.js hands the variable back to the processes
 * strata starts. Where the variable is set, `node bin/strata.js` (which parses it) is timed too
 * (`strataNodeCli`), in the same rounds, and both ratios are printed. The docker CLI (Go) does
 * not read it.
 */
const CLI_STARTS = { strataCli: [CLI] }
if (process.env.NODE_EXTRA_CA_CERTS) CLI_STARTS.strataNodeCli = [process.execPath, CLI]
const CLI_NAMES = Object.keys(CLI_STARTS)

function strataCli(root, argv, who = 'strataCli') {
  const [file, ...pre] = CLI_STARTS[who]
  const r = spawnSync(file, [...pre, '--root', root, ...argv], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`strata ${argv.join(' ')}: ${(r.stderr || String(r.error)).trim().split('\n').slice(-5).join(' | ')}`)
  return r
}

/** An empty series for each environment the CLI is timed in. */
function cliSeries() {
  return Object.fromEntries(CLI_NAMES.map((n) => [n, []]))
}

/** The ratio of `node bin/strata.js`, when it was timed too. */
function viaNode(ratio, peer) {
  return CLI_STARTS.strataNodeCli ? ` (node bin/strata.js, NODE_EXTRA_CA_CERTS parsed: ${ratio(peer, 'strataNodeCli').toFixed(2)}x)` : ''
}

/** bytes read by this process so far (rchar: every read(2), page cache or not). */
function rchar() {
  const m = /rchar: (\d+)/.exec(fs.readFileSync('/proc/self/io', 'utf8'))
  return m ? Number(m[1]) : 0
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function run(argv) {
  const args = c.parseArgs(argv)
  ROUNDS = args.rounds ?? 5
  SECTIONS = String(args.sections ?? 'cold,nochange,onefile,touch,stale').split(',')
  if (args.settle) await c.settle(args.settle)
  const strata = c.tryRequireStrata('dist/ts/index.js')
  if (!strata.mod) throw new Error(strata.why)
  const { Store } = strata.mod
  fs.mkdirSync(WORK, { recursive: true })
  const runDir = fs.mkdtempSync(path.join(WORK, 'run-'))
  const images = ensureImages(path.join(c.CACHE, 'containers'), [])
  const base = images.busybox
  startEngine()
  docker(['load', '-i', base.archive])
  const results = { date: new Date().toISOString(), rounds: ROUNDS, sections: {} }
  let serial = 0
  const freshContext = () => {
    const dir = path.join(runDir, `ctx-${++serial}`)
    writeFixture(dir, base.tag)
    return dir
  }
  const freshStore = async () => {
    const root = path.join(runDir, `root-${++serial}`)
    const s = await Store.open({ root })
    await s.load(base.archive)
    return { root, store: s }
  }
  const out = (line) => process.stdout.write(`${line}\n`)
  out(`build benchmark: ${ROUNDS} rounds; fixture: ${FIXTURE_DOCKERFILE.trim().split('\n').length} instructions, ${base.tag}`)

  if (SECTIONS.includes('cold')) {
    const t = { strataApi: [], ...cliSeries(), buildkit: [], classic: [] }
    for (let round = 0; round < ROUNDS; round++) {
      const order = ['strataApi', ...CLI_NAMES, 'buildkit', 'classic']
      for (let i = 0; i < round % order.length; i++) order.push(order.shift())
      for (const who of order) {
        const ctx = freshContext()
        if (who === 'strataApi') {
          const { store } = await freshStore()
          t.strataApi.push((await timedAsync(() => store.build({ context: ctx, tags: ['bench/built:cold'] }))).s)
          await store.close()
        } else if (CLI_NAMES.includes(who)) {
          const { root, store } = await freshStore()
          await store.close()
          t[who].push(timed(() => strataCli(root, ['build', '-q', '-t', 'bench/built:cold', ctx], who)))
        } else if (who === 'buildkit') {
          t.buildkit.push(timed(() => docker(['build', '-q', '--network', 'host', '--no-cache', '-t', 'bench/bk:cold', ctx])))
        } else {
          t.classic.push(timed(() => docker(['build', '-q', '--network', 'host', '--no-cache', '-t', 'bench/classic:cold', ctx], { buildkit: false })))
        }
      }
      process.stderr.write(`  cold round ${round + 1}/${ROUNDS}\n`)
    }
    results.sections.cold = t
    const ratio = (peer, ours) => median(t[peer].map((x, i) => x / t[ours][i]))
    out('\ncold build (nothing cached)')
    out(c.table([['contender', 'median', 'min', 'max'], ...Object.entries(t).map(([k, v]) => [k, c.fmtSeconds(median(v)), c.fmtSeconds(Math.min(...v)), c.fmtSeconds(Math.max(...v))])], ['l', 'r', 'r', 'r']))
    out(`  BuildKit / strata CLI: ${ratio('buildkit', 'strataCli').toFixed(2)}x${viaNode(ratio, 'buildkit')}   (API: ${ratio('buildkit', 'strataApi').toFixed(2)}x)   target >= 2x`)
    out(`  classic  / strata CLI: ${ratio('classic', 'strataCli').toFixed(2)}x${viaNode(ratio, 'classic')}   (API: ${ratio('classic', 'strataApi').toFixed(2)}x)   target >= 4x`)
  }

  if (SECTIONS.includes('nochange') || SECTIONS.includes('onefile') || SECTIONS.includes('touch')) {
    // One context and one store, built once (untimed) by each contender.
    const ctx = freshContext()
    const { root, store } = await freshStore()
    await store.build({ context: ctx, tags: ['bench/built:warm'] })
    await store.build({ context: ctx, tags: ['bench/built:warm'] }) // racily clean files settle into the stat index
    docker(['build', '-q', '--network', 'host', '-t', 'bench/bk:warm', ctx])

    if (SECTIONS.includes('nochange')) {
      const t = { strataApi: [], ...cliSeries(), buildkit: [] }
      const bytes = []
      const hits = []
      for (let round = 0; round < ROUNDS; round++) {
        const order = ['strataApi', ...CLI_NAMES, 'buildkit']
        for (let i = 0; i < round % order.length; i++) order.push(order.shift())
        for (const who of order) {
          if (who === 'strataApi') {
            const before = rchar()
            const { s, r } = await timedAsync(() => store.build({ context: ctx, tags: ['bench/built:warm'] }))
            t.strataApi.push(s)
            bytes.push({ contextBytesRead: r.contextBytesRead, rchar: rchar() - before })
            hits.push(r.steps.filter((x) => x.cached).length / r.steps.length)
          } else if (CLI_NAMES.includes(who)) {
            t[who].push(timed(() => strataCli(root, ['build', '-q', '-t', 'bench/built:warm', ctx], who)))
          } else t.buildkit.push(timed(() => docker(['build', '-q', '--network', 'host', '-t', 'bench/bk:warm', ctx])))
        }
      }
      results.sections.nochange = { ...t, bytes, hits }
      const ratio = (peer, ours) => median(t[peer].map((x, i) => x / t[ours][i]))
      out('\nno-change rebuild')
      out(c.table([['contender', 'median', 'min', 'max'], ...Object.entries(t).map(([k, v]) => [k, c.fmtSeconds(median(v)), c.fmtSeconds(Math.min(...v)), c.fmtSeconds(Math.max(...v))])], ['l', 'r', 'r', 'r']))
      out(`  BuildKit / strata API: ${ratio('buildkit', 'strataApi').toFixed(2)}x   target >= 3x`)
      out(`  BuildKit / strata CLI: ${ratio('buildkit', 'strataCli').toFixed(2)}x${viaNode(ratio, 'buildkit')}   target >= 1x`)
      out(`  strata API: context file bytes read ${bytes.map((b) => b.contextBytesRead).join(', ')}; all reads of the process (rchar, store metadata included) ${bytes.map((b) => b.rchar).join(', ')}; cache hits ${hits.map((h) => `${(h * 100).toFixed(0)}%`).join(', ')}`)
    }

    if (SECTIONS.includes('onefile')) {
      const t = { ...cliSeries(), buildkit: [] }
      const file = path.join(ctx, 'src', 'm00', 'f000.txt')
      for (let round = 0; round < ROUNDS; round++) {
        const order = [...CLI_NAMES, 'buildkit']
        for (let i = 0; i < round % order.length; i++) order.push(order.shift())
        for (const who of order) {
          fs.appendFileSync(file, `edit ${round} ${who}\n`)
          if (CLI_NAMES.includes(who)) t[who].push(timed(() => strataCli(root, ['build', '-q', '-t', 'bench/built:warm', ctx], who)))
          else t.buildkit.push(timed(() => docker(['build', '-q', '--network', 'host', '-t', 'bench/bk:warm', ctx])))
        }
      }
      results.sections.onefile = t
      out('\nrebuild after one source file changed (CLI)')
      out(c.table([['contender', 'median', 'min', 'max'], ...Object.entries(t).map(([k, v]) => [k, c.fmtSeconds(median(v)), c.fmtSeconds(Math.min(...v)), c.fmtSeconds(Math.max(...v))])], ['l', 'r', 'r', 'r']))
      const ratio = (peer, ours) => median(t[peer].map((x, i) => x / t[ours][i]))
      out(`  BuildKit / strata CLI: ${ratio('buildkit', 'strataCli').toFixed(2)}x${viaNode(ratio, 'buildkit')}   target >= 3x`)
    }

    if (SECTIONS.includes('touch')) {
      // The cache first catches up with the context as it is now (the edits of `onefile`).
      await store.build({ context: ctx, tags: ['bench/built:warm'] })
      const later = new Date(Date.now() + 3600e3)
      const walk = (d) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name)
          if (e.isDirectory()) walk(p)
          fs.utimesSync(p, later, later)
        }
      }
      walk(ctx)
      const r = await store.build({ context: ctx, tags: ['bench/built:warm'] })
      const rate = r.steps.filter((x) => x.cached).length / r.steps.length
      results.sections.touch = { hitRate: rate, contextBytesRead: r.contextBytesRead }
      out(`\ntouch every file (mtimes only): strata cache hits ${(rate * 100).toFixed(0)}% (target 100%), context bytes read ${r.contextBytesRead} (each touched file is hashed again — its ctime moved, and these mtimes lie in the future, which the stat index never trusts — and hashes the same)`)
    }
    await store.close()
  }

  if (SECTIONS.includes('stale')) {
    out('\nstale hits (what each builder puts in the image after the edit):')
    const rows = [['edit', 'expected', 'BuildKit', 'strata']]
    const cases = [
      {
        name: 'content change, same size and mtime',
        dockerfile: `FROM ${base.tag}\nCOPY data.txt /data.txt\n`,
        files: { 'data.txt': 'version A\n' },
        edit: (ctx) => {
          const p = path.join(ctx, 'data.txt')
          const st = fs.statSync(p)
          fs.writeFileSync(p, 'version B\n')
          fs.utimesSync(p, st.atime, st.mtime)
        },
        probe: ['cat', '/data.txt'],
        expected: 'version B',
      },
      {
        name: 'chmod of a directory',
        dockerfile: `FROM ${base.tag}\nCOPY dir /dir\n`,
        files: { 'dir/sub/f': 'f\n' },
        mode: { 'dir/sub': 0o755 },
        edit: (ctx) => fs.chmodSync(path.join(ctx, 'dir', 'sub'), 0o700),
        probe: ['stat', '-c', '%a', '/dir/sub'],
        expected: '700',
      },
    ]
    const stale = []
    for (const k of cases) {
      const ctx = path.join(runDir, `stale-${++serial}`)
      fs.mkdirSync(ctx, { recursive: true })
      fs.writeFileSync(path.join(ctx, 'Dockerfile'), k.dockerfile)
      for (const [f, data] of Object.entries(k.files)) {
        fs.mkdirSync(path.dirname(path.join(ctx, f)), { recursive: true })
        fs.writeFileSync(path.join(ctx, f), data)
      }
      for (const [d, m] of Object.entries(k.mode ?? {})) fs.chmodSync(path.join(ctx, d), m)
      const { store } = await freshStore()
      docker(['build', '-q', '--network', 'host', '-t', 'bench/stale:1', ctx])
      await store.build({ context: ctx, tags: ['bench/stale:1'] })
      k.edit(ctx)
      docker(['build', '-q', '--network', 'host', '-t', 'bench/stale:1', ctx])
      await store.build({ context: ctx, tags: ['bench/stale:1'] })
      const bk = docker(['run', '--rm', '--network', 'none', 'bench/stale:1', ...k.probe]).stdout.trim()
      const c1 = await store.containers.create('bench/stale:1', { cmd: k.probe, autoRemove: true })
      const ours = (await c1.run()).stdout.toString().trim()
      await store.close()
      rows.push([k.name, k.expected, `${bk}${bk === k.expected ? '' : ' (stale)'}`, `${ours}${ours === k.expected ? '' : ' (stale)'}`])
      stale.push({ edit: k.name, expected: k.expected, buildkit: bk, strata: ours })
    }
    results.sections.stale = stale
    out(c.table(rows))
  }

  stopEngine()
  const file = c.saveResults('build', results)
  out(`\nraw results: ${file}`)
  fs.rmSync(runDir, { recursive: true, force: true })
  return results
}

module.exports = { name: 'build', description: 'build: cold, no-change, one-file rebuilds, touch, stale hits: strata vs BuildKit and the classic builder', run }

if (require.main === module) {
  run(process.argv.slice(2)).catch((e) => {
    stopEngine()
    process.stderr.write(`${e.stack || e}\n`)
    process.exit(1)
  })
}
