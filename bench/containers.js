'use strict'
// Containers: strata against Docker Engine (a private dockerd on overlay2, scripts/peers/dockerd.sh),
// the same busybox image in both (built from the host's /bin/busybox by
// bench/lib/containers-image.js, loaded with store.load and docker load). Four sections:
//
//   lifecycle  create + mount + unmount + remove of a container
//                strata API   store.containers.create(img); c.mount(); c.unmount(); containers.remove(id)
//                strata CLI   strata create IMG; strata mount ID; strata umount ID; strata rm ID
//                docker       docker create --network none IMG; docker rm ID  (create prepares the layers)
//              target: strata >= 8x faster
//   run        run --rm IMAGE true
//                strata API   containers.create(img, { cmd: ['true'], autoRemove: true }); c.run()
//                strata CLI   strata run --rm IMG true
//                docker       docker run --rm --network none IMG true
//              target: >= 3x
//   commit     commit of a container that wrote 10,000 4 KiB files (100 dirs) and one 100 MiB
//              file and deleted a directory (/srv/old, 64 files): the same `sh -c` script runs in
//              both (untimed), then only the commit is timed
//                strata API   c.commit({ ref })          docker   docker commit CONTAINER REF
//              target: >= 3x
//   deep       mount time of a container of a 200-, 499- and 500-layer image (busybox + tiny
//              layers); mean of several mounts, unmounted (untimed) between. Docker cannot
//              hold such images (layer store max depth 125): its `docker load` / `docker run`
//              errors are printed as its result. A 500-layer image fills the kernel's overlay
//              limit of 500 lower dirs by itself, so its containers get no init layer.
//
// Plain repeated wall-clock timing (process.hrtime), round-robin over the contenders of a
// section (each round runs every contender once, in a rotated order, so load from elsewhere
// falls on all alike), with untimed set-up and tear-down per iteration and an untimed `sync`
// before each timed operation — as bench/load.js. benchmark.js does not fit: it has no untimed
// per-iteration set-up (a commit needs a freshly written container every time).
//
// CPU: strata rows count the bench process and the children it waited for (runc, the CLI's
// node). Docker rows count the docker CLI plus dockerd, containerd, the shims and runc, which
// are moved into a cgroup of their own for the run (bench/lib/containers-docker.js).
//
//   node bench/containers.js [--iterations 20] [--run-iterations 12] [--commit-iterations 4]
//        [--mounts 10] [--warmup 1] [--settle S] [--sections lifecycle,run,commit,deep] [--peers strata,strata-cli,docker]
// Env: STRATA_PKG, STRATA_BENCH_WORK (scratch dir; the strata store goes there, default
//      bench/.cache/work), STRATA_BENCH_DOCKER_HOST (use this daemon instead of starting one).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const c = require('./lib/common')
const { ensureImages } = require('./lib/containers-image')
const { DockerPeer } = require('./lib/containers-docker')

const DEEP = [200, 499, 500]
const NAME_PREFIX = `strata-bench-${process.pid}`

// The change the commit section makes, run by busybox sh inside the container (strata and
// docker alike): 100 dirs x 100 files of 4096 bytes (base64 of 3072 random bytes, written by
// the printf builtin, no fork per file), one 100 MiB file from /dev/urandom, and /srv/old gone.
const COMMIT_SCRIPT = [
  'set -e',
  'd=$(head -c 3072 /dev/urandom | base64 -w 0)',
  'test ${#d} -eq 4096',
  'mkdir /data',
  'for a in 0 1 2 3 4 5 6 7 8 9; do for b in 0 1 2 3 4 5 6 7 8 9; do mkdir /data/d$a$b',
  '  for c in 0 1 2 3 4 5 6 7 8 9; do for e in 0 1 2 3 4 5 6 7 8 9; do printf %s "$d" > /data/d$a$b/f$c$e; done; done',
  'done; done',
  'head -c 104857600 /dev/urandom > /big.bin',
  'rm -rf /srv/old',
].join('\n')

const loadNow = () => os.loadavg()[0]
const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2 }
const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim().replace(/^.*load average/, 'load average')

