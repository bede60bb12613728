/**
 * The seeds' acceptance story (seed 003 `docker commit`, seed 004 container layer): run a
 * container, change its filesystem, commit it, and get an image whose history has one new layer
 * on top of the old, shared ones. Real overlay mounts, real runc. Needs root.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store, StrataError } from '../ts'
import { cli } from './helpers/fs'
import { busyboxImage } from './helpers/fixtures'
import { storeWith, appImage } from './helpers/container'

test('seed story via the CLI: run --name c1 bb sh -c "echo hi > /greeting", commit c1 bb:hi, history and sharing', async (t) => {
  const bb = busyboxImage(['bb:latest'])
  const { root } = await storeWith(t, [bb])
  const layerdb = path.join(root, 'image/overlay2/layerdb/sha256')
  const before = fs.readdirSync(layerdb).sort()

  const run = await cli(root, ['run', '--name', 'c1', 'bb', 'sh', '-c', 'echo hi > /greeting'])
  t.is(run.code, 0, run.stderr)
  const diff = await cli(root, ['diff', 'c1'])
  t.is(diff.stdout, 'A /greeting\n')

  const commit = await cli(root, ['commit', 'c1', 'bb:hi'])
  t.is(commit.code, 0, commit.stderr)
  t.regex(commit.stdout, /^sha256:[0-9a-f]{64}\n$/)
  const newId = commit.stdout.trim()

  // One new layer on top; the old ones are the same layer db entries (shared, not copied).
  const after = fs.readdirSync(layerdb).sort()
  t.is(after.length, before.length + 1)
  t.true(before.every((c) => after.includes(c)))
  const [info] = JSON.parse((await cli(root, ['inspect', 'bb:hi'])).stdout)
  t.is(info.Id, newId)
  t.is(info.RootFS.Layers.length, 2)
  t.is(info.RootFS.Layers[0], bb.diffIds[0])
  t.is(info.Parent, bb.id)
  t.is(info.Container.length, 64)
  const [base] = JSON.parse((await cli(root, ['image', 'inspect', 'bb:latest'])).stdout)
  t.is(info.GraphDriver.Data.LowerDir, base.GraphDriver.Data.UpperDir, 'the new layer sits on the very same base layer dir')

  // history: the new row carries the new ID and the container's command; the parent's row its ID.
  const h = await cli(root, ['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}|{{.Size}}', 'bb:hi'])
  const rows = h.stdout.trim().split('\n')
  t.is(rows.length, 2)
  t.is(rows[0], `${newId}|sh -c echo hi > /greeting|3B`)
  t.true(rows[1].startsWith(`${bb.id}|`), rows[1])

  // The new image runs and has the file; the container keeps its own writable layer.
  const cat = await cli(root, ['run', '--rm', 'bb:hi', 'cat', '/greeting'])
  t.is(cat.code, 0, cat.stderr)
  t.is(cat.stdout, 'hi\n')
  t.is((await cli(root, ['diff', 'c1'])).stdout, 'A /greeting\n')
  const ps = await cli(root, ['ps', '-a', '--format', '{{.Names}} {{.Image}} {{.Status}}'])
  t.regex(ps.stdout, /^c1 bb Exited \(0\) /m)
  // COMMAND as docker ps shows it: args with spaces single-quoted, cut to 20 columns, Go-quoted.
  t.regex((await cli(root, ['ps', '-a', '--format', '{{.Names}} {{.Command}}'])).stdout, /^c1 "sh -c 'echo hi > \/g…"$/m)
})

test('commit -m -a -c: message, author, and every change kind land in the image config', async (t) => {
  const { store } = await storeWith(t, [appImage(['app:1'])])
  const c = await store.containers.create('app:1', { name: 'work', cmd: ['sh', '-c', 'mkdir -p /data && echo 1 > /data/x'] })
  t.is((await c.run()).exitCode, 0)
  const id = await c.commit({
    ref: 'app:2', message: 'add data', author: 'Ada <ada@example.com>',
    changes: ['CMD ["cat", "/data/x"]', 'ENV MODE=prod', 'WORKDIR /data', 'USER nobody', 'LABEL team=core', 'EXPOSE 8080', 'STOPSIGNAL SIGUSR1'],
  })
  const info = await store.images.inspect('app:2')
  t.is(info.Id, id)
  t.is(info.Comment, 'add data')
  t.is(info.Author, 'Ada <ada@example.com>')
  const cfg = info.Config as Record<string, unknown>
  t.deepEqual(cfg.Cmd, ['cat', '/data/x'])
  t.true((cfg.Env as string[]).includes('MODE=prod'))
  t.is(cfg.WorkingDir, '/data')
  t.is(cfg.User, 'nobody')
  t.deepEqual(cfg.Labels, { team: 'core' })
  t.deepEqual(cfg.ExposedPorts, { '8080/tcp': {} })
  t.is(cfg.StopSignal, 'SIGUSR1')
  const hist = await store.images.history('app:2')
  t.is(hist[0].comment, 'add data')
  t.is(hist[0].createdBy, 'sh -c mkdir -p /data && echo 1 > /data/x')
  t.is(hist.length, 3)
  // It runs with the new config: cwd, user and command.
  const r = await (await store.containers.create('app:2', { autoRemove: true })).run()
  t.is(r.exitCode, 0, r.stderr.toString())
  t.is(r.stdout.toString(), '1\n')
  const who = await (await store.containers.create('app:2', { cmd: ['sh', '-c', 'id -un; pwd; echo $MODE'] })).run()
  t.is(who.stdout.toString(), 'nobody\n/data\nprod\n')
  // A bad change is refused before anything is written.
  await t.throwsAsync(c.commit({ changes: ['RUN echo no'] }), { instanceOf: StrataError, code: 'InvalidArgument' })
})

test('commit of an unchanged container adds an empty history row and no layer', async (t) => {
  const bb = busyboxImage(['bb:latest'])
  const { store } = await storeWith(t, [bb])
  const c = await store.containers.create('bb', { cmd: ['true'] })
  const id = await c.commit({ ref: 'bb:same' })
  const info = await store.images.inspect(id)
  t.deepEqual((info.RootFS as { Layers: string[] }).Layers, bb.diffIds)
  const hist = await store.images.history('bb:same')
  t.is(hist.length, 2)
  t.is(hist[0].size, 0)
})

test('committing a running container pauses it (runc pause/resume) and it keeps running', async (t) => {
  const { store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const c = await store.containers.create('bb', { name: 'live', cmd: ['sh', '-c', 'echo up > /state; while true; do sleep 0.05; done'] })
  await c.start()
  for (let i = 0; i < 100 && !fs.existsSync(path.join((await c.layers()).upperDir, 'state')); i++) await new Promise((r) => setTimeout(r, 50))
  const id = await c.commit({ ref: 'bb:live' })
  t.true((await c.info()).State.Running)
  t.false((await c.info()).State.Paused)
  const r = await (await store.containers.create(id, { cmd: ['cat', '/state'], autoRemove: true })).run()
  t.is(r.stdout.toString(), 'up\n')
  await c.stop({ timeout: 1 })
  t.is((await c.info()).State.Status, 'exited')
})

/**
 * A runtime that answers the first `pause` calls as runc does when the cgroup v1 freezer stayed
 * FREEZING (`unable to freeze`, the cgroup thawed back) and is the real runc otherwise. `other`
 * is the message it gives instead for a failure that must not be tried again.
 */
