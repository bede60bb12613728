/**
 * Crashes: `kill -9` of a commit leaves the container intact and no half image; a store opened
 * after a crash finds stale mounts and states and repairs them without losing the writable layer.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Store } from '../ts'
import { cli, spawnCli } from './helpers/fs'
import { busyboxImage } from './helpers/fixtures'
import { storeWith } from './helpers/container'
import { checkConsistent } from './helpers/consistency'

function mounted(target: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target)
}


test('kill -9 at any moment of a commit: the container is intact and there is no half image', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const c = await store.containers.create('bb', {
    name: 'big', cmd: ['sh', '-c', 'mkdir /many && for i in $(busybox seq 1 2000); do echo $i > /many/f$i; done; busybox dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null; rm /etc/group'],
  })
  t.is((await c.run()).exitCode, 0)
  const diffBefore = await c.diff()
  const imagesBefore = (await store.images.list({ all: true })).map((i) => i.id)
  let finished = 0
  for (const delay of [30, 120, 250, 400, 600, 900]) {
    const { child, closed } = spawnCli(root, ['commit', 'big', 'big:1'])
    await new Promise((r) => setTimeout(r, delay))
    child.kill('SIGKILL')
    await closed
    await checkConsistent(t, root)
    const s = await Store.open({ root })
    const ids = (await s.images.list({ all: true })).map((i) => i.id)
    const tagged = (await s.images.list()).some((i) => i.repoTags.includes('big:1'))
    if (ids.length > imagesBefore.length) {
      // The image exists only whole: config written after its layer; tag after the config.
      finished++
      const info = await s.images.inspect(ids.find((i) => !imagesBefore.includes(i))!)
      t.is((info.RootFS as { Layers: string[] }).Layers.length, 2)
      if (tagged) await s.images.remove('big:1')
      for (const id of (await s.images.list({ all: true })).map((i) => i.id)) if (!imagesBefore.includes(id)) await s.images.remove(id, { force: true })
    } else {
      t.false(tagged)
    }
    // The container is untouched.
    const again = await s.containers.get('big')
    t.deepEqual(await again.diff(), diffBefore)
    t.is((await again.info()).State.Status, 'exited')
  }
  t.log(`${finished} of 6 killed commits had completed`)
  // And a commit that is left alone succeeds.
  const r = await cli(root, ['commit', 'big', 'big:1'])
  t.is(r.code, 0, r.stderr)
  const check = await cli(root, ['run', '--rm', 'big:1', 'sh', '-c', 'busybox wc -c < /big; cat /many/f2000; test -e /etc/group || echo gone'])
  t.is(check.stdout, `${48 << 20}\n2000\ngone\n`)
})

test('a supervisor killed while its container runs: the store keeps it running, then repairs it to exited once runc is gone', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const c = await store.containers.create('bb', { name: 'orphan', cmd: ['sh', '-c', 'echo written > /work.txt; while true; do sleep 0.05; done'] })
  const { child, closed } = spawnCli(root, ['start', '-a', 'orphan'])
  for (let i = 0; i < 200 && !((await c.info()).State.Pid > 0); i++) await new Promise((r) => setTimeout(r, 50))
  t.true((await c.info()).State.Running)
  const merged = (await c.layers()).mergedDir
  child.kill('SIGKILL')
  await closed

  // The process is gone, the container is not: a reopened store still says running and mounted.
  const s1 = await Store.open({ root })
  const c1 = await s1.containers.get('orphan')
  t.true((await c1.info()).State.Running)
  t.true(mounted(merged))

  // The container dies while nobody watches (runc kills it; runc's state goes away).
  execFileSync('runc', ['--root', path.join(root, 'runc'), 'kill', c.id, 'KILL'])
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('runc', ['--root', path.join(root, 'runc'), 'state', c.id], { stdio: 'ignore' })
    } catch {
      break
    }
    execFileSync('runc', ['--root', path.join(root, 'runc'), 'delete', '--force', c.id], { stdio: 'ignore' })
    await new Promise((r) => setTimeout(r, 50))
  }
  const s2 = await Store.open({ root })
  const c2 = await s2.containers.get('orphan')
  const st = (await c2.info()).State
  t.is(st.Status, 'exited')
  t.false(st.Running)
  t.false(mounted(merged), 'the stale mount is gone')
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'containers', c.id, 'mount.json'), 'utf8')).refs, [])
  // The writable layer is intact and the container can run again.
  t.deepEqual((await c2.diff()).map((x) => `${x.kind} ${x.path}`), ['A /work.txt'])
  t.true((await s2.images.list())[0].containers === 1)
  await c2.start()
  t.true((await c2.info()).State.Running)
  await c2.kill()
  t.is(await c2.wait(), 137)
})

test('stale mount records after a crash: a mount nobody holds is unmounted, refs to a vanished mount are dropped, user mounts survive', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const a = await store.containers.create('bb', { name: 'held' })
  const b = await store.containers.create('bb', { name: 'leaked' })
  const d = await store.containers.create('bb', { name: 'vanished' })
  for (const n of ['held', 'leaked', 'vanished']) t.is((await cli(root, ['mount', n])).code, 0)
  const [ma, mb, md] = await Promise.all([a, b, d].map(async (c) => (await c.layers()).mergedDir))
  // A crash between the mount syscall and the refs write; a dead process's ref; a mount undone by hand.
  fs.writeFileSync(path.join(root, 'containers', b.id, 'mount.json'), JSON.stringify({ refs: [{ kind: 'process', pid: 999999 }] }))
  execFileSync('umount', [md])
  fs.writeFileSync(path.join(ma, 'kept.txt'), 'kept')
  await Store.open({ root })
  t.true(mounted(ma), 'a user mount survives a reopen')
  t.false(mounted(mb), 'a mount only a dead process held is undone')
  t.false(mounted(md))
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'containers', a.id, 'mount.json'), 'utf8')).refs, [{ kind: 'user' }])
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'containers', b.id, 'mount.json'), 'utf8')).refs, [])
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'containers', d.id, 'mount.json'), 'utf8')).refs, [])
  t.deepEqual((await a.diff()).map((x) => x.path), ['/kept.txt'])
  // The next mount of the vanished one mounts again.
  t.is((await cli(root, ['mount', 'vanished'])).stdout, `${md}\n`)
  t.true(mounted(md))
})

test('a create or rm cut short leaves nothing behind after a reopen; other containers keep their layers', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const keep = await store.containers.create('bb', { name: 'keep', cmd: ['sh', '-c', 'echo mine > /mine'] })
  await keep.run()
  const half = await store.containers.create('bb', { name: 'half' })
  // As if the creating process died before config.v2.json was written.
  fs.rmSync(path.join(root, 'containers', half.id, 'config.v2.json'))
  const halfMountId = fs.readFileSync(path.join(root, 'image/overlay2/layerdb/mounts', half.id, 'mount-id'), 'utf8')
  await checkConsistent(t, root)
  t.false(fs.existsSync(path.join(root, 'overlay2', halfMountId)))
  t.false(fs.existsSync(path.join(root, 'overlay2', `${halfMountId}-init`)))
  t.false(fs.existsSync(path.join(root, 'containers', half.id)))
  const s = await Store.open({ root })
  t.deepEqual((await s.containers.list({ all: true })).map((c) => c.names[0]), ['keep'])
  t.deepEqual((await (await s.containers.get('keep')).diff()).map((x) => x.path), ['/mine'])
})

test('kill -9 of a commit that paused a running container: the next store open resumes it', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const c = await store.containers.create('bb', {
    name: 'ticker', cmd: ['sh', '-c', 'busybox dd if=/dev/urandom of=/big bs=1M count=64 2>/dev/null; echo ready; i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done'],
  })
  await c.start()
  for (let i = 0; i < 200 && !(await c.logs()).length; i++) await new Promise((r) => setTimeout(r, 50))
  const runcState = () => JSON.parse(execFileSync('runc', ['--root', path.join(root, 'runc'), 'state', c.id], { encoding: 'utf8' })).status as string
  let sawPaused = false
  for (let attempt = 0; attempt < 5 && !sawPaused; attempt++) {
    const { child, closed } = spawnCli(root, ['commit', 'ticker'])
    for (let i = 0; i < 100 && runcState() !== 'paused' && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10))
    sawPaused = runcState() === 'paused'
    child.kill('SIGKILL')
    await closed
  }
  t.true(sawPaused, 'caught a commit while the container was paused')
  t.is(runcState(), 'paused', 'the dead commit left it frozen')
  await checkConsistent(t, root)
  t.is(runcState(), 'running')
  const s = await Store.open({ root })
  const again = await s.containers.get('ticker')
  t.true((await again.info()).State.Running)
  t.is((await again.info()).PausedBy, undefined)
  const upper = (await again.layers()).upperDir
  // `echo $i > /count` truncates before it writes: a read can see the file empty, so only a
  // number counts, and the loop must be seen to move on (a frozen one never does; a running one
  // does within a bounded wait, however loaded the machine).
  const count = (): number | undefined => {
    const n = Number.parseInt(fs.readFileSync(path.join(upper, 'count'), 'utf8'), 10)
    return Number.isNaN(n) ? undefined : n
  }
  let n1: number | undefined
  for (let i = 0; i < 200 && n1 === undefined; i++) {
    n1 = count()
    if (n1 === undefined) await new Promise((r) => setTimeout(r, 10))
  }
  let moved = false
  for (let i = 0; i < 300 && !moved; i++) {
    await new Promise((r) => setTimeout(r, 50))
    const n = count()
    moved = n1 !== undefined && n !== undefined && n > n1
  }
  t.true(moved, 'it runs again')
  await again.stop({ timeout: 1 })
})
