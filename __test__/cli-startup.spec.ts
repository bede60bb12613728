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
import test, { ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { CLI, tmpDir } from './helpers/fs'
import { startScenario, within } from './helpers/child'
import { busyboxImage } from './helpers/fixtures'
import { storeWith } from './helpers/container'
import { main } from '../ts/cli/main'
import { Store } from '../ts/store'

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

test('a build whose steps all hit loads no built-in it has no use for; the CLI remembers parsed Dockerfiles, for its own bundle only', async (t) => {
  const dir = tmpDir(t, 'strata-build-startup-')
  const root = path.join(dir, 'root')
  const ctx = path.join(dir, 'ctx')
  fs.mkdirSync(ctx)
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\nLABEL x=1\n')
  fs.writeFileSync(path.join(ctx, 'a'), 'a\n')
  const preload = path.join(dir, 'preload.js')
  fs.writeFileSync(preload, PRELOAD)
  const out = path.join(dir, 'loaded.txt')
  const build = (): { id: string; loaded: string[]; status: number | null } => {
    fs.rmSync(out, { force: true })
    const r = spawnSync(process.execPath, ['-r', preload, CLI, '--root', root, 'build', '-q', ctx], {
      env: { ...process.env, STRATA_TEST_LOADED: out }, encoding: 'utf8', timeout: 60_000,
    })
    return { id: r.stdout.trim(), loaded: fs.readFileSync(out, 'utf8').split('\n').filter(Boolean), status: r.status }
  }
  const memos = (): string[] => {
    const d = path.join(root, 'builder', 'dockerfiles')
    return fs.existsSync(d) ? fs.readdirSync(d).sort() : []
  }
  const first = build()
  t.regex(first.id, /^sha256:[0-9a-f]{64}$/)
  t.is(memos().length, 1)
  // All cached: no crypto, perf_hooks (the performance global), streams, child processes, v8.
  const again = build()
  t.is(again.id, first.id)
  const unneeded = [...HEAVY, 'perf_hooks', 'v8']
  t.deepEqual(again.loaded.filter((m) => unneeded.includes(m)), [], `loaded: ${again.loaded.join(', ')}`)
  // A torn memo is parsed again (and written anew); another text is another memo.
  const memo = path.join(root, 'builder', 'dockerfiles', memos()[0])
  fs.writeFileSync(memo, '{"v":1,"parsed":')
  t.is(build().id, first.id)
  t.notThrows(() => JSON.parse(fs.readFileSync(memo, 'utf8')))
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\nLABEL x=2\n')
  const other = build()
  t.not(other.id, first.id)
  t.is(memos().length, 2)
  // A Dockerfile that does not parse leaves none.
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY <<EOF /f\nnever closed\n')
  t.is(build().status, 1)
  t.is(memos().length, 2)
  // Code not run from the bundle (the API, here from the sources) keeps none, and builds the same.
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\nLABEL x=1\n')
  const store = await Store.open({ root })
  t.is((await store.build({ context: ctx })).imageId, first.id)
  await store.close()
  t.is(memos().length, 2)
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
  // `build` goes straight to the full bundle (the small one would only hand it on), its output
  // and exit codes as ever: the image ID with -q, docker's usage error for a missing context.
  const ctx = path.join(dir, 'ctx')
  fs.mkdirSync(ctx)
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n')
  fs.writeFileSync(path.join(ctx, 'a'), 'a\n')
  for (const cmd of [['build', '-q', '-t', 'built:1', ctx], ['build', '-q', '-t', 'built:1', ctx], ['build']]) {
    const r = bundlesOf(cmd)
    t.deepEqual(r.read, ['strata.js'], `strata ${cmd.join(' ')}`)
    t.is(r.status, cmd.length === 1 ? 1 : 0, `strata ${cmd.join(' ')}`)
    if (cmd.length > 1) t.regex(r.stdout, /^sha256:[0-9a-f]{64}\n$/)
  }
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
  // A word that names a member of every object is no command either.
  for (const word of ['constructor', 'toString', '__proto__']) {
    const r = await run(word)
    t.deepEqual([r.code, r.err], [1, `strata: '${word}' is not a strata command.\nSee 'strata --help'\n`])
  }
})

/** Preloaded: writes whether the process loaded the native addon, at exit, to $STRATA_TEST_ADDON. */
const ADDON = `
const Module = require('module')
let loaded = false
const load = Module._extensions['.node']
Module._extensions['.node'] = function (...a) { loaded = true; return load.apply(this, a) }
process.on('exit', () => require('fs').writeFileSync(process.env.STRATA_TEST_ADDON, String(loaded)))
`

/** Runs the CLI against `root` with ADDON preloaded: its exit status, its stdout and whether it loaded the addon. */
function addonProbe(t: ExecutionContext, root: string): (cmd: string[]) => { addon: boolean; status: number | null; stdout: string } {
  const dir = tmpDir(t, 'strata-addon-')
  const preload = path.join(dir, 'preload.js')
  fs.writeFileSync(preload, ADDON)
  const out = path.join(dir, 'addon.txt')
  return (cmd) => {
    fs.rmSync(out, { force: true })
    const r = spawnSync(process.execPath, ['-r', preload, CLI, '--root', root, ...cmd], {
      env: { ...process.env, STRATA_TEST_ADDON: out }, encoding: 'utf8', timeout: 60_000,
    })
    return { addon: fs.readFileSync(out, 'utf8') === 'true', status: r.status, stdout: r.stdout }
  }
}

/** The write generation in `<root>/lock.gen` (ts/internal/lock.ts). */
function generation(root: string): bigint {
  return BigInt(fs.readFileSync(path.join(root, 'lock.gen'), 'latin1').slice(0, 20))
}

test('read-only commands read without the native addon, unless a writer may be mid-change', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  await store.containers.create('bb', { name: 'addon-probe', cmd: ['true'] })
  await store.close()
  const run = addonProbe(t, root)
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
  const odd = (generation(root) + 1n).toString().padStart(20, '0')
  fs.writeFileSync(gen, `${odd} ${odd}\n`)
  for (const [i, c] of cmds.entries()) {
    const r = run(c)
    t.true(r.addon, `strata ${c.join(' ')} with an odd generation`)
    // (The image has a new tag and tag time, and `ps` says how many seconds ago the container was made.)
    if (c[0] === 'history' || c[1] === 'addon-probe') t.is(r.stdout, seen[i].stdout, `strata ${c.join(' ')}`)
  }
  t.regex(run(['images']).stdout, /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\nbb +latest +(\S+) .*\nbb +two +\1 /)
})

