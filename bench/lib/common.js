'use strict'
// Shared helpers for the bench/ suites: locating the strata package, the
// benchmark image, child processes, statistics and table output.

const fs = require('node:fs')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')

const BENCH_DIR = path.resolve(__dirname, '..')
const REPO = path.resolve(BENCH_DIR, '..')
const CACHE = path.join(BENCH_DIR, '.cache')

/** Root of the strata npm package: $STRATA_PKG, else the checkout bench/ lives in. */
function strataPkg() {
  return path.resolve(BENCH_DIR, process.env.STRATA_PKG || '..')
}

/**
 * Require a module of the strata package, or explain why it cannot be had:
 * returns { mod } or { why }.
 */
function tryRequireStrata(rel) {
  const file = path.join(strataPkg(), rel)
  if (!fs.existsSync(file)) return { why: `${file} does not exist (strata not built here? run npm run build, or set STRATA_PKG)` }
  try {
    return { mod: require(file) }
  } catch (e) {
    return { why: `require(${file}) failed: ${e.code || ''} ${String(e.message).split('\n')[0]}` }
  }
}

/** The benchmark image summary; builds it with scripts/bench-image.sh when missing. */
function ensureImage({ build = true } = {}) {
  const summary = path.join(CACHE, 'image.json')
  if (!fs.existsSync(summary) || !fs.existsSync(path.join(CACHE, 'image.docker.tar'))) {
    if (!build) throw new Error(`${summary} missing: run scripts/bench-image.sh`)
    console.error('bench: building the benchmark image (scripts/bench-image.sh)')
    const r = spawnSync('bash', [path.join(REPO, 'scripts/bench-image.sh')], { stdio: ['ignore', 'inherit', 'inherit'] })
    if (r.status !== 0) throw new Error(`scripts/bench-image.sh failed (exit ${r.status})`)
  }
  return JSON.parse(fs.readFileSync(summary, 'utf8'))
}

/** Read files fully so they sit in the page cache for every contender alike. */
async function warm(files) {
  const buf = Buffer.allocUnsafe(4 << 20)
  for (const f of files) {
    const fd = fs.openSync(f, 'r')
    try {
      while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      fs.closeSync(fd)
    }
  }
}

/** Run a command; resolves { code, stdout, stderr }, rejects on spawn failure or non-zero exit. */
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => { stdout += d })
    p.stderr.on('data', (d) => { stderr += d })
    p.on('error', reject)
    p.on('close', (code, signal) => {
      if (code === 0 || opts.allowFail) resolve({ code, stdout, stderr })
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`))
    })
  })
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

/**
 * CPU seconds (user + system) a process has used, including the children it has
 * waited for (/proc/PID/stat utime, stime, cutime, cstime); null if unreadable.
 */
function cpuSeconds(pid = 'self') {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // f[0] is field 3 (state): utime..cstime are fields 14..17
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK
  } catch {
    return null
  }
}

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

// Two-sided 95% Student t quantiles by degrees of freedom (as benchmark.js uses).
const T95 = [Infinity, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
  2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086]

function stats(samples) {
  const n = samples.length
  const mean = samples.reduce((a, b) => a + b, 0) / n
  const variance = n > 1 ? samples.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0
  const sd = Math.sqrt(variance)
  const sem = sd / Math.sqrt(n)
  const t = T95[Math.min(n - 1, T95.length - 1)] || 1.96
  const rme = n > 1 ? (sem * t / mean) * 100 : 0
  return { n, mean, sd, rme, min: Math.min(...samples), max: Math.max(...samples), samples }
}

function fmtSeconds(s) {
  if (s >= 10) return `${s.toFixed(1)} s`
  if (s >= 1) return `${s.toFixed(2)} s`
  return `${(s * 1000).toFixed(0)} ms`
}

/** Fixed-width table: rows are arrays of strings; first row is the header. */
function table(rows, align) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => {
    const s = String(c ?? '')
    return (align && align[i] === 'r') ? s.padStart(widths[i]) : s.padEnd(widths[i])
  }).join('  ').trimEnd()).join('\n')
}

/** "4.1x slower than strata" / "1.3x faster than strata" */
function ratioText(mean, base, baseName) {
  if (!base) return ''
  const r = mean / base
  if (Math.abs(r - 1) < 0.005) return `1.00x (same as ${baseName})`
  return r > 1 ? `${r.toFixed(2)}x slower than ${baseName}` : `${(1 / r).toFixed(2)}x faster than ${baseName}`
}

/** Parse `--key value` / `--flag` args into an object (numbers converted). */
function parseArgs(argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) continue
    const key = a.slice(2)
    const next = argv[i + 1]
    if (next === undefined || next.startsWith('--')) out[key] = true
    else { out[key] = /^\d+(\.\d+)?$/.test(next) ? Number(next) : next; i++ }
  }
  return out
}

// On ext4 without a journal (this project's VMs), the kernel does not reuse an inode freed
// less than 60 s ago while another is free (fs/ext4/ialloc.c, recently_deleted()), and it
// finds that out by looking at every free inode of the group, on every create. Right
// after a tear-down deleted ~9k files, every contender's creates in those groups cost
// a scan of thousands of inodes (measured: strata 1.0 s -> 4-5 s, mostly system time).
// That is the previous round's rm -rf, not the load being measured, so tear-downs happen
// at the round's end and the next round waits until the deleted inodes age out. (While
// an inode-table block is dirty the window is 360 s: new creates dirty it again, so some of
// the effect can remain after 61 s.)
function settleDefault(work) {
  const r = spawnSync('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '--target', work], { encoding: 'utf8' })
  const [fstype, source] = (r.stdout || '').trim().split(/\s+/)
  if (fstype !== 'ext4' || !source) return 0
  try {
    const journal = fs.readFileSync(`/sys/fs/ext4/${path.basename(source)}/journal_task`, 'utf8').trim()
    return journal === '<none>' ? 61 : 0
  } catch {
    return 0
  }
}

async function settle(seconds) {
  if (!seconds) return
  spawnSync('sync')
  process.stderr.write(`  settling ${seconds} s (deleted inodes age out)\n`)
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
}

function saveResults(name, data) {
  const dir = path.join(CACHE, 'results')
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n')
  return file
}

module.exports = {
  BENCH_DIR, REPO, CACHE, strataPkg, tryRequireStrata, ensureImage, warm, run, which, cpuSeconds,
  stats, fmtSeconds, table, ratioText, parseArgs, saveResults, settleDefault, settle,
}