function flakyFreezer(dir: string, failures: number, message = 'unable to freeze'): { runtime: string; pauses: () => number } {
  const count = path.join(dir, 'pause-calls')
  const runtime = path.join(dir, 'flaky-runc')
  fs.writeFileSync(runtime, [
    '#!/bin/sh',
    'for a in "$@"; do',
    '  if [ "$a" = pause ]; then',
    `    n=$(cat '${count}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${count}'`,
    `    if [ $n -le ${failures} ]; then echo 'time="2026-12-01T00:00:00Z" level=error msg="${message}"' >&2; exit 1; fi`,
    '  fi',
    'done',
    'exec runc "$@"',
    '',
  ].join('\n'), { mode: 0o755 })
  return { runtime, pauses: () => Number(fs.readFileSync(count, 'utf8')) }
}

test('a pause the freezer could not finish in time is tried again: the commit succeeds and the container runs on', async (t) => {
  const { dir, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const { runtime, pauses } = flakyFreezer(dir, 3)
  const c = await store.containers.create('bb', { runtime, cmd: ['sh', '-c', 'echo up > /state; while true; do sleep 0.05; done'] })
  await c.start()
  for (let i = 0; i < 100 && !fs.existsSync(path.join((await c.layers()).upperDir, 'state')); i++) await new Promise((r) => setTimeout(r, 50))
  const id = await c.commit({ ref: 'bb:retried' })
  t.is(pauses(), 4)
  t.true((await c.info()).State.Running)
  t.false((await c.info()).State.Paused)
  const r = await (await store.containers.create(id, { cmd: ['cat', '/state'], autoRemove: true })).run()
  t.is(r.stdout.toString(), 'up\n')
  await c.stop({ timeout: 1 })
})

test('a freezer that never freezes, or another pause failure: RuntimeFailed, no image, the container still runs', async (t) => {
  const { dir, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  for (const [name, message, calls] of [['never', 'unable to freeze', 5], ['other', 'container not running', 1]] as const) {
    const sub = path.join(dir, name)
    fs.mkdirSync(sub)
    const { runtime, pauses } = flakyFreezer(sub, 1000, message)
    const c = await store.containers.create('bb', { runtime, cmd: ['sh', '-c', 'while true; do sleep 0.05; done'] })
    await c.start()
    const before = (await store.images.list()).length
    const e = await t.throwsAsync(c.commit({ ref: `bb:${name}` }), { instanceOf: StrataError })
    t.is(e?.code, 'RuntimeFailed')
    t.regex(e?.message ?? '', new RegExp(message))
    t.is(pauses(), calls)
    t.is((await store.images.list()).length, before)
    t.true((await c.info()).State.Running)
    await c.stop({ timeout: 1 })
  }
})

test('commit → save → load into another store → run gives the same result', async (t) => {
  const { dir, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const c = await store.containers.create('bb', { cmd: ['sh', '-c', 'echo saved > /greeting; rm /etc/group'] })
  t.is((await c.run()).exitCode, 0)
  const id = await c.commit({ ref: 'bb:saved' })
  await store.save(['bb:saved'], path.join(dir, 'saved.tar'))
  const other = await Store.open({ root: path.join(dir, 'root2') })
  const res = await other.load(path.join(dir, 'saved.tar'))
  t.deepEqual(res.images, [{ id, tags: ['bb:saved'] }])
  const r = await (await other.containers.create('bb:saved', { cmd: ['sh', '-c', 'cat /greeting; test -e /etc/group || echo gone'], autoRemove: true })).run()
  t.is(r.stdout.toString(), 'saved\ngone\n')
})
