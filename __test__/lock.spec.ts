/**
 * The store lock (ts/internal/lock.ts): many writers in one process with Node's default four pool threads
 * (this used to hang for good from five writers on), two Stores of one root, waiting for another
 * process without taking pool threads, aborting such a wait, cross-process precedence, fairness
 * and re-entrancy; the write generation and the readers that check it instead of taking the
 * flock. Whatever could hang runs in a child process killed at a deadline.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store, StrataError } from '../ts'
import { tmpDir } from './helpers/fs'
import { writeArchive, busyboxLayer } from './helpers/image'
import { busyboxImage } from './helpers/fixtures'
import { runScenario, startScenario, within } from './helpers/child'
import { native } from '../ts/internal/native'
import { detached } from '../ts/internal/lock'
import { executionAsyncResource } from 'node:async_hooks'

function fixture(t: Parameters<typeof tmpDir>[0]) {
  const dir = tmpDir(t, 'strata-lock-')
  const archive = path.join(dir, 'busybox.tar')
  writeArchive(archive, [busyboxImage()], 'docker25')
  const rootfs = path.join(dir, 'rootfs.tar')
  fs.writeFileSync(rootfs, busyboxLayer())
  return { dir, root: path.join(dir, 'root'), archive, rootfs, marker: (n: string) => path.join(dir, n) }
}

async function loaded(t: Parameters<typeof tmpDir>[0]) {
  const f = fixture(t)
  const store = await Store.open({ root: f.root })
  const { images } = await store.load(f.archive)
  return { ...f, store, id: images[0].id }
}

function expectedWriterTags(n: number): string[] {
  const tags = ['busybox:latest']
  for (let i = 0; i < n; i++) {
    if (i % 4 === 1) tags.push(`imported:${i}`)
    else if (i % 4 !== 3) tags.push(`tagged:${i}`)
  }
  return tags.sort()
}

for (const stores of [1, 2]) {
  test(`16 concurrent writers on ${stores} Store(s) of one root finish with the default 4 pool threads`, async (t) => {
    t.timeout(90_000)
    const f = fixture(t)
    const { report } = await runScenario('writers', { root: f.root, archive: f.archive, rootfs: f.rootfs, stores, n: 16 }, 60_000)
    t.deepEqual(report.tags, expectedWriterTags(16))
    t.is(report.containers, 0)
  })
}

test('waiting for another process holds no pool thread: file I/O goes on while 8 writers wait', async (t) => {
  t.timeout(60_000)
  const f = await loaded(t)
  const hold = startScenario('hold', { root: f.root, ms: 2000, held: f.marker('held'), released: f.marker('released'), ready: f.marker('ready') }, 30_000)
  const { report } = await runScenario('waitForOther', { root: f.root, n: 8, held: f.marker('held'), released: f.marker('released'), ready: f.marker('ready') }, 30_000)
  await hold.done
  t.true(report.readWhileWaiting, 'a pool read completed while the writers waited for the other process')
  t.is(report.tagged, 8)
  t.is(report.tags, 8)
})

test('a wait for another process aborts with Aborted and leaves nothing that keeps the process alive', async (t) => {
  t.timeout(60_000)
  const f = await loaded(t)
  await f.store.images.remove('busybox:latest')
  const hold = startScenario('hold', { root: f.root, ms: 20_000, held: f.marker('held'), released: f.marker('released'), ready: f.marker('ready') }, 40_000)
  try {
    const r = await runScenario('abortWait', { root: f.root, archive: f.archive, held: f.marker('held'), released: f.marker('released'), ready: f.marker('ready') }, 15_000)
    t.is(r.report.code, 'Aborted')
    t.true(r.report.holderStillHolds)
    t.log(`rejected ${r.report.msAfterAbort.toFixed(1)} ms after abort; the process exited by itself ${Math.round(r.ms)} ms after it started`)
    t.false(fs.existsSync(f.marker('released')), 'the process exited while the other still held the lock')
  } finally {
    hold.kill()
    await hold.done.catch(() => undefined)
  }
  // Nothing of the aborted load was registered.
  const s = await Store.open({ root: f.root })
  t.deepEqual(await s.images.list(), [])
})

test('a process busy with 16 writers lets another process\'s writer in', async (t) => {
  t.timeout(60_000)
  const f = await loaded(t)
  const busy = startScenario('busy', { root: f.root, marker: f.marker('one-done'), started: f.marker('started'), deadlineMs: 25_000 }, 40_000)
  const one = await runScenario('one', { root: f.root, marker: f.marker('one-done'), started: f.marker('started') }, 40_000)
  const b = await busy.done
  t.is(b.code, 0, b.stderr)
  t.true(one.report.done)
  t.true(b.report.sawMarker, 'the other process got the lock while this one was still busy')
  t.log(`busy process ran ${b.report.sections} sections`)
})

test('re-entrancy: sections inside an exclusive section run at once; shared inside shared does not queue behind a waiting writer', async (t) => {
  const { store } = await loaded(t)
  const ctx = store.context
  const order: string[] = []
  await within(5000, ctx.exclusive(async () => {
    await ctx.shared(async () => { order.push('shared in exclusive') })
    await ctx.exclusive(async () => { order.push('exclusive in exclusive') })
    order.push(`list in exclusive: ${(await store.images.list()).length}`)
  }), 'nested sections')
  // A reader holds the lock, another caller's writer queues, then the reader asks for shared again.
  let entered!: () => void
  let proceed!: () => void
  const inside = new Promise<void>((r) => { entered = r })
  const go = new Promise<void>((r) => { proceed = r })
  const reader = ctx.shared(async () => {
    entered()
    await go
    await ctx.shared(async () => { order.push('shared in shared') })
  })
  await inside
  const writer = ctx.exclusive(async () => { order.push('writer') })
  await new Promise((r) => setTimeout(r, 20))
  proceed()
  await within(5000, Promise.all([reader, writer]), 'shared inside shared with a writer waiting')
  t.deepEqual(order, ['shared in exclusive', 'exclusive in exclusive', 'list in exclusive: 1', 'shared in shared', 'writer'])
})

/**
 * Whether Node runs promise hooks now: with them, a promise's reaction runs with that promise as
 * its async resource; without, with whatever resource was current.
 */
