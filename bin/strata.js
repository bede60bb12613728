#!/usr/bin/env node
// The `strata` command. Runs the CLI's one-file bundle (dist/cli/strata.js, made by
// `npm run build:ts`) through a V8 code cache kept beside it (dist/cli/strata.js.cache), so
// a command neither reads dozens of modules nor compiles the functions it runs.
//
// The build makes the cache (scripts/bundle-cli.js runs this file with STRATA_WARM_CODE_CACHE=1:
// the read-only commands, and a tiny `build` twice, run in one process against an empty store in
// a temporary dir, so the cache holds the code they run, then it is written). A run that finds it missing or rejected by
// V8 (another Node version) writes it again after its own command; where the package dir is
// read-only the CLI just runs without one.
'use strict'
const path = require('node:path')
const fs = require('node:fs')
const vm = require('node:vm')
const Module = require('node:module')

const bundle = path.join(__dirname, '..', 'dist', 'cli', 'strata.js')
const cacheFile = `${bundle}.cache`

let source
try {
  source = fs.readFileSync(bundle, 'utf8')
} catch {
  process.stderr.write('strata: not built yet; run `npm run setup`\n')
  process.exit(1)
}
let cachedData
try {
  cachedData = fs.readFileSync(cacheFile)
} catch { /* first run: made below */ }

const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData })
const mod = { exports: {} }
script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(bundle), mod, bundle, path.dirname(bundle))

function saveCache() {
  if (cachedData && !script.cachedDataRejected) return
  try {
    const tmp = `${cacheFile}.${process.pid}`
    fs.writeFileSync(tmp, script.createCachedData())
    fs.renameSync(tmp, cacheFile)
  } catch { /* read-only install: run without a cache */ }
}

/** The commands whose code goes into the cache the build makes (all read-only). */
const WARM_UP = [['--help'], ['--version'], ['images'], ['images', '--format', '{{json .}}'], ['ps', '-a'], ['inspect', 'x'],
  ['history', 'x'], ['diff', 'x'], ['rmi', 'x'], ['image', 'inspect', 'x']]

async function warmUp() {
  const os = require('node:os')
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-warm-'))
  const quiet = { out() {}, err() {}, isTty: false }
  try {
    for (const argv of WARM_UP) await mod.exports.main(['--root', root, ...argv], quiet)
    // A small build (a metadata step, a COPY, a cache hit on the second run), so `build`'s code
    // — the Dockerfile parser included — is in the cache too. It mounts overlays, so it needs
    // root; without, it fails quietly and the cache just holds less.
    const ctx = path.join(root, 'warm-context')
    fs.mkdirSync(ctx)
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nENV A=1\nCOPY a /a\nCMD ["/a"]\n')
    fs.writeFileSync(path.join(ctx, 'a'), 'a\n')
    for (let i = 0; i < 2; i++) await mod.exports.main(['--root', root, 'build', '-q', '-t', 'warm:1', ctx], quiet).catch(() => 1)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
  cachedData = undefined
  saveCache()
}

;(process.env.STRATA_WARM_CODE_CACHE ? warmUp().then(() => 0) : mod.exports.main(process.argv.slice(2)))
  .then((code) => {
    process.exitCode = code
    saveCache()
  })
  .catch((err) => {
    process.stderr.write(`strata: ${err && err.stack ? err.stack : err}\n`)
    process.exitCode = 1
  })
