'use strict'
// CLI start-up: each read-only command as a whole process, against `node -e 0` (what any Node
// program pays before its first line) and against the docker CLI talking to a private Docker
// Engine (scripts/peers/dockerd.sh) that holds the same busybox image and one container.
//
//   strata   node bin/strata.js --root ROOT <command>      (as `node -e 0` is started; the
//            installed `strata` also skips Node's parse of NODE_EXTRA_CA_CERTS: bin/strata.js)
//   node     node -e 0
//   docker   docker <command>                              (DOCKER_HOST = the private engine)
//
// Commands: --version, --help, images, ps -a, inspect IMAGE, history IMAGE. The goal for each is
// at most 25 ms over `node -e 0`.
//
// Interleaved rounds: each round runs every contender once per command, in a rotated order, so
// load from elsewhere on the machine falls on all alike; the figures quoted are the median wall
// time over the rounds (spawn to exit, output discarded) and the mean CPU time (user + system)
// of the process, read from this process's children's accounting (/proc/self/stat cutime and
// cstime, in clock ticks: the mean over the rounds is finer than one tick). On a busy machine
// the CPU figures are the steadier ones: wall time then mostly measures waiting for a core.
// "strata - node" is the median of the per-round differences (strata's run minus the `node -e 0`
// run of the same round and command), not the difference of two medians; the raw samples are
// saved with the results.
// The first --warmup rounds are not counted (page cache, the V8 code cache beside the bundle).
//
//   node bench/cli.js [--rounds 30] [--warmup 3] [--peers strata,node,docker]
// Env: STRATA_PKG, STRATA_BENCH_WORK (scratch dir, default bench/.cache/work),
//      STRATA_BENCH_DOCKER_HOST (use this daemon instead of starting one).

const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const c = require('./lib/common')
const { ensureImages } = require('./lib/containers-image')
const { DockerPeer } = require('./lib/containers-docker')

const CLK_TCK = Number(require('node:child_process').spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/** CPU seconds of the children this process has waited for (/proc/self/stat cutime + cstime). */
function childrenCpu() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[13]) + Number(f[14])) / CLK_TCK
}