const promiseHooksOn = (): Promise<boolean> => Promise.resolve().then(() => executionAsyncResource() instanceof Promise)

// Serial: alone in this process (ava runs serial tests before the others), so no other test's section turns the hooks on.
test.serial('promise hooks run only while a lock section does: not around API calls, nor after the last section', async (t) => {
  const { store, id } = await loaded(t)
  const ctx = store.context
  t.false(await promiseHooksOn(), 'after Store.open and load')
  t.true(await ctx.exclusive(() => promiseHooksOn()), 'inside a section (re-entrancy needs them)')
  t.false(await promiseHooksOn(), 'after the section')
  t.is((await store.images.list()).length, 1)
  await store.images.tag(id, 'hooks:1')
  const c = await store.containers.create(id)
  t.is((await c.info()).Image, id)
  await c.remove()
  t.false(await promiseHooksOn(), 'after API calls (reads, a write, container calls)')
  // Nested and overlapping sections: off once the last one ends, not before.
  let release!: () => void
  const gate = new Promise<void>((r) => { release = r })
  const outer = ctx.shared(async () => {
    await ctx.shared(async () => undefined)
    t.true(await promiseHooksOn(), 'after a nested section, inside the outer one')
    await gate
  })
  const other = ctx.shared(async () => undefined)
  await other
  t.true(await promiseHooksOn(), 'while another caller\'s section runs')
  release()
  await outer
  t.false(await promiseHooksOn(), 'after the last section')
  t.false(await detached(() => promiseHooksOn()), 'detached outside any section')
})

