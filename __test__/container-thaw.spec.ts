/**
 * A container that a committing process paused (runc pause: the cgroup freezer) is resumed by
 * the next operation that touches it, from any process, when that process died before resuming
 * it — not only by the repair pass of the next store open.
 */
import test, { type ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Store, type Container } from '../ts'
import { spawnCli } from './helpers/fs'
import { storeWith } from './helpers/container'
import { busyboxImage } from './helpers/fixtures'

function runcStatus(root: string, id: string): string {
  try {
    return (JSON.parse(execFileSync('runc', ['--root', path.join(root, 'runc'), 'state', id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { status: string }).status
  } catch {
    return 'gone'
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A running container that counts in /beat, with 200 MB in its layer so a commit takes a while. */
async function beating(t: ExecutionContext, name: string): Promise<{ root: string; c: Container; upper: string }> {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:thaw'])])
  const c = await store.containers.create('bb:thaw', { name, cmd: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /beat; sleep 0.02; done'] })
  const upper = (await c.layers()).upperDir
  const big = fs.openSync(path.join(upper, 'big.bin'), 'w')
  const chunk = Buffer.alloc(1 << 20, 0x5a)
  for (let i = 0; i < 200; i++) fs.writeSync(big, chunk)
  fs.closeSync(big)
  await c.start()
  t.teardown(() => c.remove({ force: true }).catch(() => undefined))
  return { root, c, upper }
}

/** Starts `strata commit` in a child process and kills it (-9) once runc reports the container paused. */
async function killCommitWhilePaused(t: ExecutionContext, root: string, c: Container): Promise<void> {
  const { child, closed } = spawnCli(root, ['commit', c.id, 'bb:frozen'])
  const deadline = Date.now() + 60_000
  while (runcStatus(root, c.id) !== 'paused') {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL')
      t.fail(`the commit never paused the container (exit ${child.exitCode})`)
      return
    }
    await sleep(5)
  }
  child.kill('SIGKILL')
  await closed
  t.is(runcStatus(root, c.id), 'paused', 'frozen, and its pauser is dead')
  const rec = JSON.parse(fs.readFileSync(path.join(root, 'containers', c.id, 'config.v2.json'), 'utf8')) as { PausedBy?: number }
  t.is(rec.PausedBy, child.pid)
}

async function beats(upper: string): Promise<boolean> {
  const first = fs.readFileSync(path.join(upper, 'beat'), 'utf8')
  for (let i = 0; i < 50; i++) {
    await sleep(20)
    if (fs.readFileSync(path.join(upper, 'beat'), 'utf8') !== first) return true
  }
  return false
}

test('a commit killed while its container is paused: the next operation from another process resumes it', async (t) => {
  const { root, c, upper } = await beating(t, 'thaw-op')
  await killCommitWhilePaused(t, root, c)
  t.false(await beats(upper), 'nothing runs while frozen')
  // This test process is not the one that paused it: a store opened before the crash (no repair
  // pass in between) and its next operation on the container.
  const info = await c.inspect()
  t.is((info.State as { Status: string }).Status, 'running')
  t.is(runcStatus(root, c.id), 'running')
  t.true(await beats(upper), 'the process runs again')
  const rec = JSON.parse(fs.readFileSync(path.join(root, 'containers', c.id, 'config.v2.json'), 'utf8')) as { PausedBy?: number }
  t.is(rec.PausedBy, undefined)
})

test('the same through ps (containers.list) and logs, in a fresh Store of the same root', async (t) => {
  const { root, c, upper } = await beating(t, 'thaw-list')
  await killCommitWhilePaused(t, root, c)
  const other = await Store.open({ root })
  // Store.open's repair would resume it too; take that back to test the operation alone.
  execFileSync('runc', ['--root', path.join(root, 'runc'), 'pause', c.id])
  const recFile = path.join(root, 'containers', c.id, 'config.v2.json')
  const rec = JSON.parse(fs.readFileSync(recFile, 'utf8')) as Record<string, unknown>
  if (rec.PausedBy === undefined) {
    rec.PausedBy = 999_999_999 // a pid no process has
    fs.writeFileSync(recFile, JSON.stringify(rec))
  }
  t.is(runcStatus(root, c.id), 'paused')
  const rows = await other.containers.list()
  t.true(rows.some((r) => r.id === c.id && r.state === 'running'))
  t.is(runcStatus(root, c.id), 'running', 'ps resumed it')
  t.true(await beats(upper))
  // And once more through logs.
  execFileSync('runc', ['--root', path.join(root, 'runc'), 'pause', c.id])
  fs.writeFileSync(recFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(recFile, 'utf8')), PausedBy: 999_999_999 }))
  await (await other.containers.get(c.id)).logs()
  t.is(runcStatus(root, c.id), 'running', 'logs resumed it')
})

test('a container call made inside a section of the store lock leaves the thaw to the outer call (no exclusive lock asked for inside a shared section); an outer call thaws', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:thaw'])])
  const c = await store.containers.create('bb:thaw', { name: 'thaw-nested' })
  const recFile = path.join(root, 'containers', c.id, 'config.v2.json')
  // As a commit that died with the container paused leaves the record (the container never ran).
  fs.writeFileSync(recFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(recFile, 'utf8')), PausedBy: 999_999_999 }))
  const inner = await store.context.shared(() => c.info())
  t.is(inner.PausedBy, 999_999_999, 'read under the shared lock, not thawed there')
  await store.context.exclusive(() => c.info())
  t.is((await store.context.shared(() => c.info())).PausedBy, 999_999_999)
  t.is((await c.info()).PausedBy, undefined, 'the outer call thawed it first')
})