async function run(argv = []) {
  const opts = c.parseArgs(argv)
  const warmup = opts.warmup ?? 1
  const sections = opts.sections ? String(opts.sections).split(',') : ['lifecycle', 'run', 'commit', 'deep']
  const peers = opts.peers ? String(opts.peers).split(',') : null
  const want = (k) => !peers || peers.includes(k)
  const pkg = c.strataPkg()
  const work = path.resolve(process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work'))
  const root = path.join(work, 'containers-store')
  const images = ensureImages(path.join(c.CACHE, 'containers'), DEEP)
  const img = images.busybox

  console.log(`containers: ${img.tag} ${img.id.slice(0, 19)} (1 layer, /bin/busybox ${(img.bytes / 2 ** 20).toFixed(1)} MiB tar); ` +
    `strata store ${root}; ${uptime()}`)

  // --- strata
  let Store = null
  let store = null
  let strataWhy = null
  const r = c.tryRequireStrata('dist/ts/index.js')
  if (r.why) strataWhy = r.why
  else if (process.getuid() !== 0) strataWhy = 'needs root (overlay mounts, runc)'
  else if (!c.which(process.env.STRATA_RUNTIME || 'runc')) strataWhy = 'runc not installed (apt-get install runc)'
  else {
    Store = r.mod.Store
    await discardStore(Store, root)
    store = await Store.open({ root })
    const res = await store.load(img.archive)
    if (!res.images.some((i) => i.id === img.id)) strataWhy = `store.load gave ${JSON.stringify(res.images)}, expected ${img.id}`
  }
  const bin = path.join(pkg, 'bin/strata.js')
  const cliWhy = strataWhy ?? (fs.existsSync(bin) ? null : `${bin} does not exist`)
  const cli = (args) => c.run(process.execPath, [bin, '--root', root, ...args])

  // --- docker
  const dk = new DockerPeer()
  let dockerWhy = want('docker') ? await dk.start().catch((e) => `start failed: ${e.message}`) : 'not selected (--peers)'
  if (!dockerWhy) {
    const l = await dk.docker(['load', '-q', '-i', img.archive], { allowFail: true })
    if (l.code !== 0 || !l.stdout.includes(img.tag)) dockerWhy = `docker load of ${img.tag} failed: ${(l.stderr || l.stdout).trim()}`
  }
  if (!dockerWhy) console.log(`docker: ${dk.note}${dk.cpu ? `; daemon CPU from cgroup ${dk.cpu.dir}` : `; daemon CPU not counted: ${dk.cpuWhy}`}`)

  const strataCpu = () => c.cpuSeconds()
  const dockerCpu = () => {
    const self = c.cpuSeconds()
    const d = dk.daemonCpu()
    return self === null || d === null ? null : self + d
  }

  const all = []
  // On a journal-less ext4, deletions just before a section (an earlier run's, the previous
  // section's) slow every create in it: settle first (lib/common.js settleDefault).
  const settleSeconds = opts.settle ?? c.settleDefault(work)
  try {
    if (sections.includes('lifecycle')) {
      await c.settle(settleSeconds)
      all.push(await section({
        key: 'lifecycle', title: 'create + mount + unmount + remove', target: 8,
        iterations: opts.iterations ?? 20, warmup,
        contenders: [
          {
            key: 'strata', label: 'strata API create/mount/unmount/remove', why: strataWhy, cpu: strataCpu,
            async once() {
              const ct = await store.containers.create(img.tag)
              const m = await ct.mount()
              if (!fs.existsSync(path.join(m, 'bin/busybox'))) throw new Error(`${m} has no bin/busybox`)
              await ct.unmount()
              await store.containers.remove(ct.id)
            },
          },
          {
            key: 'strata-cli', label: 'strata CLI create; mount; umount; rm', why: cliWhy, cpu: strataCpu,
            async once() {
              const id = (await cli(['create', img.tag])).stdout.trim()
              await cli(['mount', id])
              await cli(['umount', id])
              await cli(['rm', id])
            },
          },
          {
            key: 'docker', label: 'docker create --network none; docker rm', why: dockerWhy, cpu: dockerCpu,
            async once() {
              const id = (await dk.docker(['create', '--network', 'none', img.tag])).stdout.trim()
              await dk.docker(['rm', id])
            },
          },
        ].filter((ct) => want(ct.key)),
      }))
    }

    if (sections.includes('run')) {
      all.push(await section({
        key: 'run', title: 'run --rm IMAGE true', target: 3,
        iterations: opts['run-iterations'] ?? 12, warmup,
        contenders: [
          {
            key: 'strata', label: 'strata API create({cmd:[true],autoRemove}) + run()', why: strataWhy, cpu: strataCpu,
            async once(st) {
              const ct = await store.containers.create(img.tag, { cmd: ['true'], autoRemove: true })
              st.id = ct.id
              const res = await ct.run()
              if (res.exitCode !== 0) throw new Error(`exit ${res.exitCode}: ${res.error ?? res.stderr.toString()}`)
            },
            async after(st) {
              if ((await store.containers.ids()).includes(st.id)) throw new Error(`--rm container ${st.id} is still there`)
            },
          },
          {
            key: 'strata-cli', label: 'strata run --rm IMG true', why: cliWhy, cpu: strataCpu,
            async once() { await cli(['run', '--rm', img.tag, 'true']) },
          },
          {
            key: 'docker', label: 'docker run --rm --network none IMG true', why: dockerWhy, cpu: dockerCpu,
            async once() { await dk.docker(['run', '--rm', '--network', 'none', img.tag, 'true']) },
          },
        ].filter((ct) => want(ct.key)),
      }))
    }

    if (sections.includes('commit')) {
      await c.settle(settleSeconds)
      let n = 0
      // Containers and committed images stay until the section ends: deleting 10k files right
      // before the next iteration writes 10k new ones slows ext4's inode allocation (it skips
      // recently deleted inodes), which would land on whichever contender runs next.
      const leftovers = { strata: [], docker: [] }
      all.push(await section({
        key: 'commit', title: 'commit (10,000 x 4 KiB files + 100 MiB file written, a dir deleted)', target: 3,
        iterations: opts['commit-iterations'] ?? 4, warmup: 0,
        contenders: [
          {
            key: 'strata', label: 'strata API c.commit({ref})', why: strataWhy, cpu: strataCpu,
            async prepare(st) {
              st.ct = await store.containers.create(img.tag, { cmd: ['sh', '-c', COMMIT_SCRIPT] })
              const res = await st.ct.run()
              if (res.exitCode !== 0) throw new Error(`prepare: exit ${res.exitCode}: ${res.error ?? res.stderr.toString()}`)
              st.ref = `strata-bench/committed:s${n++}`
            },
            async once(st) { st.id = await st.ct.commit({ ref: st.ref }) },
            async after(st) {
              leftovers.strata.push(st)
              if (st.id) {
                const layers = (await store.images.inspect(st.ref)).RootFS.Layers.length
                if (layers !== 2) throw new Error(`committed image has ${layers} layers, expected 2`)
              }
            },
            async finish() {
              for (const st of leftovers.strata) {
                if (st.id) await store.images.remove(st.ref, { force: true }).catch(() => undefined)
                await store.containers.remove(st.ct.id, { force: true }).catch(() => undefined)
              }
            },
          },
          {
            key: 'docker', label: 'docker commit CONTAINER REF', why: dockerWhy, cpu: dockerCpu,
            async prepare(st) {
              st.name = `${NAME_PREFIX}-commit-${n}`
              st.ref = `strata-bench/committed:d${n++}`
              await dk.docker(['run', '--name', st.name, '--network', 'none', img.tag, 'sh', '-c', COMMIT_SCRIPT])
            },
            async once(st) { st.id = (await dk.docker(['commit', st.name, st.ref])).stdout.trim() },
            async after(st) {
              leftovers.docker.push(st)
              if (st.id) {
                const layers = (await dk.docker(['image', 'inspect', '--format', '{{len .RootFS.Layers}}', st.ref])).stdout.trim()
                if (layers !== '2') throw new Error(`committed image has ${layers} layers, expected 2`)
              }
            },
            async finish() {
              for (const st of leftovers.docker) {
                if (st.id) await dk.docker(['rmi', '-f', st.ref], { allowFail: true })
                await dk.docker(['rm', '-f', st.name], { allowFail: true })
              }
            },
          },
        ].filter((ct) => want(ct.key)),
      }))
    }

    if (sections.includes('deep')) all.push(await deepSection({ store, strataWhy, dk, dockerWhy, images, mounts: opts.mounts ?? 10, warmup, want }))
  } finally {
    if (store) await discardStore(Store, root, store)
    if (!dockerWhy) {
      const left = (await dk.docker(['ps', '-aq', '--filter', `name=${NAME_PREFIX}`], { allowFail: true })).stdout.trim().split('\n').filter(Boolean)
      if (left.length) await dk.docker(['rm', '-f', ...left], { allowFail: true })
      if (!dk.startedByUs) await dk.docker(['rmi', img.tag], { allowFail: true })
    }
    await dk.stop()
  }

  console.log(`\nsummary (${uptime()}):`)
  const rows = [['section', 'contender', 'mean', 'cpu', 'vs docker (wall)', 'per-round', 'vs docker (cpu)', 'target', 'met', 'load 1m']]
  for (const s of all) {
    for (const row of s.rows) {
      if (row.key === 'docker') continue
      rows.push([s.key, row.label, row.mean ? c.fmtSeconds(row.mean) : row.failed ? 'FAILED' : 'n/a',
        row.cpuMean == null ? '' : c.fmtSeconds(row.cpuMean), row.ratio ? `${row.ratio.toFixed(2)}x` : '',
        row.pairedRatio ? `${row.pairedRatio.toFixed(2)}x` : '', row.cpuRatio ? `${row.cpuRatio.toFixed(2)}x` : '', s.target ? `>= ${s.target}x` : s.targetText, row.met ?? '',
        `${s.load[0].toFixed(2)}-${s.load[1].toFixed(2)}`])
    }
  }
  console.log(c.table(rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'l', 'l', 'r']))
  const file = c.saveResults('containers', { date: new Date().toISOString(), images, root, docker: dk.note ?? null, sections: all })
  console.log(`results: ${path.relative(process.cwd(), file)}`)
  return all
}