test('re-entrancy after the lock was idle: work left running by an ended section and an unrelated caller both wait for the holder; its own nested requests do not', async (t) => {
  const { store } = await loaded(t)
  const ctx = store.context
  const order: string[] = []
  let wake!: () => void
  const woken = new Promise<void>((r) => { wake = r })
  let leftover!: Promise<void>
  // A section that leaves work running; once it ends, no section runs (the storage goes idle).
  await ctx.exclusive(async () => {
    leftover = woken.then(() => ctx.exclusive(async () => { order.push('leftover') }))
  })
  // Started while nothing was marked: an unrelated caller.
  const unrelated = new Promise<void>((r) => setImmediate(r)).then(() => ctx.exclusive(async () => { order.push('unrelated') }))
  let release!: () => void
  const gate = new Promise<void>((r) => { release = r })
  let entered!: () => void
  const inside = new Promise<void>((r) => { entered = r })
  const holder = ctx.exclusive(async () => {
    order.push('holder')
    entered()
    await gate
    await ctx.exclusive(async () => { order.push('holder: nested exclusive') })
    await ctx.shared(async () => { order.push('holder: nested shared') })
    order.push('holder ends')
  })
  await inside
  wake()
  await new Promise((r) => setTimeout(r, 30))
  t.deepEqual(order, ['holder'], 'neither the left-over work nor the unrelated caller got in')
  release()
  await within(5000, Promise.all([holder, leftover, unrelated]), 'all three')
  t.deepEqual(order.slice(0, 4), ['holder', 'holder: nested exclusive', 'holder: nested shared', 'holder ends'])
  t.deepEqual(order.slice(4).sort(), ['leftover', 'unrelated'])
})

test('re-entrancy: asking for the exclusive lock inside a shared section fails at once instead of waiting for itself', async (t) => {
  const { store } = await loaded(t)
  const ctx = store.context
  const e = await within(5000, ctx.shared(() => ctx.exclusive(async () => 'never')).catch((x: StrataError) => x), 'upgrade')
  t.true(e instanceof StrataError)
  t.is((e as StrataError).code, 'Locked')
})

test('fair queue: readers arriving while a writer waits go after it; a writer is not starved by readers', async (t) => {
  const { store, id } = await loaded(t)
  const ctx = store.context
  const order: string[] = []
  let release!: () => void
  const gate = new Promise<void>((r) => { release = r })
  const first = ctx.shared(async () => { order.push('r1'); await gate })
  const w = ctx.exclusive(async () => { order.push('w') })
  const later = [ctx.shared(async () => { order.push('r2') }), store.images.history(id).then(() => { order.push('r3') })]
  await new Promise((r) => setTimeout(r, 30))
  t.deepEqual(order, ['r1'])
  release()
  await within(5000, Promise.all([first, w, ...later]))
  t.deepEqual(order, ['r1', 'w', 'r2', 'r3'])
})

test('two Stores of one root share one queue (same root named two ways)', async (t) => {
  const { store, root, dir, id } = await loaded(t)
  fs.symlinkSync(root, path.join(dir, 'alias'))
  const other = await Store.open({ root: path.join(dir, 'alias') })
  t.is(other.context.lock.key, store.context.lock.key)
  await within(30_000, Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? store : other).images.tag(id, `both:${i}`))))
  t.is((await store.images.list())[0].repoTags.length, 25)
})

/** Whether this process could take the store's flock exclusive now (a reader holding it shared says no). */
function flockFree(root: string): boolean {
  const l = native.tryLock(path.join(root, 'lock'), true)
  l?.release()
  return l !== null
}

/** The write generation (twice the same 20 digits: ts/internal/lock.ts). */
const generation = (root: string): bigint => {
  const m = /^(\d{20}) \1\n$/.exec(fs.readFileSync(path.join(root, 'lock.gen'), 'latin1'))
  if (!m) throw new Error('lock.gen is not a generation')
  return BigInt(m[1])
}
const setGeneration = (root: string, n: bigint): void => {
  const d = n.toString().padStart(20, '0')
  fs.writeFileSync(path.join(root, 'lock.gen'), `${d} ${d}\n`)
}

