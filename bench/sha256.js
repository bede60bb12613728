'use strict'
// SHA-256 throughput: strata's native hasher vs node:crypto (OpenSSL), with benchmark.js.
//
//   buffer 1 MiB     native.sha256Buffer(buf)        vs createHash('sha256').update(buf).digest('hex')
//   buffer 64 MiB    same
//   file 350 MiB     await native.sha256File(path)  vs fs.createReadStream(path, 1 MiB chunks) -> createHash
//
// The file is generated once (bench/.cache/sha256-350M.bin, incompressible, deterministic)
// and read fully before timing, so both read it from the page cache.
//
//   node bench/sha256.js [--max-time 3]
// Env: STRATA_PKG (strata package root, default ..).

const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')
const Benchmark = require('benchmark')
const c = require('./lib/common')

const MB = 1024 * 1024
const FILE_SIZE = 350 * MB

function ensureFile() {
  const file = path.join(c.CACHE, 'sha256-350M.bin')
  if (fs.existsSync(file) && fs.statSync(file).size === FILE_SIZE) return file
  fs.mkdirSync(c.CACHE, { recursive: true })
  const key = crypto.createHash('sha256').update('strata-bench-sha256').digest()
  const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const fd = fs.openSync(`${file}.tmp`, 'w')
  const zero = Buffer.alloc(8 * MB)
  for (let n = 0; n < FILE_SIZE; n += zero.length) fs.writeSync(fd, cipher.update(zero))
  fs.closeSync(fd)
  fs.renameSync(`${file}.tmp`, file)
  return file
}

function nodeHashFile(file) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256')
    fs.createReadStream(file, { highWaterMark: MB })
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(`sha256:${h.digest('hex')}`))
  })
}

function runSuite(title, benches) {
  return new Promise((resolve) => {
    const suite = new Benchmark.Suite(title)
    for (const b of benches) suite.add(b.name, b.fn, b.options)
    const out = []
    suite.on('cycle', (ev) => process.stderr.write(`  ${String(ev.target)}\n`))
    suite.on('error', (ev) => process.stderr.write(`  ${ev.target.name}: error ${ev.target.error}\n`))
    suite.on('complete', function () {
      this.forEach((b) => out.push(b))
      resolve(out)
    })
    suite.run({ async: true })
  })
}

async function run(argv = []) {
  const opts = c.parseArgs(argv)
  const maxTime = opts['max-time'] ?? 3
  const strata = c.tryRequireStrata('dist/ts/internal/native.js')
  let native = null
  let why = strata.why
  if (!why) {
    native = strata.mod.native
    if (typeof native?.sha256Buffer !== 'function' || typeof native?.sha256File !== 'function') {
      why = `${c.strataPkg()}/dist/ts/internal/native.js exports no native.sha256Buffer / native.sha256File`
      native = null
    }
  }
  const file = ensureFile()
  await c.warm([file])

  const buf1 = crypto.randomBytes(MB)
  const buf64 = crypto.randomBytes(64 * MB)
  const nodeBuf = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`

  // correctness first: a fast wrong hash is no result
  if (native) {
    const a = native.sha256Buffer(buf1)
    const b = await native.sha256File(file)
    const fileRef = await nodeHashFile(file)
    if (a !== nodeBuf(buf1)) { why = `native.sha256Buffer gave ${a}, node:crypto ${nodeBuf(buf1)}`; native = null }
    else if (b !== fileRef) { why = `native.sha256File gave ${b}, node:crypto ${fileRef}`; native = null }
  }

  console.log(`sha256: strata native vs node:crypto (OpenSSL ${process.versions.openssl}), benchmark.js, max ${maxTime} s per benchmark`)
  const cases = [
    { title: 'buffer 1 MiB', bytes: MB, sync: true, strata: () => native.sha256Buffer(buf1), node: () => nodeBuf(buf1) },
    { title: 'buffer 64 MiB', bytes: 64 * MB, sync: true, strata: () => native.sha256Buffer(buf64), node: () => nodeBuf(buf64) },
    { title: 'file 350 MiB', bytes: FILE_SIZE, sync: false, strata: () => native.sha256File(file), node: () => nodeHashFile(file) },
  ]
  const results = []
  for (const k of cases) {
    const benches = []
    const mk = (name, f) => k.sync
      ? { name, fn: f, options: { minSamples: 5, maxTime } }
      : { name, fn: (d) => { f().then(() => d.resolve(), (e) => { console.error(e); d.resolve() }) }, options: { defer: true, minSamples: 3, maxTime } }
    if (native) benches.push(mk(`${k.title} strata native`, k.strata))
    benches.push(mk(`${k.title} node:crypto${k.sync ? '' : ' stream'}`, k.node))
    const done = await runSuite(k.title, benches)
    const row = { case: k.title, bytes: k.bytes }
    for (const b of done) {
      const who = b.name.includes('strata') ? 'strata' : 'node'
      if (b.error) { row[who] = { error: String(b.error) }; continue }
      row[who] = { mbps: k.bytes / MB / b.stats.mean, mean: b.stats.mean, rme: b.stats.rme, samples: b.stats.sample.length }
    }
    results.push(row)
  }

  const rows = [['case', 'strata native', 'node:crypto', 'strata vs node']]
  const cell = (x) => !x ? '-' : x.error ? `error: ${x.error}` : `${x.mbps.toFixed(0)} MB/s ±${x.rme.toFixed(1)}%`
  for (const r of results) {
    let ratio = native ? '' : 'strata not available'
    if (r.strata?.mbps && r.node?.mbps) {
      const q = r.strata.mbps / r.node.mbps
      ratio = q >= 1 ? `${q.toFixed(2)}x faster` : `${(1 / q).toFixed(2)}x slower`
    }
    rows.push([r.case, cell(r.strata), cell(r.node), ratio])
  }
  console.log(c.table(rows, ['l', 'r', 'r', 'l']))
  if (!native) console.log(`  strata native sha256: not available: ${why}`)
  console.log('MB/s = MiB hashed per second (benchmark.js mean); file case reads from the page cache.')
  const saved = c.saveResults('sha256', { date: new Date().toISOString(), openssl: process.versions.openssl, strataUnavailable: native ? null : why, results })
  console.log(`results: ${path.relative(process.cwd(), saved)}`)
  return results
}

module.exports = { name: 'sha256', description: 'sha256 throughput: strata native vs node:crypto', run }

if (require.main === module) {
  run(process.argv.slice(2)).catch((e) => { console.error(e); process.exit(1) })
}
