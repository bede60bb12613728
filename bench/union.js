/**
 * Kernel overlayfs vs the userspace union view, side by side.
 *
 *   node bench/union.js [--quick] [--only stat,readdir,read,copyup,meta]   (root: mounts overlayfs)
 *
 * Builds its own layer stacks under $STRATA_BENCH_DIR (default: os.tmpdir(), ext4 here) and a
 * kernel mount of the same stack (with a container rootfs's options, from the native plan), then
 * prints one table: kernel time, view time, ratio (view / kernel; < 1 means the view is faster).
 *
 * Both sides are driven the same way, from JS through promises on the libuv pool:
 * node:fs/promises on the mount vs UnionView. Steady-state operations (warm stat, readdir,
 * readFile) use benchmark.js; operations that change state and need a fresh setup per run
 * (copy-up, unlink, chown -R, cold stat) are timed one by one with process.hrtime (mean of N
 * fresh runs; the 1 GB copy-up is a single run), since benchmark.js cannot re-create state
 * between iterations.
 *  - warm: repeated calls (the kernel's dcache / the view's lookup cache hold the answer);
 *  - cold: the kernel is freshly mounted / the view's cache invalidated before each call
 *    (underlying ext4 caches stay warm on both sides).
 */
'use strict'
require('tsx/cjs')
const fs = require('node:fs')
const fsp = require('node:fs/promises')
const os = require('node:os')
const path = require('node:path')
const Benchmark = require('benchmark')
const { UnionView } = require('../ts/view')
const { native } = require('../ts/native')
const { testing } = require('../__test__/helpers/testing')

const QUICK = process.argv.includes('--quick')
const root = fs.mkdtempSync(path.join(process.env.STRATA_BENCH_DIR || os.tmpdir(), 'strata-ubench-'))
const rows = []
const mounts = new Set()

function mount(lowers, upper, work, mnt) {
  fs.mkdirSync(mnt, { recursive: true })
  // A container rootfs's options (index=off,redirect_dir=off,metacopy=off): the native core's plan.
  const opts = native.containerMountPlan(lowers, upper ?? path.join(root, 'u'), work ?? path.join(root, 'w'), mnt).options
  testing.unionMountOverlay(lowers, upper, work, opts, mnt)
  mounts.add(mnt)
}
function umount(mnt) {
  testing.unionUmount(mnt, false)
  mounts.delete(mnt)
}
function cleanup() {
  for (const m of mounts) {
    try {
      testing.unionUmount(m, true)
    } catch {}
  }
  fs.rmSync(root, { recursive: true, force: true })
}
process.on('exit', cleanup)
process.on('SIGINT', () => process.exit(130))

const now = () => process.hrtime.bigint()
const ms = (ns) => Number(ns) / 1e6

function fmt(msv) {
  if (msv >= 1000) return `${(msv / 1000).toFixed(2)} s`
  if (msv >= 1) return `${msv.toFixed(2)} ms`
  return `${(msv * 1000).toFixed(1)} µs`
}

function row(name, kernelMs, viewMs, note = '') {
  rows.push({ name, kernelMs, viewMs, note })
  console.error(`  ${name}: kernel ${fmt(kernelMs)}, view ${fmt(viewMs)}, ×${(viewMs / kernelMs).toFixed(2)}`)
}

/**
 * benchmark.js, deferred (promise) functions; returns ms per call for each. The machine is
 * shared and noisy, so the suite runs in several rounds with the order of the sides swapped
 * each round, and each side keeps its best (lowest) mean — the usual estimator under noise.
 */
