'use strict'
// Soak: one Store kept open, as a Node service keeps it, doing 1,500 container cycles
// (create + run + remove of `sh -c 'echo ...'` under runc) and 300 image cycles (load of a small
// app image whose busybox base is already there, then rmi), with 16 concurrent callers, in
// Node's default 4-thread libuv pool.
//
// What it checks and reports:
//   - no deadlock: a watchdog fails the run if no cycle completes for --stall seconds;
//   - every result: exit code 0 and the container's output; the loaded image ID; rmi deleting it;
//   - peak RSS: sampled every second, reported per tenth of the run's wall time (a plateau, not
//     a climb);
//   - open fds (/proc/self/fd) and listeners (the shared AbortSignal given to every load, and
//     every event of `process`) at the start, at most during the run, and at the end;
//   - drift: mean cycle latency of the first 100 cycles against the last 100 (goal: the last
//     no slower by more than 15%);
//   - where the time goes: mean time of each step (create, run, remove, load, rmi) with 16
//     callers and one at a time;
//   - throughput against the same cycles run one at a time (goal: >= 1.6x on 2 cores). The run
//     is cut into chunks (--chunk cycles each, the same mix); each concurrent chunk is followed
//     by a chunk run one caller at a time on the same store, and the ratio is the median of the
//     per-pair ratios (interleaved, so load from elsewhere falls on both alike). The soak
//     figures above come from the concurrent chunks (1,800 cycles by default).
//
//   node bench/soak.js [--containers 1500] [--loads 300] [--callers 16] [--chunk 180]
//        [--sequential-chunks N (default: every chunk)] [--stall 120]
// Env: STRATA_PKG, STRATA_BENCH_WORK (scratch dir, default bench/.cache/work). Must start with
// UV_THREADPOOL_SIZE unset (the point is Node's default pool); it refuses otherwise.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { getEventListeners } = require('node:events')
const c = require('./lib/common')
const img = require('./lib/containers-image')

const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2 }
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length
const mib = (b) => (b / 2 ** 20).toFixed(0)
const openFds = () => fs.readdirSync('/proc/self/fd').length
const processListeners = () => process.eventNames().reduce((n, e) => n + process.listenerCount(e), 0)

/** One small app image per caller: the bench busybox layer + 64 files of 4 KiB of its own. */
function appImages(dir, bbLayer, callers) {
  const out = []
  for (let i = 0; i < callers; i++) {
    const entries = [{ name: 'app/', type: 'dir' }]
    for (let f = 0; f < 64; f++) entries.push({ name: `app/f${f}`, data: img.detBytes(4096, `soak-${i}-${f}`) })
    const image = img.buildImage([bbLayer, img.tar(entries)], `strata-bench/soak-app${i}:1`)
    const archive = path.join(dir, `soak-app${i}.docker.tar`)
    if (!fs.existsSync(archive) || fs.readFileSync(`${archive}.id`, 'utf8') !== image.id) {
      img.writeArchive(archive, image)
      fs.writeFileSync(`${archive}.id`, image.id)
    }
    out.push({ tag: image.tag, id: image.id, archive })
  }
  return out
}

/** The cycles of one chunk: `containers` container cycles and `loads` image cycles, interleaved. */
function chunkPlan(containers, loads) {
  const plan = []
  const every = (containers + loads) / Math.max(loads, 1)
  let l = 0
  for (let i = 0; i < containers + loads; i++) {
    if (l < loads && i >= Math.round(l * every + every / 2) - 1) { plan.push('load'); l++ } else plan.push('container')
  }
  return plan
}

