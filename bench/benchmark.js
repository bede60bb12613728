'use strict'
// Entry point: runs every suite in bench/ — each bench/*.js module (other than this
// one) that exports run(argv) — in name order, or only those named with --only.
//
//   node bench/benchmark.js                     all suites
//   node bench/benchmark.js --only load         one suite (--only a,b for several)
//   node bench/benchmark.js --list              list suites
//   node bench/benchmark.js --only load --iterations 3   other flags go to the suites
//
// Env: STRATA_PKG — root of the strata package to measure (default: the checkout
// this bench/ is in).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const c = require('./lib/common')

function discover() {
  const suites = []
  for (const f of fs.readdirSync(__dirname).sort()) {
    if (!f.endsWith('.js') || f === path.basename(__filename)) continue
    const mod = require(path.join(__dirname, f))
    if (typeof mod.run !== 'function') continue
    suites.push({ name: mod.name || path.basename(f, '.js'), file: f, description: mod.description || '', run: mod.run })
  }
  return suites
}

async function main() {
  const argv = process.argv.slice(2)
  const opts = c.parseArgs(argv)
  const suites = discover()
  if (opts.list) {
    for (const s of suites) console.log(`${s.name.padEnd(12)} ${s.file.padEnd(14)} ${s.description}`)
    return
  }
  const only = typeof opts.only === 'string' ? opts.only.split(',') : null
  if (opts.only === true) throw new Error('--only needs a suite name (see --list)')
  if (only) {
    const unknown = only.filter((n) => !suites.some((s) => s.name === n))
    if (unknown.length) throw new Error(`unknown suite(s): ${unknown.join(', ')}; have: ${suites.map((s) => s.name).join(', ')}`)
  }
  // drop --only NAME; everything else is passed to the suites
  const rest = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--only') { i++; continue }
    rest.push(argv[i])
  }
  const [l1] = os.loadavg()
  console.log(`strata benchmarks — node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model}), ` +
    `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, kernel ${os.release()}, load average ${l1.toFixed(2)}, nice ${os.getPriority()}; ` +
    `strata package: ${c.strataPkg()}`)
  if (l1 > 1) console.log(`warning: load average ${l1.toFixed(2)} at start: other work on this machine will add noise${os.getPriority() >= 0 ? ' (scripts/bench-run.sh runs at raised priority)' : ''}`)
  let failed = 0
  for (const s of suites) {
    if (only && !only.includes(s.name)) continue
    console.log(`\n== ${s.name}: ${s.description}`)
    try {
      await s.run(rest)
    } catch (e) {
      failed++
      console.log(`${s.name}: FAILED: ${e.stack || e}`)
    }
  }
  if (failed) process.exitCode = 1
}

main().catch((e) => { console.error(e.message || e); process.exit(1) })