async function bench(fns, rounds = QUICK ? 1 : 3) {
  const best = {}
  const names = Object.keys(fns)
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? [...names].reverse() : names
    const out = await new Promise((resolve) => {
      const suite = new Benchmark.Suite()
      for (const name of order) {
        suite.add(name, {
          defer: true,
          minSamples: 5,
          maxTime: QUICK ? 0.5 : 1,
          fn: (d) => fns[name]().then(() => d.resolve()),
        })
      }
      const o = {}
      suite.on('cycle', (e) => (o[e.target.name] = e.target.stats.mean * 1000))
      suite.on('complete', () => resolve(o))
      suite.run({ async: true })
    })
    for (const [k, v] of Object.entries(out)) best[k] = Math.min(best[k] ?? Infinity, v)
  }
  return best
}

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b)
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

/** Mean of `n` timed calls, each preceded by an untimed `prepare`. */
async function timed(n, prepare, fn) {
  let total = 0n
  for (let i = 0; i < n; i++) {
    await prepare(i)
    const t = now()
    await fn(i)
    total += now() - t
  }
  return ms(total) / n
}

function writeBig(p, bytes) {
  const fd = fs.openSync(p, 'w')
  const chunk = Buffer.alloc(8 << 20, 0x5a)
  for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off))
  fs.closeSync(fd)
}

async function statBench() {
  const depth = 200
  const dir = path.join(root, 'stat')
  const lowers = []
  for (let i = 0; i < depth; i++) {
    const l = path.join(dir, `l${i}`) // l0 is the top layer
    fs.mkdirSync(path.join(l, 'd'), { recursive: true })
    fs.writeFileSync(path.join(l, 'd', `f${i + 1}`), 'x') // f<N> lives N layers down
    lowers.push(l)
  }
  const mnt = path.join(dir, 'm')
  mount(lowers, undefined, undefined, mnt)
  const view = await UnionView.open({ lowers })
  for (const n of [1, 10, 50, 200]) {
    const rel = `d/f${n}`
    const abs = path.join(mnt, rel)
    await fsp.stat(abs)
    await view.stat(rel)
    const r = await bench({ kernel: () => fsp.stat(abs), view: () => view.stat(rel) })
    row(`stat, file ${n} layer${n > 1 ? 's' : ''} down (warm)`, r.kernel, r.view)
  }
  for (const n of [1, 10, 50, 200]) {
    const rel = `d/f${n}`
    const iters = QUICK ? 5 : 21
    const ks = []
    const vs = []
    for (let i = 0; i < iters; i++) {
      umount(mnt)
      mount(lowers, undefined, undefined, mnt)
      let t = now()
      await fsp.stat(path.join(mnt, rel))
      ks.push(ms(now() - t))
      view.invalidate()
      t = now()
      await view.stat(rel)
      vs.push(ms(now() - t))
    }
    row(`stat, file ${n} layer${n > 1 ? 's' : ''} down (cold)`, median(ks), median(vs), `median of ${iters}; fresh mount / fresh view cache`)
  }
  umount(mnt)
}

async function readdirBench() {
  const dir = path.join(root, 'readdir')
  const lowers = []
  for (let i = 0; i < 10; i++) {
    const l = path.join(dir, `l${i}`)
    fs.mkdirSync(path.join(l, 'big'), { recursive: true })
    for (let j = 0; j < 1000; j++) fs.writeFileSync(path.join(l, 'big', `e${i}-${j}`), '')
    lowers.push(l)
  }
  const mnt = path.join(dir, 'm')
  mount(lowers, undefined, undefined, mnt)
  const view = await UnionView.open({ lowers })
  const absDir = path.join(mnt, 'big')
  if ((await fsp.readdir(absDir)).length !== 10000 || (await view.readdir('big')).length !== 10000) throw new Error('readdir setup')
  const r = await bench({ kernel: () => fsp.readdir(absDir), view: () => view.readdir('big') })
  row('readdir, 10k entries merged from 10 layers (warm)', r.kernel, r.view)
  const t = await bench({
    kernel: () => fsp.readdir(absDir, { withFileTypes: true }),
    view: () => view.readdir('big', { withFileTypes: true }),
  })
  row('readdir withFileTypes, same dir (warm)', t.kernel, t.view)
  umount(mnt)
}

