/**
 * What a read-only CLI command loads: `images`, `ps`, `inspect` and `history` must not evaluate
 * the Node built-ins that only writing, building or running needs (crypto, child processes,
 * streams, fs/promises and what they pull in). Each costs milliseconds of every command's
 * start-up (bench/cli.js measures that; this test keeps a static import from bringing one back).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { CLI, tmpDir } from './helpers/fs'
import { busyboxImage } from './helpers/fixtures'
import { storeWith } from './helpers/container'

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