/** Removes every container of a bench store (unmounting) and the store dir. */
async function discardStore(Store, root, open) {
  if (!fs.existsSync(root)) return
  try {
    const s = open ?? await Store.open({ root })
    for (const id of await s.containers.ids()) await s.containers.remove(id, { force: true }).catch(() => undefined)
  } catch { /* a broken store: the mounts check below still runs */ }
  for (const m of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(`${root}/`)).reverse()) {
    spawnSync('umount', ['-l', m])
  }
  fs.rmSync(root, { recursive: true, force: true })
}

/** Times `ct.once` once, with untimed prepare/after and a sync before. */
async function timeOnce(ct) {
  const st = {}
  if (ct.prepare) await ct.prepare(st)
  spawnSync('sync')
  const cpu0 = ct.cpu()
  const t0 = process.hrtime.bigint()
  let err = null
  try { await ct.once(st) } catch (e) { err = e }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu1 = ct.cpu()
  if (ct.after) await ct.after(st).catch((e) => { err = err ?? e })
  if (err) throw err
  return { wall, cpu: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0 }
}

async function section({ key, title, target, targetText, iterations, warmup, contenders }) {
  const load0 = loadNow()
  console.log(`\n== ${key}: ${title}: ${iterations} timed rounds + ${warmup} warm-up; ${uptime()}`)
  const rows = contenders.map((ct) => ({ key: ct.key, label: ct.label, ...(ct.why ? { unavailable: ct.why } : {}) }))
  const live = contenders.filter((ct) => !ct.why)
  const samples = new Map(live.map((ct) => [ct.key, { wall: [], cpu: [] }]))
  const failed = new Map()
  for (let round = 0; round < warmup + iterations; round++) {
    const now = live.filter((ct) => !failed.has(ct.key))
    for (const ct of now.map((_, i) => now[(i + round) % now.length])) {
      try {
        const { wall, cpu } = await timeOnce(ct)
        if (round >= warmup) { samples.get(ct.key).wall.push(wall); samples.get(ct.key).cpu.push(cpu) }
        process.stderr.write(`  ${key}/${ct.key} ${round < warmup ? 'warm-up' : `#${round - warmup + 1}`}: ${c.fmtSeconds(wall)}` +
          `${cpu === null ? '' : ` (cpu ${c.fmtSeconds(cpu)})`}\n`)
      } catch (e) {
        failed.set(ct.key, e.message)
        process.stderr.write(`  ${key}/${ct.key}: FAILED: ${e.message}\n`)
      }
    }
  }
  for (const ct of live) if (ct.finish) await ct.finish().catch((e) => process.stderr.write(`  ${key}/${ct.key}: clean-up failed: ${e.message}\n`))
  const load1 = loadNow()
  for (const row of rows) {
    if (row.unavailable) continue
    if (failed.has(row.key)) { row.failed = failed.get(row.key); continue }
    const s = samples.get(row.key)
    Object.assign(row, c.stats(s.wall))
    row.cpuSamples = s.cpu
    row.cpuMean = s.cpu.length && !s.cpu.includes(null) ? s.cpu.reduce((a, b) => a + b, 0) / s.cpu.length : null
  }
  return finish({ key, title, target, targetText, rows, load: [load0, load1], uptime: uptime() })
}