test('a writer killed mid-change: the next read-only command repairs the store as any open does; later ones read without the addon', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const id = (await store.images.list())[0].id
  await store.close()
  const ready = path.join(tmpDir(t, 'strata-killed-'), 'ready')
  const writer = startScenario('diesMidChange', { root, id, tag: 'half:1', ready }, 120_000)
  await within(60_000, (async () => {
    while (!fs.existsSync(ready)) await new Promise((r) => setTimeout(r, 10))
  })(), 'the writer getting mid-change')
  writer.kill()
  t.is((await writer.done).signal, 'SIGKILL')
  // What it left: an odd generation, its entry in writers/, its staging dir.
  t.is(generation(root) % 2n, 1n)
  t.is(fs.readdirSync(path.join(root, 'writers')).length, 1)
  t.true(fs.readdirSync(path.join(root, 'tmp')).some((n) => n.startsWith('dies-mid-change-')))

  const run = addonProbe(t, root)
  const tags = ['images', '--format', '{{.Repository}}:{{.Tag}}']
  const first = run(tags)
  t.is(first.status, 0)
  // The full open: the flock (so the addon), the cleanup pass, the dead writer forgotten.
  t.true(first.addon)
  t.deepEqual(first.stdout.split('\n').filter(Boolean).sort(), ['bb:latest', 'half:1'])
  t.is(generation(root) % 2n, 0n)
  t.deepEqual(fs.readdirSync(path.join(root, 'writers')), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.includes('dies-mid-change')), [])
  // Repaired: the reader's open again, the same answer.
  for (const cmd of [tags, ['history', 'half:1']]) {
    const r = run(cmd)
    t.is(r.status, 0, cmd.join(' '))
    t.false(r.addon, cmd.join(' '))
  }
  t.is(run(tags).stdout, first.stdout)
})