async function readBench() {
  const dir = path.join(root, 'read')
  const lowers = [path.join(dir, 'l0'), path.join(dir, 'l1'), path.join(dir, 'l2')]
  for (const l of lowers) fs.mkdirSync(l, { recursive: true })
  fs.writeFileSync(path.join(lowers[1], 'small'), Buffer.alloc(4096, 1))
  writeBig(path.join(lowers[2], 'large'), 100 << 20)
  const mnt = path.join(dir, 'm')
  mount(lowers, undefined, undefined, mnt)
  const view = await UnionView.open({ lowers })
  for (const [name, rel] of [
    ['readFile 4 KB (warm page cache)', 'small'],
    ['readFile 100 MB (warm page cache)', 'large'],
  ]) {
    const abs = path.join(mnt, rel)
    await fsp.readFile(abs)
    await view.readFile(rel)
    const r = await bench({ kernel: () => fsp.readFile(abs), view: () => view.readFile(rel) })
    row(name, r.kernel, r.view)
  }
  umount(mnt)
}

async function copyUpBench() {
  const dir = path.join(root, 'copyup')
  const lower = path.join(dir, 'lower')
  fs.mkdirSync(lower, { recursive: true })
  const sizes = [
    ['4 KB', 4096, QUICK ? 5 : 31],
    ['1 MB', 1 << 20, QUICK ? 5 : 21],
    ['100 MB', 100 << 20, QUICK ? 2 : 5],
    ['1 GB', 1 << 30, 1],
  ]
  for (const [label, bytes] of sizes) if (!(QUICK && bytes > 200 << 20)) writeBig(path.join(lower, `f-${label.replace(' ', '')}`), bytes)
  fs.readdirSync(lower).forEach((n) => fs.readFileSync(path.join(lower, n)).length) // page cache warm for both
  const mnt = path.join(dir, 'm')
  let seq = 0
  const fresh = () => {
    const b = path.join(dir, `run${seq++}`)
    fs.mkdirSync(path.join(b, 'u'), { recursive: true })
    fs.mkdirSync(path.join(b, 'w'))
    return b
  }
  const done = (b) => {
    fs.rmSync(b, { recursive: true, force: true })
  }
  for (const [label, bytes, iters] of sizes) {
    if (QUICK && bytes > 200 << 20) continue
    const name = `f-${label.replace(' ', '')}`
    let b
    let view
    const ks = []
    const vs = []
    for (let i = 0; i < iters; i++) {
      // Alternate sides so page cache and writeback state are alike for both.
      b = fresh()
      mount([lower], path.join(b, 'u'), path.join(b, 'w'), mnt)
      let t = now()
      await fsp.appendFile(path.join(mnt, name), 'x')
      ks.push(ms(now() - t))
      umount(mnt)
      done(b)
      b = fresh()
      view = await UnionView.open({ lowers: [lower], upper: path.join(b, 'u'), work: path.join(b, 'w') })
      t = now()
      await view.appendFile(name, 'x')
      vs.push(ms(now() - t))
      if (fs.statSync(path.join(b, 'u', name)).size !== bytes + 1) throw new Error('copy-up size')
      done(b)
    }
    row(`first write (copy-up) of a ${label} lower file`, median(ks), median(vs), iters === 1 ? 'single run' : `median of ${iters}`)
  }
}