/** Ratios against the docker row, the target check, and the table. */
function finish(s) {
  const docker = s.rows.find((r) => r.key === 'docker' && r.mean)
  for (const r of s.rows) {
    if (r.key === 'docker' || !r.mean) continue
    if (docker) {
      r.ratio = docker.mean / r.mean
      if (r.cpuMean && docker.cpuMean) r.cpuRatio = docker.cpuMean / r.cpuMean
      r.met = r.ratio >= s.target ? 'yes' : 'NO'
      // Per-round ratios (docker and this contender ran in the same round): steadier than the
      // ratio of means when load from elsewhere comes and goes.
      const k = Math.min(r.samples.length, docker.samples.length)
      if (k) r.pairedRatio = median(docker.samples.slice(0, k).map((d, i) => d / r.samples[i]))
    } else r.met = 'unmeasured (no docker figure)'
  }
  const rows = [['contender', 'n', 'mean', '±95%', 'min', 'cpu', 'vs docker (means)', 'per-round median', 'cpu vs docker', 'target', 'met']]
  for (const r of s.rows) {
    if (r.unavailable) rows.push([r.label, '', '-', '', '', '', 'not available (below)'])
    else if (r.failed) rows.push([r.label, '', '-', '', '', '', 'FAILED (below)'])
    else {
      rows.push([r.label, String(r.n), c.fmtSeconds(r.mean), `±${r.rme.toFixed(1)}%`, c.fmtSeconds(r.min),
        r.cpuMean == null ? 'n/a' : c.fmtSeconds(r.cpuMean),
        r.key === 'docker' ? 'baseline' : r.ratio ? `${r.ratio.toFixed(2)}x ${r.ratio >= 1 ? 'faster' : 'SLOWER'}` : '',
        r.pairedRatio ? `${r.pairedRatio.toFixed(2)}x` : '', r.cpuRatio ? `${r.cpuRatio.toFixed(2)}x` : '', r.key === 'docker' ? '' : `>= ${s.target}x`, r.met ?? ''])
    }
  }
  console.log(c.table(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'l', 'l']))
  for (const r of s.rows) {
    if (r.unavailable) console.log(`  ${r.label}: not available: ${r.unavailable}`)
    if (r.failed) console.log(`  ${r.label}: FAILED: ${r.failed}`)
  }
  console.log(`  load average ${s.load[0].toFixed(2)} at start, ${s.load[1].toFixed(2)} at end (${s.uptime})`)
  return s
}