test('writers count the write generation: odd while they hold the lock exclusive, even after', async (t) => {
  const { store, root, id } = await loaded(t)
  const before = generation(root)
  t.is(before % 2n, 0n)
  const inside = await store.context.exclusive(async () => generation(root))
  t.is(inside % 2n, 1n)
  t.true(inside > before)
  await store.images.tag(id, 'gen:1')
  const after = generation(root)
  t.is(after % 2n, 0n)
  t.true(after > inside)
  // Readers under the flock leave it alone.
  await store.images.list()
  t.is(generation(root), after)
  // Something that is not a number (a torn disk): the next writer starts a new one.
  fs.writeFileSync(path.join(root, 'lock.gen'), 'garbage, longer than a generation is: '.repeat(3))
  await store.images.tag(id, 'gen:2')
  t.is(generation(root) % 2n, 0n)
  // A torn read (two different halves) is no generation: readers take the flock (below).
  t.is(fs.statSync(path.join(root, 'lock.gen')).size, 42)
})

test('optimistic readers: without the flock while no writer runs; again under it when one ran or may be running', async (t) => {
  const { store, root, id } = await loaded(t)
  const ctx = store.context
  ctx.optimisticReads = true
  // No writer since the generation was written: the section runs once, the flock untouched.
  let runs: boolean[] = []
  t.is(await ctx.shared(async () => { runs.push(flockFree(root)); return 'read' }), 'read')
  t.deepEqual(runs, [true])
  // Public reads take the same way and see the same store.
  t.deepEqual((await store.images.list()).map((i) => i.repoTags), [['busybox:latest']])

  // A writer (another caller, outside this section) ran while the section read: it runs again,
  // under the flock, and that answer counts.
  runs = []
  const answer = await ctx.shared(async () => {
    runs.push(flockFree(root))
    if (runs.length === 1) await detached(() => ctx.exclusive(async () => undefined))
    return runs.length
  })
  t.deepEqual(runs, [true, false])
  t.is(answer, 2)

  // An odd generation (a writer holds the lock, or died mid-change): under the flock at once.
  const even = generation(root)
  setGeneration(root, even + 1n)
  runs = []
  await ctx.shared(async () => { runs.push(flockFree(root)) })
  t.deepEqual(runs, [false])
  // A torn read (a writer overwrote it while it was read): the same.
  fs.writeFileSync(path.join(root, 'lock.gen'), `${String(even).padStart(20, '0')} ${String(even + 2n).padStart(20, '0')}\n`)
  runs = []
  await ctx.shared(async () => { runs.push(flockFree(root)) })
  t.deepEqual(runs, [false])
  // No generation at all (a store that no writer of this version touched): the same.
  fs.rmSync(path.join(root, 'lock.gen'))
  runs = []
  await ctx.shared(async () => { runs.push(flockFree(root)) })
  t.deepEqual(runs, [false])

  // A failure while nothing changed is the answer: no second run.
  await store.images.tag(id, 'gen:3')
  runs = []
  const e = await ctx.shared(async () => { runs.push(flockFree(root)); throw new StrataError('ImageNotFound', 'gone') }).catch((x: StrataError) => x)
  t.is((e as StrataError).code, 'ImageNotFound')
  t.deepEqual(runs, [true])
  // A failure while a writer ran (say, a file it removed under the read): read again under the flock.
  runs = []
  const after = await ctx.shared(async () => {
    runs.push(flockFree(root))
    if (runs.length === 1) {
      await detached(() => ctx.exclusive(async () => undefined))
      throw new StrataError('Io', 'a file went away')
    }
    return 'second'
  })
  t.is(after, 'second')
  t.deepEqual(runs, [true, false])
})
