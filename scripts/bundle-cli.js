#!/usr/bin/env node
// Bundles the CLI into two files that bin/strata.js runs, each one file to read and compile
// instead of dozens of modules:
//
//   dist/cli/read.js    --version, --help and the read-only commands (`readOnly` in
//                       ts/cli/commands.ts: images, ps, inspect, history), from ts/cli/read-main.ts
//   dist/cli/strata.js  every command, from ts/cli/main.ts
//
// bin/strata.js runs read.js first, which answers `undefined` for a command line that is not
// its own; then strata.js runs it. The read-only bundle is a third of the size: of the modules
// the code loads on first use (`require` in place: command modules, the store's loading,
// pulling, pushing and building, a container's exec, cp and top), it holds only those in
// READ_ONLY_MODULES below; any other such `require` throws there. A read-only command that came
// to need one would fail at once in the CLI tests (they run every read-only command through it).
// The detached container supervisor (ts/containers/shim.ts) gets a bundle of its own beside
// them, dist/cli/shim.js, where the bundled `start` looks for it (next to its own code).
// The native addon is loaded at run time from native/. Part of `npm run build:ts`. Then the V8
// code cache beside each bundle is made by bin/strata.js (see there).
'use strict'
const path = require('node:path')
const fs = require('node:fs')
const esbuild = require('esbuild')

const root = path.resolve(__dirname, '..')
const outdir = path.join(root, 'dist', 'cli')

/** Stands for the bundle's id until it is known (the sha256 of the bundle holding this). */
const BUNDLE_ID_PLACEHOLDER = 'strata-bundle-id-placeholder-0000000000000000000000000000000000000'

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The addon's loader is required by a computed path (ts/internal/native.ts); keep it out of the bundle.
  // tsx is only resolved when running from ts/ sources, never from the bundle.
  external: ['*.node', 'tsx'],
  logLevel: 'warning',
  legalComments: 'none',
  // `strata --version` without reading package.json (ts/cli/main.ts).
  // And the bundle's own id (ts/build/parse-memo.ts): written in after the build (`bundleIds`).
  define: { STRATA_BUNDLED_VERSION: JSON.stringify(require('../package.json').version), STRATA_BUNDLE_ID: JSON.stringify(BUNDLE_ID_PLACEHOLDER) },
  // Less source to read and hash on every command (the code cache stands in for parsing it).
  // Names are kept: a bug's stack trace (`Internal` errors print one) stays readable.
  minifyWhitespace: true,
  minifySyntax: true,
}

/** The modules loaded on first use that the read-only commands need (relative to the root). */
const READ_ONLY_MODULES = new Set(['ts/store.ts', 'ts/cli/image-commands.ts', 'ts/cli/inspect-command.ts', 'ts/cli/container-commands.ts'])

/** In the read-only bundle, a `require` in place of a module not in READ_ONLY_MODULES throws. */
const readOnlyModules = {
  name: 'read-only-modules',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, (a) => {
      if (a.kind !== 'require-call' || !a.importer.startsWith(path.join(root, 'ts') + path.sep)) return undefined
      const rel = path.relative(root, path.resolve(a.resolveDir, a.path))
      const file = fs.existsSync(path.join(root, `${rel}.ts`)) ? `${rel}.ts` : path.join(rel, 'index.ts')
      return READ_ONLY_MODULES.has(file) ? undefined : { path: file, namespace: 'left-out' }
    })
    build.onLoad({ filter: /.*/, namespace: 'left-out' }, (a) => ({
      contents: `throw new Error(${JSON.stringify(`strata: ${a.path} is not in the CLI's read-only bundle (scripts/bundle-cli.js)`)})`,
      loader: 'js',
    }))
  },
}

/**
 * `import * as path from 'node:path'` comes out of esbuild as `path = __toESM(require("node:path"))`:
 * a copy of the module object with a getter for each of its exports, made again in every module
 * that imports it (some 30 times in the full bundle, 100 getters for node:fs) — a few ms of a
 * build's start-up, and every later `path.join` goes through a getter. A namespace import of a
 * built-in is only ever read member by member (no default import of one exists in ts/: checked
 * here), for which the module object itself is the same: it is used as it is.
 */
function nodeNamespaces(src, name) {
  const names = []
  const out = src.replace(/([A-Za-z_$][\w$]*)=__toESM\(require\("(node:[a-z_/]+)"\)\)/g, (_m, v, mod) => {
    names.push(v)
    return `${v}=require(${JSON.stringify(mod)})`
  })
  for (const v of names) {
    if (new RegExp(`(?<![\\w$])${v.replace(/\$/g, '\\$')}\\.default(?![\\w$])`).test(out)) {
      throw new Error(`${name}: ${v}.default is read: a default import of a built-in needs esbuild's namespace copy`)
    }
  }
  return out
}

/**
 * The bundle with its id written in: the sha256 of its text (with the placeholder), so code
 * that keeps results of its own computations across processes (parsed Dockerfiles) knows they
 * were made by exactly this code.
 */
function bundleId(src) {
  if (!src.includes(BUNDLE_ID_PLACEHOLDER)) return src
  const id = require('node:crypto').createHash('sha256').update(src).digest('hex')
  return src.replaceAll(BUNDLE_ID_PLACEHOLDER, id)
}

const built = Promise.all([
  esbuild.build({ ...common, entryPoints: { strata: path.join(root, 'ts', 'cli', 'main.ts'), shim: path.join(root, 'ts', 'containers', 'shim.ts') }, outdir }),
  esbuild.build({ ...common, entryPoints: { read: path.join(root, 'ts', 'cli', 'read-main.ts') }, outdir, plugins: [readOnlyModules] }),
])
built.then(() => {
  // One byte per character: esbuild escapes non-ASCII characters in strings but leaves them in
  // regular expressions and kept comments (a `µs` unit, a `→` in a doc comment). One of those
  // makes the whole 800 KB source a two-byte string when bin/strata.js reads it: some 3 ms of
  // UTF-8 decoding on every command, and a slower scan of whatever V8 compiles lazily. `\uXXXX`
  // means the same character in a string, a template, a regular expression or an identifier
  // (not in the raw text of a tagged template: String.raw would see the escape, and the sources
  // have none), and in a comment it is only text.
  for (const name of ['strata.js', 'read.js', 'shim.js']) {
    const file = path.join(outdir, name)
    const src = fs.readFileSync(file, 'utf8')
    const ascii = bundleId(nodeNamespaces(src, name).replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
    if (ascii !== src) fs.writeFileSync(file, ascii)
  }
  // A new bundle invalidates the code cache made for the old one; make the new ones.
  for (const name of fs.readdirSync(outdir)) if (name.endsWith('.cache')) fs.rmSync(path.join(outdir, name), { force: true })
  const warm = require('node:child_process').spawnSync(process.execPath, [path.join(root, 'bin', 'strata.js')], {
    env: { ...process.env, STRATA_WARM_CODE_CACHE: '1' }, stdio: 'inherit',
  })
  if (warm.status !== 0) process.exitCode = 1
}, (e) => {
  console.error(e)
  process.exitCode = 1
})