/** { wall, cpu } seconds of one process, spawn to exit; rejects on a non-zero exit. */
function timeProcess(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const cpu0 = childrenCpu()
    const t0 = process.hrtime.bigint()
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d) => { err += d })
    child.on('error', reject)
    child.on('close', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim()}`))
      else resolve({ wall, cpu: childrenCpu() - cpu0 })
    })
  })
}

function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

async function run(argv) {
  const opts = c.parseArgs(argv)
  const rounds = opts.rounds || 30
  const warmup = opts.warmup ?? 3
  const peers = typeof opts.peers === 'string' ? opts.peers.split(',') : ['strata', 'node', 'docker']
  const pkg = c.strataPkg()
  const bin = path.join(pkg, 'bin', 'strata.js')
  for (const bundle of ['read.js', 'strata.js']) {
    if (!fs.existsSync(path.join(pkg, 'dist', 'cli', bundle))) throw new Error(`${pkg}/dist/cli/${bundle} missing: run npm run build`)
  }
  const work = process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work')
  fs.mkdirSync(work, { recursive: true })
  const dir = fs.mkdtempSync(path.join(work, 'cli-'))
  const root = path.join(dir, 'root')
  const { busybox } = ensureImages(path.join(c.CACHE, 'containers'), [])
  const strataEnv = { ...process.env }
  const strata = (args) => c.run(process.execPath, [bin, '--root', root, ...args], { env: strataEnv })
  await strata(['load', '-i', busybox.archive])
  await strata(['create', '--name', `cli-bench-${process.pid}`, busybox.tag, 'true'])

  let docker = null
  if (peers.includes('docker')) {
    docker = new DockerPeer()
    const why = await docker.start()
    if (why) {
      console.log(`docker: not measured (${why})`)
      docker = null
    } else {
      await docker.docker(['load', '-i', busybox.archive])
      await docker.docker(['create', '--name', `cli-bench-${process.pid}`, '--network', 'none', busybox.tag, 'true'])
    }
  }

  const commands = [['--version'], ['--help'], ['images'], ['ps', '-a'], ['inspect', busybox.tag], ['history', busybox.tag]]
  const contenders = []
  if (peers.includes('node')) contenders.push({ name: 'node -e 0', cmd: process.execPath, args: () => ['-e', '0'], env: process.env })
  if (peers.includes('strata')) contenders.push({ name: 'strata', cmd: process.execPath, args: (a) => [bin, '--root', root, ...a], env: strataEnv })
  if (docker) contenders.push({ name: 'docker', cmd: 'docker', args: (a) => (a[0] === '--help' ? ['--help'] : a), env: docker.env })

  const samples = new Map() // `${command}\t${contender}` -> { wall, cpu }[]
  for (let r = 0; r < warmup + rounds; r++) {
    for (const [i, a] of commands.entries()) {
      const order = contenders.map((_, j) => contenders[(j + r + i) % contenders.length])
      for (const k of order) {
        const s = await timeProcess(k.cmd, k.args(a), k.env)
        if (r < warmup) continue
        const key = `${a[0]}\t${k.name}`
        if (!samples.has(key)) samples.set(key, [])
        samples.get(key).push(s)
      }
    }
  }

  const ms = (s) => (s * 1000).toFixed(1)
  const rows = [['command', 'strata ms', 'node -e 0 ms', 'strata - node', 'docker ms', 'strata CPU ms', 'node CPU ms', 'strata - node CPU']]
  const results = []
  for (const a of commands) {
    const pick = (name, what) => {
      const xs = samples.get(`${a[0]}\t${name}`)
      return xs ? (what === 'wall' ? median(xs.map((x) => x.wall)) : mean(xs.map((x) => x.cpu))) : null
    }
    const [s, n, d] = ['strata', 'node -e 0', 'docker'].map((k) => pick(k, 'wall'))
    const [sc, nc] = ['strata', 'node -e 0'].map((k) => pick(k, 'cpu'))
    // strata - node: the median over the rounds of (strata's wall - node's wall in the same
    // round), so a slow spell of the machine falls on both sides of each difference.
    const st = samples.get(`${a[0]}\tstrata`)
    const nd = samples.get(`${a[0]}\tnode -e 0`)
    const diff = st && nd ? median(st.map((x, r) => x.wall - nd[r].wall)) : null
    const raw = Object.fromEntries(['strata', 'node -e 0', 'docker'].map((k) => [k, samples.get(`${a[0]}\t${k}`) ?? null]))
    results.push({ command: a.join(' '), wall: { strata: s, node: n, docker: d, strataMinusNode: diff }, cpu: { strata: sc, node: nc }, samples: raw })
    const f = (x) => (x == null ? '-' : ms(x))
    rows.push([
      a[0] === 'inspect' || a[0] === 'history' ? `${a[0]} IMAGE` : a.join(' '),
      f(s), f(n), f(diff), f(d), f(sc), f(nc), sc == null || nc == null ? '-' : ms(sc - nc),
    ])
  }
  console.log(`\nCLI start-up: ${rounds} interleaved rounds (${warmup} warm-up); wall: median per process, CPU: mean per process;\n` +
    'strata - node: median of the per-round differences (strata and node -e 0 run side by side in each round)')
  if (docker) console.log(`docker: ${docker.note}`)
  console.log(`load average at the end: ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`)
  console.log(c.table(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r']))
  console.log('\ngoal: strata - node <= 25 ms for every command')
  const file = c.saveResults('cli', { rounds, warmup, results })
  console.log(`results: ${file}`)

  if (docker) {
    await docker.docker(['rm', '-f', `cli-bench-${process.pid}`], { allowFail: true })
    await docker.stop()
  }
  await strata(['rm', '-f', `cli-bench-${process.pid}`]).catch(() => undefined)
  fs.rmSync(dir, { recursive: true, force: true })
}

module.exports = { name: 'cli', description: 'CLI start-up of read-only commands vs node -e 0 and the docker CLI', run }

if (require.main === module) {
  run(process.argv.slice(2)).catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
}