async function run(argv = []) {
  const opts = c.parseArgs(argv)
  if (process.env.UV_THREADPOOL_SIZE) throw new Error('soak: unset UV_THREADPOOL_SIZE (the soak measures Node\'s default pool)')
  const total = { containers: opts.containers ?? 1500, loads: opts.loads ?? 300 }
  const callers = opts.callers ?? 16
  const chunkSize = opts.chunk ?? 180
  const stallMs = (opts.stall ?? 120) * 1000
  const chunks = Math.max(1, Math.round((total.containers + total.loads) / chunkSize))
  const seqChunks = Math.min(chunks, opts['sequential-chunks'] ?? chunks)
  const strata = c.tryRequireStrata('dist/ts/index.js')
  if (!strata.mod) throw new Error(`strata not available: ${strata.why}`)
  const { Store } = strata.mod
  if (!c.which('runc')) throw new Error('runc not found')

  const imgDir = path.join(c.CACHE, 'containers')
  const images = img.ensureImages(imgDir, [])
  const apps = appImages(imgDir, img.busyboxLayer(), callers)
  const work = path.resolve(process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work'))
  fs.mkdirSync(work, { recursive: true })
  const dir = fs.mkdtempSync(path.join(work, 'soak-'))
  const root = path.join(dir, 'store')
  console.log(`soak: ${total.containers} container cycles + ${total.loads} image cycles, ${callers} callers, ${chunks} chunks of ~${chunkSize} ` +
    `(each followed by the same chunk one caller at a time: ${seqChunks} of them), libuv pool ${process.env.UV_THREADPOOL_SIZE || 'default (4)'}, store ${root}`)

  const store = await Store.open({ root })
  await store.load(images.busybox.archive)
  const signal = new AbortController().signal
  const errors = []
  /** Step durations (ms) by mode ('conc' | 'seq') and step name. */
  const steps = { warm: {}, conc: {}, seq: {} }
  let mode = 'warm'
  const step = async (name, p) => {
    const s = performance.now()
    try {
      return await p()
    } finally {
      (steps[mode][name] ??= []).push(performance.now() - s)
    }
  }
  let completed = 0
  let lastProgress = performance.now()

  const cycles = {
    async container(i) {
      const word = `soak-${i}`
      const ct = await step('create', () => store.containers.create(images.busybox.tag, { cmd: ['sh', '-c', `echo ${word}`] }))
      const r = await step('run', () => ct.run())
      if (r.exitCode !== 0 || r.stdout.toString() !== `${word}\n`) throw new Error(`container ${ct.id}: exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout.toString())} ${r.error ?? ''}`)
      await step('remove', () => ct.remove())
    },
    async load(i, caller) {
      const app = apps[caller % apps.length]
      const { images: got } = await step('load', () => store.load(app.archive, { signal }))
      if (got.length !== 1 || got[0].id !== app.id) throw new Error(`load ${app.archive}: got ${JSON.stringify(got)}`)
      const events = await step('rmi', () => store.images.remove(app.tag))
      if (!events.some((e) => e.deleted === app.id)) throw new Error(`rmi ${app.tag}: ${JSON.stringify(events)}`)
    },
  }

  /**
   * Runs `plan` with `n` callers; returns { seconds, cpu (seconds of this process and its
   * reaped children: runc and what it ran), latencies (ms, by start order) }.
   */
  async function runPlan(plan, n, base) {
    let next = 0
    const latencies = new Array(plan.length)
    const cpu0 = c.cpuSeconds()
    const t0 = performance.now()
    await Promise.all(Array.from({ length: n }, async (_, caller) => {
      while (next < plan.length) {
        const i = next++
        const s = performance.now()
        try {
          await cycles[plan[i]](base + i, caller)
        } catch (e) {
          errors.push(`${plan[i]} ${base + i}: ${e.code ?? ''} ${e.message}`)
        }
        latencies[i] = performance.now() - s
        completed++
        lastProgress = performance.now()
      }
    }))
    return { seconds: (performance.now() - t0) / 1000, cpu: c.cpuSeconds() - cpu0, latencies }
  }

  // Warm-up (untimed): the first creates, a load, so both modes start from the same state.
  await runPlan(chunkPlan(16, 2), callers, -1000)
  await store.close()

  const start = { rss: process.memoryUsage().rss, fds: openFds(), signal: getEventListeners(signal, 'abort').length, process: processListeners() }
  const most = { fds: start.fds, signal: start.signal, process: start.process }
  const rssSamples = []
  let concurrentElapsed = 0
  const soakStart = performance.now()
  const sampler = setInterval(() => {
    rssSamples.push({ at: performance.now() - soakStart, rss: process.memoryUsage().rss })
    most.fds = Math.max(most.fds, openFds())
    most.signal = Math.max(most.signal, getEventListeners(signal, 'abort').length)
    most.process = Math.max(most.process, processListeners())
  }, 1000)
  const watchdog = setInterval(() => {
    if (performance.now() - lastProgress > stallMs) {
      console.log(`soak: FAILED: no cycle completed for ${stallMs / 1000} s (deadlock?) after ${completed} cycles`)
      process.exit(1)
    }
  }, 1000)

  const conc = []
  const seq = []
  const cpu = { conc: 0, seq: 0 }
  /** CPU seconds per cycle of each concurrent chunk: drift that load from elsewhere barely moves. */
  const cpuPerCycle = []
  const concLatencies = []
  let done = { containers: 0, loads: 0 }
  for (let k = 0; k < chunks; k++) {
    const left = chunks - k
    const want = { containers: Math.round((total.containers - done.containers) / left), loads: Math.round((total.loads - done.loads) / left) }
    done = { containers: done.containers + want.containers, loads: done.loads + want.loads }
    const plan = chunkPlan(want.containers, want.loads)
    const t = performance.now()
    mode = 'conc'
    const r = await runPlan(plan, callers, k * 10_000)
    concurrentElapsed += performance.now() - t
    conc.push(r.seconds)
    cpu.conc += r.cpu
    cpuPerCycle.push(r.cpu / plan.length)
    concLatencies.push(...r.latencies)
    let line = `  chunk ${k + 1}/${chunks}: ${plan.length} cycles, ${callers} callers ${r.seconds.toFixed(1)} s`
    if (k < seqChunks) {
      mode = 'seq'
      const s = await runPlan(plan, 1, k * 10_000 + 5000)
      seq.push(s.seconds)
      cpu.seq += s.cpu
      line += `, one at a time ${s.seconds.toFixed(1)} s, ratio ${(s.seconds / r.seconds).toFixed(2)}x; CPU ${r.cpu.toFixed(1)} s / ${s.cpu.toFixed(1)} s`
    }
    console.log(`${line}; rss ${mib(process.memoryUsage().rss)} MiB, fds ${openFds()}, load ${os.loadavg()[0].toFixed(1)}`)
  }
  clearInterval(watchdog)
  await store.close()
  clearInterval(sampler)
  const end = { rss: process.memoryUsage().rss, fds: openFds(), signal: getEventListeners(signal, 'abort').length, process: processListeners() }

  // RSS per tenth of the run's wall time: the peak of each.
  const soakElapsed = performance.now() - soakStart
  const tenths = Array.from({ length: 10 }, () => 0)
  for (const s of rssSamples) {
    const i = Math.min(9, Math.floor((s.at / Math.max(soakElapsed, 1)) * 10))
    tenths[i] = Math.max(tenths[i], s.rss)
  }
  const first100 = mean(concLatencies.slice(0, 100))
  const last100 = mean(concLatencies.slice(-100))
  const ratios = seq.map((s, i) => s / conc[i])
  const cyclesDone = total.containers + total.loads
  const concRate = cyclesDone / conc.reduce((a, b) => a + b, 0)
  const seqCycles = chunkSize * seq.length
  const result = {
    cycles: cyclesDone, callers, chunks, errors: errors.length,
    throughput: { concurrentPerSecond: concRate, sequentialPerSecond: seq.length ? seqCycles / seq.reduce((a, b) => a + b, 0) : null, medianRatio: seq.length ? median(ratios) : null, ratios },
    rss: { startMiB: +mib(start.rss), peakPerTenthMiB: tenths.map((b) => +mib(b)), endMiB: +mib(end.rss) },
    fds: { start: start.fds, most: most.fds, end: end.fds },
    listeners: { signal: { start: start.signal, most: most.signal, end: end.signal }, process: { start: start.process, most: most.process, end: end.process } },
    drift: {
      first100Ms: first100, last100Ms: last100, change: last100 / first100 - 1,
      cpuPerCycleMs: cpuPerCycle.map((x) => x * 1000), cpuChange: cpuPerCycle[cpuPerCycle.length - 1] / cpuPerCycle[0] - 1,
    },
    cpu: {
      concurrentSeconds: cpu.conc, sequentialSeconds: cpu.seq,
      concurrentCores: cpu.conc / conc.reduce((a, b) => a + b, 0),
      sequentialCores: seq.length ? cpu.seq / seq.reduce((a, b) => a + b, 0) : null,
    },
    stepsMeanMs: Object.fromEntries(Object.entries(steps).map(([m, byName]) => [m, Object.fromEntries(Object.entries(byName).map(([n, xs]) => [n, mean(xs)]))])),
    load: os.loadavg(),
    date: new Date().toISOString(),
  }
  console.log(c.table([
    ['what', 'figure', 'goal'],
    ['cycles (1 load per 5 container cycles)', `${cyclesDone} with ${callers} callers, ${errors.length} errors`, 'no deadlock, no error'],
    ['throughput, 16 callers', `${concRate.toFixed(1)} cycles/s`, ''],
    ['throughput vs one at a time', seq.length ? `${median(ratios).toFixed(2)}x (median of ${ratios.length}; ${ratios.map((r) => r.toFixed(2)).join(' ')})` : '-', '>= 1.6x on 2 cores'],
    ['CPU used (process + children)', `${(cpu.conc / conc.reduce((a, b) => a + b, 0)).toFixed(2)} cores with ${callers} callers, ${seq.length ? (cpu.seq / seq.reduce((a, b) => a + b, 0)).toFixed(2) : '-'} one at a time; ${(cpu.conc / cyclesDone * 1000).toFixed(0)} ms per cycle`, ''],
    ['peak RSS per tenth of the run', `${tenths.map((b) => mib(b)).join(' ')} MiB (start ${mib(start.rss)})`, 'a plateau'],
    ['open fds start / most / end', `${start.fds} / ${most.fds} / ${end.fds}`, 'end = start'],
    ['signal listeners start / most / end', `${start.signal} / ${most.signal} / ${end.signal}`, '0 / <=1 / 0'],
    ['process listeners start / most / end', `${start.process} / ${most.process} / ${end.process}`, 'end = start'],
    ['cycle latency first 100 / last 100', `${first100.toFixed(0)} ms / ${last100.toFixed(0)} ms (${((last100 / first100 - 1) * 100).toFixed(1)}%)`, '<= +15%'],
    ['CPU per cycle, each chunk', `${cpuPerCycle.map((x) => (x * 1000).toFixed(0)).join(' ')} ms (last vs first ${((cpuPerCycle[cpuPerCycle.length - 1] / cpuPerCycle[0] - 1) * 100).toFixed(1)}%)`, 'flat'],
  ]))
  const names = ['create', 'run', 'remove', 'load', 'rmi']
  console.log(c.table([
    ['step (mean)', ...names],
    [`${callers} callers`, ...names.map((n) => (steps.conc[n] ? `${mean(steps.conc[n]).toFixed(0)} ms` : '-'))],
    ['one at a time', ...names.map((n) => (steps.seq[n] ? `${mean(steps.seq[n]).toFixed(0)} ms` : '-'))],
  ]))
  for (const e of errors.slice(0, 10)) console.log(`  error: ${e}`)
  c.saveResults('soak', result)
  fs.rmSync(dir, { recursive: true, force: true })
  if (errors.length) process.exitCode = 1
  return result
}

module.exports = { name: 'soak', description: 'one Store, 16 callers, 1,500 container + 300 image cycles: no deadlock, flat RSS/fds/listeners, throughput vs one at a time', run }

if (require.main === module) run(process.argv.slice(2)).catch((e) => { console.error(e.stack || e); process.exit(1) })