test('read-only commands print no half-made change of a writer running meanwhile', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const id = (await store.images.list())[0].id
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
  // The writer: two tags in one exclusive section, a pause between them; both go in the next.
  let stop = false
  let rounds = 0
  const writer = (async () => {
    while (!stop) {
      await store.context.exclusive(async () => {
        await store.images.tag(id, 'pair:a')
        await sleep(15)
        await store.images.tag(id, 'pair:b')
      })
      await sleep(3)
      await store.context.exclusive(async () => {
        await store.images.remove('pair:a')
        await sleep(15)
        await store.images.remove('pair:b')
      })
      await sleep(3)
      rounds++
    }
  })()
  const cmds = [['images', '--format', '{{.Repository}}:{{.Tag}}'], ['inspect', '--format', '{{range .RepoTags}}{{println .}}{{end}}', 'bb:latest']]
  const seen: string[][] = []
  try {
    for (let i = 0; i < 16; i++) {
      const cmd = cmds[i % cmds.length]
      // Asynchronous: the writer runs in this process meanwhile.
      const r = await promisify(execFile)(process.execPath, [CLI, '--root', root, ...cmd], { encoding: 'utf8', timeout: 60_000 })
      seen.push(r.stdout.split('\n').filter((l) => l.startsWith('pair:')).sort())
    }
  } finally {
    stop = true
    await writer
  }
  t.true(rounds > 0)
  for (const pairs of seen) t.true(pairs.length === 0 || (pairs[0] === 'pair:a' && pairs[1] === 'pair:b'), `printed ${pairs.join(', ')}`)
  await store.close()
})

test('the strata program starts Node without NODE_EXTRA_CA_CERTS and hands it on unchanged to the processes strata starts', (t) => {
  const dir = tmpDir(t, 'strata-bin-env-')
  const bin = path.join(dir, 'bin')
  const cfg = path.join(dir, 'cfg')
  const rec = path.join(dir, 'rec')
  fs.mkdirSync(bin)
  fs.mkdirSync(cfg)
  fs.writeFileSync(path.join(cfg, 'config.json'), JSON.stringify({ credsStore: 'envrec' }))
  // A credential helper (started by `logout`) that writes what it was given and whether its
  // parent, strata's Node, was started with the variable (its environment as exec'd).
  fs.writeFileSync(path.join(bin, 'docker-credential-envrec'), [
    '#!/bin/sh',
    'cat > /dev/null',
    `{ printf '%s|%s\\n' "\${NODE_EXTRA_CA_CERTS-unset}" "\${STRATA_NODE_EXTRA_CA_CERTS-unset}"; tr '\\0' '\\n' < /proc/$PPID/environ | grep -c '^NODE_EXTRA_CA_CERTS='; } > '${rec}'`,
    '',
  ].join('\n'), { mode: 0o755 })
  const { NODE_EXTRA_CA_CERTS: _inherited, ...base } = process.env
  const run = (file: string, args: string[], ca: string | undefined) => {
    fs.rmSync(rec, { force: true })
    const r = spawnSync(file, [...args, 'logout', 'reg.example:5000'], {
      env: { ...base, PATH: `${bin}:${process.env.PATH}`, DOCKER_CONFIG: cfg, ...(ca === undefined ? {} : { NODE_EXTRA_CA_CERTS: ca }) },
      encoding: 'utf8', timeout: 60_000,
    })
    t.is(r.status, 0, r.stderr)
    const [given, parentHad] = fs.readFileSync(rec, 'utf8').trim().split('\n')
    return { stderr: r.stderr, given, parentHad: Number(parentHad) }
  }
  // A bundle that does not exist: a Node that parses it says so on stderr at start-up.
  const missing = path.join(dir, 'no such dir', "ca'.pem")
  const viaNode = run(process.execPath, [CLI], missing)
  t.regex(viaNode.stderr, /Ignoring extra certs/, '`node bin/strata.js` parses it (the case the program avoids)')
  t.is(viaNode.parentHad, 1)
  for (const ca of [missing, '', undefined]) {
    const r = run(CLI, [], ca)
    t.notRegex(r.stderr, /extra certs/, `NODE_EXTRA_CA_CERTS=${ca}: Node did not parse it`)
    t.is(r.parentHad, 0, `NODE_EXTRA_CA_CERTS=${ca}: Node started without it`)
    t.is(r.given, `${ca ?? 'unset'}|unset`, `NODE_EXTRA_CA_CERTS=${ca}: the helper got it as the caller set it`)
  }
})
