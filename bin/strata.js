#!/usr/bin/env node
// The `strata` command. Runs one of the CLI's two bundles (made by `npm run build:ts`,
// scripts/bundle-cli.js) through a V8 code cache kept beside it (<bundle>.cache), so a command
// neither reads dozens of modules nor compiles the functions it runs:
//
//   dist/cli/read.js    first: --version, --help and the read-only commands (images, ps,
//                       inspect, history); its `main` answers `undefined` for anything else
//   dist/cli/strata.js  then, for every other command line
//
// The build makes the caches (scripts/bundle-cli.js runs this file with STRATA_WARM_CODE_CACHE=1:
// each bundle's commands run in one process against an empty store in a temporary dir, so each
// cache holds the code its commands run, then it is written). A run that finds a cache missing
// or rejected by V8 (another Node version) writes it again after its own command; where the
// package dir is read-only the CLI just runs without one.
'use strict'
const path = require('node:path')
const fs = require('node:fs')
const vm = require('node:vm')
const Module = require('node:module')

const dist = path.join(__dirname, '..', 'dist', 'cli')

/** One bundle, compiled with its code cache: `{ exports, saveCache }`, or null when not built. */
function loadBundle(name) {
  const file = path.join(dist, name)
  const cacheFile = `${file}.cache`
  let source
  try {
    // UTF-8: the bundles are ASCII (scripts/bundle-cli.js escapes the rest), and V8 decodes
    // ASCII as UTF-8 twice as fast as it decodes latin1 (0.4 ms against 0.9 for read.js).
    source = fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
  let cachedData
  try {
    cachedData = fs.readFileSync(cacheFile)
  } catch { /* first run: made below */ }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData })
  const mod = { exports: {} }
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, dist)
  return {
    exports: mod.exports,
    /** Writes the cache when there was none or V8 rejected it (`force`: always, after a warm-up). */
    saveCache(force = false) {
      if (!force && cachedData && !script.cachedDataRejected) return
      try {
        const tmp = `${cacheFile}.${process.pid}`
        fs.writeFileSync(tmp, script.createCachedData())
        fs.renameSync(tmp, cacheFile)
      } catch { /* read-only install: run without a cache */ }
    },
  }
}

function notBuilt() {
  process.stderr.write('strata: not built yet; run `npm run setup`\n')
  process.exit(1)
}

/** Runs `argv` through the read-only bundle, else the full one; resolves the exit code. */
async function run(argv) {
  const read = loadBundle('read.js')
  if (read) {
    const code = await read.exports.main(argv)
    read.saveCache()
    // Done: the output went out synchronously (ts/cli/io.ts), the store is closed and nothing
    // is left running. Exiting now, rather than when the loop runs dry, skips what V8 would
    // still do first: a young-generation GC it queued as a task (some 2.5 ms; bench/cli.js).
    if (code !== undefined) process.exit(code)
  }
  const full = loadBundle('strata.js') ?? notBuilt()
  const code = await full.exports.main(argv)
  full.saveCache()
  return code
}

/** What each bundle's cache is warmed with: the commands that bundle runs. */
const WARM_UP_READ = [['--help'], ['--version'], ['images'], ['images', '--format', '{{json .}}'], ['ps', '-a'], ['inspect', 'x'],
  ['history', 'x'], ['image', 'inspect', 'x'], ['image', 'ls']]
const WARM_UP_FULL = [['diff', 'x'], ['rmi', 'x'], ['tag', 'x', 'y'], ['system', 'df']]

async function warmUp() {
  const os = require('node:os')
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-warm-'))
  const quiet = { out() {}, err() {}, isTty: false }
  const read = loadBundle('read.js') ?? notBuilt()
  const full = loadBundle('strata.js') ?? notBuilt()
  try {
    for (const argv of WARM_UP_READ) await read.exports.main(['--root', root, ...argv], quiet)
    for (const argv of WARM_UP_FULL) await full.exports.main(['--root', root, ...argv], quiet)
    // A small build (a metadata step, a COPY, a cache hit on the second run), so `build`'s code
    // — the Dockerfile parser included — is in the cache too. It mounts overlays, so it needs
    // root; without, it fails quietly and the cache just holds less.
    const ctx = path.join(root, 'warm-context')
    fs.mkdirSync(ctx)
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nENV A=1\nCOPY a /a\nCMD ["/a"]\n')
    fs.writeFileSync(path.join(ctx, 'a'), 'a\n')
    for (let i = 0; i < 2; i++) await full.exports.main(['--root', root, 'build', '-q', '-t', 'warm:1', ctx], quiet).catch(() => 1)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
  read.saveCache(true)
  full.saveCache(true)
}

;(process.env.STRATA_WARM_CODE_CACHE ? warmUp().then(() => 0) : run(process.argv.slice(2)))
  .then((code) => {
    process.exitCode = code
  })
  .catch((err) => {
    process.stderr.write(`strata: ${err && err.stack ? err.stack : err}\n`)
    process.exitCode = 1
  })
