/**
 * What a read-only CLI command loads: `images`, `ps`, `inspect` and `history` must not evaluate
 * the Node built-ins that only writing, building or running needs (crypto, child processes,
 * streams, fs/promises and what they pull in). Each costs milliseconds of every command's
 * start-up (bench/cli.js measures that; this test keeps a static import from bringing one back).
 * They run from the CLI's small read-only bundle (dist/cli/read.js) and never read the full one;
 * every other command runs from the full one. And the CLI's `main` runs from the sources too
 * (under tsx, as the tests load them), where commands load with `require`, not `import()`.
 * Read-only commands read the store without the native addon while no writer may be mid-change
 * (the write generation, ts/internal/lock.ts).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync, spawnSync } from 'node:child_process'
import { CLI, tmpDir } from './helpers/fs'
import { busyboxImage } from './helpers/fixtures'
import { storeWith } from './helpers/container'
import { main } from '../ts/cli/main'

/** Built-ins a read-only command has no use for (public names, as `process.moduleLoadList` shows them). */
const HEAVY = ['crypto', 'child_process', 'stream', 'stream/promises', 'fs/promises', 'net', 'zlib', 'readline', 'http', 'https', 'worker_threads']

/** Preloaded into the CLI's process: writes the built-ins loaded after it, at exit, to $STRATA_TEST_LOADED. */
const PRELOAD = `
const before = new Set(process.moduleLoadList)
process.on('exit', () => {
  const loaded = process.moduleLoadList.filter((m) => !before.has(m) && m.startsWith('NativeModule ')).map((m) => m.slice(13))
  require('fs').writeFileSync(process.env.STRATA_TEST_LOADED, loaded.join('\\n'))
})
`

test('read-only commands load no built-in that only writes, builds or runs need', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  await store.containers.create('bb', { name: 'lazy-probe', cmd: ['true'] })
  await store.close()
  const dir = tmpDir(t, 'strata-startup-')
  const preload = path.join(dir, 'preload.js')
  fs.writeFileSync(preload, PRELOAD)
  const out = path.join(dir, 'loaded.txt')
  for (const cmd of [['images'], ['ps', '-a'], ['inspect', 'bb:latest'], ['inspect', 'lazy-probe'], ['history', 'bb:latest'], ['--version']]) {
    fs.rmSync(out, { force: true })
    execFileSync(process.execPath, ['-r', preload, CLI, '--root', root, ...cmd], {
      env: { ...process.env, STRATA_TEST_LOADED: out }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000,
    })
    const loaded = fs.readFileSync(out, 'utf8').split('\n').filter(Boolean)
    t.true(loaded.length > 0 || cmd[0] === '--version', `${cmd.join(' ')}: the preload saw the CLI load its modules`)
    t.deepEqual(loaded.filter((m) => HEAVY.includes(m)), [], `strata ${cmd.join(' ')} loaded: ${loaded.join(', ')}`)
  }
})

/** Preloaded into the CLI's process: writes the dist/cli bundles it read, at exit, to $STRATA_TEST_READ. */
const BUNDLES = `
const fs = require('fs')
const read = []
const readFileSync = fs.readFileSync
fs.readFileSync = function (p, ...rest) {
  if (typeof p === 'string' && /dist\\/cli\\/[a-z]+\\.js$/.test(p)) read.push(p.slice(p.lastIndexOf('/') + 1))
  return readFileSync.call(this, p, ...rest)
}
process.on('exit', () => fs.writeFileSync(process.env.STRATA_TEST_READ, read.join('\\n')))
`

test('read-only commands run from the small bundle alone; others from the full one', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  await store.containers.create('bb', { name: 'bundle-probe', cmd: ['true'] })
  await store.close()
  const dir = tmpDir(t, 'strata-bundles-')
  const preload = path.join(dir, 'preload.js')
  fs.writeFileSync(preload, BUNDLES)
  const out = path.join(dir, 'read.txt')
  const bundlesOf = (cmd: string[]): { read: string[]; status: number | null; stdout: string } => {
    fs.rmSync(out, { force: true })
    const r = spawnSync(process.execPath, ['-r', preload, CLI, '--root', root, ...cmd], {
      env: { ...process.env, STRATA_TEST_READ: out }, encoding: 'utf8', timeout: 60_000,
    })
    return { read: fs.readFileSync(out, 'utf8').split('\n').filter(Boolean), status: r.status, stdout: r.stdout }
  }
  for (const cmd of [['images'], ['image', 'ls'], ['ps', '-a'], ['container', 'ls'], ['inspect', 'bb:latest'], ['inspect', 'bundle-probe'],
    ['image', 'inspect', 'bb'], ['container', 'inspect', 'bundle-probe'], ['history', 'bb:latest'], ['--version'], ['--help'], ['inspect', 'nothing-here']]) {
    const r = bundlesOf(cmd)
    t.deepEqual(r.read, ['read.js'], `strata ${cmd.join(' ')}`)
    t.is(r.status, cmd[1] === 'nothing-here' ? 1 : 0, `strata ${cmd.join(' ')}`)
  }
  for (const cmd of [['tag', 'bb:latest', 'bb:two'], ['diff', 'bundle-probe'], ['rmi', 'bb:two'], ['system', 'df'], ['no-such-command']]) {
    const r = bundlesOf(cmd)
    t.deepEqual(r.read, ['read.js', 'strata.js'], `strata ${cmd.join(' ')}`)
    t.is(r.status, cmd[0] === 'no-such-command' ? 1 : 0, `strata ${cmd.join(' ')}`)
  }
  t.regex(bundlesOf(['images']).stdout, /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\nbb +latest /)
})