async function unlinkAndChownBench() {
  const dir = path.join(root, 'meta')
  const lower = path.join(dir, 'lower')
  const N = QUICK ? 200 : 1000
  fs.mkdirSync(path.join(lower, 'u'), { recursive: true })
  for (let i = 0; i < N; i++) fs.writeFileSync(path.join(lower, 'u', `f${i}`), 'x')
  const F = QUICK ? 1000 : 10000
  for (let d = 0; d < F / 100; d++) {
    fs.mkdirSync(path.join(lower, 'tree', `d${d}`), { recursive: true })
    for (let i = 0; i < 100; i++) fs.writeFileSync(path.join(lower, 'tree', `d${d}`, `f${i}`), 'data')
  }
  const mk = (n) => {
    const b = path.join(dir, n)
    fs.mkdirSync(path.join(b, 'u'), { recursive: true })
    fs.mkdirSync(path.join(b, 'w'))
    return b
  }
  const kb = mk('k')
  const mnt = path.join(dir, 'm')
  mount([lower], path.join(kb, 'u'), path.join(kb, 'w'), mnt)
  const vb = mk('v')
  const view = await UnionView.open({ lowers: [lower], upper: path.join(vb, 'u'), work: path.join(vb, 'w') })
  await fsp.stat(path.join(mnt, 'u'))
  await view.stat('u')
  let k = 0
  let v = 0
  let t
  for (let i = 0; i < N; i++) {
    t = now()
    await fsp.unlink(path.join(mnt, 'u', `f${i}`))
    k += ms(now() - t)
    t = now()
    await view.unlink(`u/f${i}`)
    v += ms(now() - t)
  }
  k /= N
  v /= N
  row('unlink of a lower file (leaves a whiteout)', k, v, `mean of ${N}`)

  // chown -R: the same JS walk (readdir withFileTypes + lchown) on both sides.
  const walk = async (fsLike, p) => {
    await fsLike.lchown(p, 1000, 1000)
    for (const e of await fsLike.readdir(p)) {
      const c = `${p}/${e.name}`
      if (e.isDirectory()) await walk(fsLike, c)
      else await fsLike.lchown(c, 1000, 1000)
    }
  }
  const kfs = {
    lchown: (p, u, g) => fsp.lchown(path.join(mnt, p), u, g),
    readdir: (p) => fsp.readdir(path.join(mnt, p), { withFileTypes: true }),
  }
  const vfs = { lchown: (p, u, g) => view.lchown(p, u, g), readdir: (p) => view.readdir(p, { withFileTypes: true }) }
  t = now()
  await walk(kfs, 'tree')
  const kc = ms(now() - t)
  t = now()
  await walk(vfs, 'tree')
  const vc = ms(now() - t)
  row(`chown -R over ${F / 1000}k lower files (JS walk)`, kc, vc, 'single run; copies every file up')
  umount(mnt)
  // Reference: coreutils chown -R on a fresh kernel mount (native walk, no JS round trips).
  const kb2 = mk('k2')
  mount([lower], path.join(kb2, 'u'), path.join(kb2, 'w'), mnt)
  t = now()
  require('node:child_process').execFileSync('chown', ['-R', '1000:1000', path.join(mnt, 'tree')])
  const kcli = ms(now() - t)
  umount(mnt)
  row(`chown -R over ${F / 1000}k lower files (kernel: coreutils chown -R)`, kcli, vc, 'view: same JS walk as above')
}

async function main() {
  console.error(`strata union bench in ${root}${QUICK ? ' (quick)' : ''}`)
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : null
  const parts = { stat: statBench, readdir: readdirBench, read: readBench, copyup: copyUpBench, meta: unlinkAndChownBench }
  for (const [k, f] of Object.entries(parts)) if (!only || only.includes(k)) await f()
  const w = Math.max(...rows.map((r) => r.name.length))
  const line = (a, b, c, d, e) => `${a.padEnd(w)}  ${b.padStart(10)}  ${c.padStart(10)}  ${d.padStart(7)}  ${e}`
  console.log(line('operation', 'kernel', 'view', 'ratio', 'note'))
  console.log(line('-'.repeat(w), '-'.repeat(10), '-'.repeat(10), '-'.repeat(7), ''))
  for (const r of rows) console.log(line(r.name, fmt(r.kernelMs), fmt(r.viewMs), `×${(r.viewMs / r.kernelMs).toFixed(2)}`, r.note))
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
