#!/bin/sh
':' //; if [ -n "${NODE_EXTRA_CA_CERTS+set}" ]; then STRATA_NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS; export STRATA_NODE_EXTRA_CA_CERTS; unset NODE_EXTRA_CA_CERTS; fi; exec node "$0" "$@"
// The two lines above are both shell and JavaScript. Run as a program (the `strata` npm links),
// /bin/sh reads them: it moves NODE_EXTRA_CA_CERTS aside and starts Node on this file. Node 20
// parses that CA bundle at start-up, before any JavaScript runs, for the TLS it might do (some
// 30 ms of a 220 KB bundle, on every command); strata's registry client is Rust, so its Node
// never uses it. The variable is put back below, before anything runs, for the processes
// strata starts (credential helpers may be Node programs that need it). To Node, line 2 is a
// string and a comment; `node bin/strata.js` runs the same, with the variable parsed.
// The `strata` command. Runs one of the CLI's two bundles (made by `npm run build:ts`,
// scripts/bundle-cli.js) through a V8 code cache kept beside it (<bundle>.cache), so a command
// neither reads dozens of modules nor compiles the functions it runs:
//
//   dist/cli/read.js    first: --version, --help and the read-only commands (images, ps,
//                       inspect, history); its `main` answers `undefined` for anything else
//   dist/cli/strata.js  then, for every other command line
//
// The read-only bundle has one cache per read-only command (read.js.<command>.cache: images, ps,
// inspect, history), each holding only the code that command ran, and read.js.cache for every
// other command line (--version, --help, and the commands it hands on): V8 deserializes the
// whole cache it is given, and a cache of every command's code costs each command some 2 ms.
// `build` goes straight to the full bundle (the read-only one would only hand it on), with a
// cache of its own, strata.js.build.cache, holding the code a build runs; strata.js.cache
// serves every other command.
//
// The build makes the caches (scripts/bundle-cli.js runs this file with STRATA_WARM_CODE_CACHE=1):
// in a temporary store holding a one-file image and a container, each cache's commands run in a
// process of their own, so the cache holds the code they ran (row formatting included), then it
// is written. A run that finds its cache missing or rejected by V8 (another Node version) writes
// it again after its own command; where the package dir is read-only the CLI runs without one.
'use strict'
if (process.env.STRATA_NODE_EXTRA_CA_CERTS !== undefined) {
  process.env.NODE_EXTRA_CA_CERTS = process.env.STRATA_NODE_EXTRA_CA_CERTS
  delete process.env.STRATA_NODE_EXTRA_CA_CERTS
}
const path = require('node:path')
const fs = require('node:fs')
const vm = require('node:vm')
const Module = require('node:module')

const dist = path.join(__dirname, '..', 'dist', 'cli')

/** Each read-only command's cache (its spellings → its name), as read.js.<name>.cache. */
const READ_CACHES = new Map(Object.entries({
  images: 'images', 'image-ls': 'images', 'image-list': 'images',
  ps: 'ps', 'container-ls': 'ps', 'container-list': 'ps',
  inspect: 'inspect', 'image-inspect': 'inspect', 'container-inspect': 'inspect',
  history: 'history', 'image-history': 'history',
}))

/** Where the command words of `argv` start (after the global `--root`). */
function commandAt(argv) {
  let i = 0
  while (argv[i] === '--root' || argv[i]?.startsWith('--root=')) i += argv[i] === '--root' ? 2 : 1
  return i
}

/** The read-only bundle's cache for `argv`: its command's, else the general one. */
function readCache(argv) {
  const i = commandAt(argv)
  const name = READ_CACHES.get(`${argv[i]}-${argv[i + 1]}`) ?? READ_CACHES.get(argv[i])
  return name ? `read.js.${name}.cache` : 'read.js.cache'
}

/** The full bundle's cache for `argv`: `build`'s own, else the general one. */
function fullCache(argv) {
  return argv[commandAt(argv)] === 'build' ? 'strata.js.build.cache' : 'strata.js.cache'
}

/** One bundle, compiled with its code cache: `{ exports, saveCache }`, or null when not built. */
function loadBundle(name, cacheName = `${name}.cache`) {
  const file = path.join(dist, name)
  const cacheFile = path.join(dist, cacheName)
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
  const cache = fullCache(argv)
  const read = cache === 'strata.js.cache' ? loadBundle('read.js', readCache(argv)) : null
  if (read) {
    const code = await read.exports.main(argv)
    read.saveCache()
    // Done: the output went out synchronously (ts/cli/io.ts), the store is closed and nothing
    // is left running. Exiting now, rather than when the loop runs dry, skips what V8 would
    // still do first: a young-generation GC it queued as a task (some 2.5 ms; bench/cli.js).
    if (code !== undefined) process.exit(code)
  }
  const full = loadBundle('strata.js', cache) ?? notBuilt()
  const code = await full.exports.main(argv)
  full.saveCache()
  // A build is over once `main` resolves: output written synchronously, the store closed,
  // nothing left running. Exiting now skips what V8 would still do before the loop ran dry,
  // as for the read-only commands (~3 ms). Other commands (`run`, `logs -f`, `cp`) may leave
  // streams to drain: they end with the loop.
  if (cache === 'strata.js.build.cache') process.exit(code)
  return code
}