/** Mount time of deep-image containers (strata); docker's refusal of the 200-layer image. */
async function deepSection({ store, strataWhy, dk, dockerWhy, images, mounts, warmup, want }) {
  const load0 = loadNow()
  console.log(`\n== deep: mount of a container of a ${DEEP.join('/')}-layer image: ${mounts} mounts each + ${warmup} warm-up, ` +
    `unmounted between (untimed); ${uptime()}`)
  const rows = []
  for (const n of DEEP) {
    const im = images.deep[n]
    const row = { key: `strata-${n}`, label: `strata API c.mount(), ${n}-layer image (${n < 500 ? n + 1 : n} lower dirs${n < 500 ? "" : ", no init layer"})` }
    rows.push(row)
    if (!want('strata')) { row.unavailable = 'not selected (--peers)'; continue }
    if (strataWhy) { row.unavailable = strataWhy; continue }
    let ct
    try {
      const t0 = process.hrtime.bigint()
      const res = await store.load(im.archive)
      row.loadSeconds = Number(process.hrtime.bigint() - t0) / 1e9
      if (!res.images.some((i) => i.id === im.id)) throw new Error(`store.load gave ${JSON.stringify(res.images)}`)
      ct = await store.containers.create(im.tag)
      const wall = []
      const un = []
      const cpu = []
      for (let i = 0; i < warmup + mounts; i++) {
        spawnSync('sync')
        const c0 = c.cpuSeconds()
        const t1 = process.hrtime.bigint()
        const m = await ct.mount()
        const w = Number(process.hrtime.bigint() - t1) / 1e9
        const c1 = c.cpuSeconds()
        const top = `deep/l${String(n - 1).padStart(4, '0')}`
        if (!fs.existsSync(path.join(m, top))) throw new Error(`mounted, but ${top} is not visible in ${m}`)
        const t2 = process.hrtime.bigint()
        await ct.unmount()
        const u = Number(process.hrtime.bigint() - t2) / 1e9
        process.stderr.write(`  deep/strata ${n} layers ${i < warmup ? 'warm-up' : `#${i - warmup + 1}`}: mount ${c.fmtSeconds(w)}, unmount ${c.fmtSeconds(u)}\n`)
        if (i >= warmup) { wall.push(w); un.push(u); cpu.push(c1 - c0) }
      }
      Object.assign(row, c.stats(wall))
      row.cpuMean = cpu.reduce((a, b) => a + b, 0) / cpu.length
      row.unmountMean = un.reduce((a, b) => a + b, 0) / un.length
    } catch (e) {
      row.failed = `${e.code ? `${e.code}: ` : ''}${e.message}`
      process.stderr.write(`  deep/strata ${n} layers: FAILED: ${row.failed}\n`)
    } finally {
      if (ct) await store.containers.remove(ct.id, { force: true }).catch(() => undefined)
    }
  }
  const drow = { key: 'docker', label: `docker load / docker run, ${DEEP[0]}-layer image` }
  rows.push(drow)
  if (dockerWhy) drow.unavailable = dockerWhy
  else {
    const im = images.deep[DEEP[0]]
    const t0 = process.hrtime.bigint()
    const l = await dk.docker(['load', '-q', '-i', im.archive], { allowFail: true })
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    const rr = await dk.docker(['run', '--rm', '--network', 'none', '--pull', 'never', im.tag, 'true'], { allowFail: true })
    if (l.code === 0) {
      drow.note = `docker load succeeded (${l.stdout.trim()}): unexpected`
      await dk.docker(['rmi', '-f', im.tag], { allowFail: true })
    }
    drow.failed = `docker load -i (${c.fmtSeconds(secs)}): exit ${l.code}: ${(l.stderr || l.stdout).trim()}; ` +
      `docker run: exit ${rr.code}: ${(rr.stderr || rr.stdout).trim().split('\n').filter((x) => x.trim() && !/docker run --help/.test(x)).join(' | ')}`
    drow.dockerCannot = l.code !== 0
  }
  const load1 = loadNow()
  const t = [['contender', 'n', 'mean', '±95%', 'min', 'cpu', 'unmount', 'target', 'met']]
  for (const r of rows) {
    if (r.key === 'docker') {
      t.push([r.label, '', '-', '', '', '', '', '', r.unavailable ? 'not available (below)' : 'cannot (below)'])
      continue
    }
    if (r.unavailable || r.failed) { t.push([r.label, '', '-', '', '', '', '', '', r.unavailable ? 'not available (below)' : 'FAILED (below)']); r.met = r.failed ? 'NO' : ''; continue }
    r.met = drow.dockerCannot ? 'yes' : drow.unavailable ? 'unmeasured (no docker figure)' : 'NO (docker can too)'
    t.push([r.label, String(r.n), c.fmtSeconds(r.mean), `±${r.rme.toFixed(1)}%`, c.fmtSeconds(r.min), c.fmtSeconds(r.cpuMean),
      c.fmtSeconds(r.unmountMean), 'mounts, docker cannot', r.met])
  }
  console.log(c.table(t, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l']))
  for (const r of rows) {
    if (r.loadSeconds) console.log(`  ${r.label}: store.load of the image (untimed set-up) took ${c.fmtSeconds(r.loadSeconds)}`)
    if (r.unavailable) console.log(`  ${r.label}: not available: ${r.unavailable}`)
    if (r.failed) console.log(`  ${r.label}: FAILED: ${r.failed}`)
  }
  console.log(`  load average ${load0.toFixed(2)} at start, ${load1.toFixed(2)} at end (${uptime()})`)
  return { key: 'deep', title: 'mount of deep-image containers', targetText: 'mounts, docker cannot', rows, load: [load0, load1], uptime: uptime() }
}

module.exports = { name: 'containers', description: 'containers: create/mount/rm, run --rm, commit, deep-image mounts: strata vs docker', run }

if (require.main === module) {
  run(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1) })
}
