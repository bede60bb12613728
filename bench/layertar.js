'use strict'
// layertar: a directory tree → one tar file, the walk that `commit` and `export` make. strata's
// native `writeDirTar` (one pass: walk, tar headers with xattrs, sha256 of the stream = the
// DiffID, written to a file) against GNU tar writing the same tree (`tar -cf`), and GNU tar piped
// into sha256sum (the same work strata does: the archive and its digest). The tree: 10,000
// files of 4 KiB in 100 dirs and one 100 MiB file, in the page cache (read once first).
// (This was a timing-only Rust test in crates/strata-core/tests/layertar_kernel.rs; timings live
// here, as ratios against a peer in the same run.)
//
// Rounds are interleaved (each round runs every contender once, in a rotated order, so load from
// elsewhere falls on all alike); per contender: median and min of the rounds, MiB/s, and the
// median of the per-round ratios against strata.
//
//   node bench/layertar.js [--rounds 7] [--small 10000] [--big-mib 100]
// Env: STRATA_PKG, STRATA_BENCH_WORK (scratch dir, default bench/.cache/work).

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const c = require('./lib/common')

const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2 }

function buildTree(dir, small, bigMiB) {
  for (let i = 0; i < 100; i++) fs.mkdirSync(path.join(dir, `d${String(i).padStart(3, '0')}`), { recursive: true })
  const body = Buffer.alloc(4096, 0xab)
  for (let i = 0; i < small; i++) fs.writeFileSync(path.join(dir, `d${String(i % 100).padStart(3, '0')}`, `f${String(i).padStart(5, '0')}`), body)
  const big = Buffer.alloc(bigMiB << 20)
  for (let i = 0; i < big.length; i++) big[i] = (Math.imul(i, 2654435761) >>> 13) & 0xff
  fs.writeFileSync(path.join(dir, 'big.bin'), big)
}

function sh(cmd) {
  const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`)
}

async function run(argv = []) {
  const opts = c.parseArgs(argv)
  const rounds = opts.rounds ?? 7
  const strata = c.tryRequireStrata('dist/ts/internal/native.js')
  if (!strata.mod) throw new Error(`strata not available: ${strata.why}`)
  const { native } = strata.mod
  const work = path.resolve(process.env.STRATA_BENCH_WORK || path.join(c.CACHE, 'work'))
  fs.mkdirSync(work, { recursive: true })
  const dir = fs.mkdtempSync(path.join(work, 'layertar-'))
  try {
    const src = path.join(dir, 'src')
    buildTree(src, opts.small ?? 10_000, opts['big-mib'] ?? 100)
    const out = path.join(dir, 'out.tar')
    const contenders = {
      'strata writeDirTar (tar + sha256 → file)': async () => { await native.writeDirTar(src, 'layer', out) },
      'GNU tar -cf (tar → file)': async () => sh(`tar --xattrs --numeric-owner -C ${src} -cf ${out} .`),
      'GNU tar | sha256sum (tar + sha256, to a pipe)': async () => sh(`tar --xattrs --numeric-owner -C ${src} -cf - . | sha256sum >/dev/null`),
    }
    const names = Object.keys(contenders)
    let bytes = 0
    // Warm the page cache and learn the archive size.
    const stats = await native.writeDirTar(src, 'layer', out)
    bytes = Number(stats.bytes ?? fs.statSync(out).size)
    const times = Object.fromEntries(names.map((n) => [n, []]))
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < names.length; k++) {
        const n = names[(r + k) % names.length]
        fs.rmSync(out, { force: true })
        spawnSync('sync')
        const t0 = performance.now()
        await contenders[n]()
        times[n].push((performance.now() - t0) / 1000)
      }
    }
    const base = times[names[0]]
    const rows = [['contender', 'median', 'min', 'MiB/s (median)', 'vs strata (median of per-round ratios)']]
    for (const n of names) {
      const ratio = median(times[n].map((t, i) => t / base[i]))
      rows.push([n, c.fmtSeconds(median(times[n])), c.fmtSeconds(Math.min(...times[n])), ((bytes / 2 ** 20) / median(times[n])).toFixed(0),
        n === names[0] ? 'baseline' : (ratio >= 1 ? `${ratio.toFixed(2)}x slower` : `${(1 / ratio).toFixed(2)}x faster`)])
    }
    console.log(`layertar: ${stats.entries ?? '?'} entries, ${(bytes / 2 ** 20).toFixed(1)} MiB of tar, ${rounds} interleaved rounds`)
    console.log(c.table(rows, ['l', 'r', 'r', 'r', 'l']))
    const result = { bytes, rounds, times }
    c.saveResults('layertar', result)
    return result
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

module.exports = { name: 'layertar', description: 'a tree → a layer tar with its DiffID: strata writeDirTar vs GNU tar (and tar | sha256sum)', run }

if (require.main === module) run(process.argv.slice(2)).catch((e) => { console.error(e.stack || e); process.exit(1) })