/** What the read-only bundle's caches are warmed with (in a store with WARM_IMAGE and WARM_CONTAINER). */
const WARM_IMAGE = 'warm:1'
const WARM_CONTAINER = 'warm-container'
const WARM_UP_READ = {
  'read.js.cache': [['--help'], ['--version'], ['tag', WARM_IMAGE, 'warm:2']],
  'read.js.images.cache': [['images']],
  'read.js.ps.cache': [['ps', '-a']],
  'read.js.inspect.cache': [['inspect', WARM_IMAGE], ['inspect', WARM_CONTAINER]],
  'read.js.history.cache': [['history', WARM_IMAGE]],
}
/** And the full bundle's general cache. */
const WARM_UP_FULL = [['diff', WARM_CONTAINER], ['rmi', 'x'], ['tag', WARM_IMAGE, 'warm:3'], ['system', 'df']]
/**
 * And `build`'s (strata.js.build.cache), in the context WARM_CONTEXT: two stages, a COPY --from,
 * WORKDIR, ARG, ENV, LABEL, CMD, a .dockerignore; built, then built again all cached, which is
 * the path a rebuild takes. It mounts overlays, so it needs root; without, it fails quietly and
 * the cache just holds less. No RUN: the store holds no image with a shell.
 */
const WARM_UP_BUILD = [['build', '-q', '-t', 'warm:1', 'CONTEXT'], ['build', '-q', '-t', 'warm:1', 'CONTEXT']]
const WARM_CONTEXT = {
  Dockerfile: 'ARG BASE=scratch\nFROM ${BASE} AS gen\nCOPY a /gen/a\nFROM scratch\nENV APP=/app\nWORKDIR /app\nLABEL warm=1\nCOPY dir/ /app/dir/\nCOPY --from=gen /gen /app/gen\nCMD ["/a"]\n',
  '.dockerignore': '*.tmp\n',
  a: 'a\n',
  'dir/b': 'b\n',
  'dir/c.tmp': 'c\n',
}
const quiet = { out() {}, err() {}, isTty: false }

/** Makes every cache: the full bundle's general one here, build's and each of the read-only bundle's in a process of its own. */
async function warmUp() {
  const os = require('node:os')
  const { spawnSync } = require('node:child_process')
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-warm-'))
  const full = loadBundle('strata.js') ?? notBuilt()
  try {
    // The store the commands read: a one-file image and a container on it. This needs the
    // native addon (and `create` root); without, the commands warm on an emptier store.
    const rootfs = path.join(root, 'warm-rootfs')
    fs.mkdirSync(rootfs)
    fs.writeFileSync(path.join(rootfs, 'a'), 'a\n')
    const tar = spawnSync('tar', ['-cf', `${rootfs}.tar`, '-C', rootfs, 'a'])
    if (tar.status === 0) await full.exports.main(['--root', root, 'import', `${rootfs}.tar`, WARM_IMAGE], quiet).catch(() => 1)
    await full.exports.main(['--root', root, 'create', '--name', WARM_CONTAINER, WARM_IMAGE, 'true'], quiet).catch(() => 1)
    for (const argv of WARM_UP_FULL) await full.exports.main(['--root', root, ...argv], quiet)
    full.saveCache(true)
    const ctx = path.join(root, 'warm-context')
    for (const [name, text] of Object.entries(WARM_CONTEXT)) {
      fs.mkdirSync(path.dirname(path.join(ctx, name)), { recursive: true })
      fs.writeFileSync(path.join(ctx, name), text)
    }
    for (const cache of [...Object.keys(WARM_UP_READ), 'strata.js.build.cache']) {
      const r = spawnSync(process.execPath, [__filename], { env: { ...process.env, STRATA_WARM_CODE_CACHE: cache, STRATA_WARM_ROOT: root }, stdio: 'inherit' })
      if (r.status !== 0) throw new Error(`warming ${cache} failed`)
    }
  } finally {
    await full.exports.main(['--root', root, 'rm', '-f', WARM_CONTAINER], quiet).catch(() => 1)
    fs.rmSync(root, { recursive: true, force: true })
  }
}

/** Makes one cache (a key of WARM_UP_READ, or `build`'s) in this fresh process. */
async function warmUpOne(cache, root) {
  if (cache === 'strata.js.build.cache') {
    const full = loadBundle('strata.js', cache) ?? notBuilt()
    const ctx = path.join(root, 'warm-context')
    for (const argv of WARM_UP_BUILD) await full.exports.main(['--root', root, ...argv.map((a) => (a === 'CONTEXT' ? ctx : a))], quiet).catch(() => 1)
    full.saveCache(true)
    return
  }
  const read = loadBundle('read.js', cache) ?? notBuilt()
  for (const argv of WARM_UP_READ[cache]) await read.exports.main(['--root', root, ...argv], quiet)
  read.saveCache(true)
}

const warm = process.env.STRATA_WARM_CODE_CACHE
;(warm ? (warm === '1' ? warmUp() : warmUpOne(warm, process.env.STRATA_WARM_ROOT)).then(() => 0) : run(process.argv.slice(2)))
  .then((code) => {
    process.exitCode = code
  })
  .catch((err) => {
    process.stderr.write(`strata: ${err && err.stack ? err.stack : err}\n`)
    process.exitCode = 1
  })
