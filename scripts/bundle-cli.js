#!/usr/bin/env node
// Bundles the CLI (ts/cli/main.ts and everything it loads) into one file, dist/cli/strata.js,
// which bin/strata.js runs: one file to read and compile instead of dozens of modules. The
// detached container supervisor (ts/containers/shim.ts) gets a bundle of its own beside it,
// dist/cli/shim.js, where the bundled `start` looks for it (next to its own code).
// Command modules stay lazy inside the bundle (esbuild turns `import()` into a call that
// evaluates the module on first use). The native addon is loaded at run time from native/.
// Part of `npm run build:ts`. Then the V8 code cache beside the bundle is made by bin/strata.js,
// warmed with the read-only commands (see there).
'use strict'
const path = require('node:path')
const fs = require('node:fs')
const esbuild = require('esbuild')

const root = path.resolve(__dirname, '..')
const outdir = path.join(root, 'dist', 'cli')

esbuild.buildSync({
  entryPoints: { strata: path.join(root, 'ts', 'cli', 'main.ts'), shim: path.join(root, 'ts', 'containers', 'shim.ts') },
  outdir,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The addon's loader is required by a computed path (ts/native.ts); keep it out of the bundle.
  // tsx is only resolved when running from ts/ sources, never from the bundle.
  external: ['*.node', 'tsx'],
  logLevel: 'warning',
  legalComments: 'none',
})
// One byte per character: esbuild escapes non-ASCII characters in strings but leaves them in
// regular expressions and kept comments (a `µs` unit, a `→` in a doc comment). One of those
// makes the whole 800 KB source a two-byte string when bin/strata.js reads it: some 3 ms of
// UTF-8 decoding on every command, and a slower scan of whatever V8 compiles lazily. `\uXXXX`
// means the same character in a string, a template, a regular expression or an identifier
// (not in the raw text of a tagged template: String.raw would see the escape, and the sources
// have none), and in a comment it is only text.
for (const name of ['strata.js', 'shim.js']) {
  const file = path.join(outdir, name)
  const src = fs.readFileSync(file, 'utf8')
  const ascii = src.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  if (ascii !== src) fs.writeFileSync(file, ascii)
}
// A new bundle invalidates the code cache made for the old one; make the new one.
fs.rmSync(path.join(outdir, 'strata.js.cache'), { force: true })
const warm = require('node:child_process').spawnSync(process.execPath, [path.join(root, 'bin', 'strata.js')], {
  env: { ...process.env, STRATA_WARM_CODE_CACHE: '1' }, stdio: 'inherit',
})
if (warm.status !== 0) process.exitCode = 1