test('the CLI runs from its sources (commands load with require, not import())', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  await store.containers.create('bb', { name: 'source-probe', cmd: ['true'] })
  await store.close()
  const run = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = ''
    let err = ''
    const code = await main(['--root', root, ...argv], { out: (s) => { out += s }, err: (s) => { err += s }, isTty: false })
    return { code, out, err }
  }
  const images = await run('images')
  t.is(images.code, 0, images.err)
  t.regex(images.out, /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\nbb +latest /)
  const ps = await run('ps', '-a', '--format', '{{.Names}}')
  t.deepEqual([ps.code, ps.out], [0, 'source-probe\n'], ps.err)
  const tag = await run('tag', 'bb:latest', 'bb:two')
  t.is(tag.code, 0, tag.err)
  const listed = await run('images', '--format', '{{.Repository}}:{{.Tag}}')
  t.deepEqual(listed.out.split('\n').filter(Boolean).sort(), ['bb:latest', 'bb:two'])
})

/** Preloaded: writes whether the process loaded the native addon, at exit, to $STRATA_TEST_ADDON. */
const ADDON = `
const Module = require('module')
let loaded = false
const load = Module._extensions['.node']
Module._extensions['.node'] = function (...a) { loaded = true; return load.apply(this, a) }
process.on('exit', () => require('fs').writeFileSync(process.env.STRATA_TEST_ADDON, String(loaded)))
`

test('read-only commands read without the native addon, unless a writer may be mid-change', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  await store.containers.create('bb', { name: 'addon-probe', cmd: ['true'] })
  await store.close()
  const dir = tmpDir(t, 'strata-addon-')
  const preload = path.join(dir, 'preload.js')
  fs.writeFileSync(preload, ADDON)
  const out = path.join(dir, 'addon.txt')
  const run = (cmd: string[]): { addon: boolean; status: number | null; stdout: string } => {
    fs.rmSync(out, { force: true })
    const r = spawnSync(process.execPath, ['-r', preload, CLI, '--root', root, ...cmd], {
      env: { ...process.env, STRATA_TEST_ADDON: out }, encoding: 'utf8', timeout: 60_000,
    })
    return { addon: fs.readFileSync(out, 'utf8') === 'true', status: r.status, stdout: r.stdout }
  }
  const cmds = [['images'], ['ps', '-a'], ['inspect', 'bb:latest'], ['inspect', 'addon-probe'], ['history', 'bb:latest']]
  const seen = cmds.map((c) => run(c))
  for (const [i, r] of seen.entries()) {
    t.false(r.addon, `strata ${cmds[i].join(' ')}`)
    t.is(r.status, 0, `strata ${cmds[i].join(' ')}`)
  }
  // A write loads it (and counts the generation on).
  t.true(run(['tag', 'bb:latest', 'bb:two']).addon)
  // An odd generation: a writer holds the lock or died mid-change. Readers take the flock, and
  // print the same as before (but the new tag).
  const gen = path.join(root, 'lock.gen')
  const odd = (BigInt(fs.readFileSync(gen, 'latin1').slice(0, 20)) + 1n).toString().padStart(20, '0')
  fs.writeFileSync(gen, `${odd} ${odd}\n`)
  for (const [i, c] of cmds.entries()) {
    const r = run(c)
    t.true(r.addon, `strata ${c.join(' ')} with an odd generation`)
    // (The image has a new tag and tag time, and `ps` says how many seconds ago the container was made.)
    if (c[0] === 'history' || c[1] === 'addon-probe') t.is(r.stdout, seen[i].stdout, `strata ${c.join(' ')}`)
  }
  t.regex(run(['images']).stdout, /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\nbb +latest +(\S+) .*\nbb +two +\1 /)
})
