/**
 * What a Node service that embeds strata needs from it: user callbacks that throw, aborts (of a
 * source that never ends, mid-extraction, of a commit), source and destination streams that
 * fail half-way, and one AbortSignal shared by many calls. Each failure must reject the call
 * (never reach the event loop: ava fails a test on any uncaught exception or rejection) and
 * leave the store exactly as it was, with nothing staged left behind.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { getEventListeners } from 'node:events'
import { randomBytes } from 'node:crypto'
import { Readable, Writable, PassThrough } from 'node:stream'
import { Store, StrataError } from '../ts'
import { tmpDir } from './helpers/fs'
import { tar } from './helpers/tar'
import { writeArchive, buildImage, busyboxLayer, busyboxEntries } from './helpers/image'
import { busyboxImage } from './helpers/fixtures'
import { storeContent, leftovers } from './helpers/store-state'
import { within } from './helpers/child'
import { storeWith, appImage } from './helpers/container'
import { checkConsistent } from './helpers/consistency'

let big: ReturnType<typeof buildImage> | undefined
// Built before any test runs: making it blocks the event loop, which would distort the timings
// the abort tests report.
test.before(() => {
  big = buildImage({ layers: [tar(busyboxEntries()), tar([{ name: 'blob.bin', data: randomBytes(64 << 20) }])], tags: ['big:1'] })
})

/** busybox + a layer holding 64 MiB of random bytes (its extraction takes a while). */
function bigImage() {
  return big!
}

async function setup(t: Parameters<typeof tmpDir>[0]) {
  const dir = tmpDir(t, 'strata-embed-')
  const root = path.join(dir, 'root')
  const store = await Store.open({ root })
  const archive = path.join(dir, 'busybox.tar')
  writeArchive(archive, [busyboxImage()], 'docker25')
  return { dir, root, store, archive, before: storeContent(root) }
}

/** A source that sends `bytes` of `data` and then neither ends nor errors. */
function neverEnding(data: Buffer): Readable {
  let sent = false
  return new Readable({
    read() {
      if (sent) return
      sent = true
      this.push(data)
    },
  })
}

/** A source that sends `data` and then fails with `err`. */
function failingSource(data: Buffer, err: Error): Readable {
  let sent = false
  return new Readable({
    read() {
      if (!sent) {
        sent = true
        this.push(data)
        return
      }
      setImmediate(() => this.destroy(err))
    },
  })
}

function errnoError(message: string, code: string, errno: number): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, errno: -errno, syscall: 'write' })
}

const timed = async <T>(p: Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> => {
  const t0 = performance.now()
  try {
    return { value: await p, ms: performance.now() - t0 }
  } catch (error) {
    return { error, ms: performance.now() - t0 }
  }
}

test('a throwing onProgress rejects the load with what it threw; nothing is loaded or left staged', async (t) => {
  const { root, store, archive, before } = await setup(t)
  const boom = new Error('progress handler failed')
  let calls = 0
  const e = await t.throwsAsync(store.load(archive, { onProgress: () => { calls++; throw boom } }))
  t.is(e, boom, 'the callback\'s own error')
  t.is(calls, 1, 'not called again after it threw')
  t.deepEqual(storeContent(root), before)
  t.deepEqual(await leftovers(store), [])
  // The same store loads fine afterwards.
  t.is((await store.load(archive)).images.length, 1)
})

test('a throwing onProgress of a load whose layers exist ("Already exists") and a non-Error throw', async (t) => {
  const { root, store, archive } = await setup(t)
  await store.load(archive)
  const again = path.join(path.dirname(archive), 'again.tar')
  writeArchive(again, [busyboxImage(['again:1'])], 'docker25')
  const before = storeContent(root)
  const e = await t.throwsAsync(store.load(again, { onProgress: (p) => { if (p.status === 'Already exists') throw 'not an Error' } }), { any: true })
  t.is(e as unknown, 'not an Error')
  t.deepEqual(storeContent(root), before)
  t.deepEqual(await leftovers(store), [])
})

test('a throwing onProgress rejects the import; nothing is imported', async (t) => {
  const { dir, root, store, before } = await setup(t)
  const rootfs = path.join(dir, 'rootfs.tar')
  fs.writeFileSync(rootfs, busyboxLayer())
  const boom = new RangeError('import progress failed')
  t.is(await t.throwsAsync(store.import(rootfs, { ref: 'imp:1', onProgress: () => { throw boom } })), boom)
  t.deepEqual(storeContent(root), before)
  t.deepEqual(await leftovers(store), [])
})

for (const op of ['load', 'import'] as const) {
  // Serial (ava runs these before the concurrent tests): the time it reports is the abort's own,
  // not that of other tests sharing this worker's event loop.
  test.serial(`aborting a ${op} of a stream that never ends rejects Aborted at once and destroys the stream`, async (t) => {
    const { root, store, before } = await setup(t)
    const source = neverEnding(busyboxLayer().subarray(0, 64 << 10))
    const ac = new AbortController()
    const p: Promise<unknown> = op === 'load' ? store.load(source, { signal: ac.signal }) : store.import(source, { signal: ac.signal })
    await new Promise((r) => setTimeout(r, 300))
    const r = await within(30_000, timed((ac.abort(), p)), `${op} after abort`)
    t.true(r.error instanceof StrataError && r.error.code === 'Aborted', String(r.error))
    t.log(`${op}: rejected ${r.ms.toFixed(1)} ms after abort`)
    t.true(source.destroyed, 'the source stream was destroyed')
    t.deepEqual(getEventListeners(ac.signal, 'abort'), [])
    t.deepEqual(storeContent(root), before)
    t.deepEqual(await leftovers(store), [])
  })

  test(`a ${op} source that fails half-way gives Io with its errno name and the original as cause`, async (t) => {
    const { root, store, before } = await setup(t)
    const err = errnoError('connection reset by peer', 'ECONNRESET', 104)
    const source = failingSource(busyboxLayer().subarray(0, 100_000), err)
    const p: Promise<unknown> = op === 'load' ? store.load(source) : store.import(source)
    const e = await within(30_000, t.throwsAsync(p, { instanceOf: StrataError }))
    t.is(e!.code, 'Io')
    t.is(e!.syscode, 'ECONNRESET')
    t.is(e!.errno, 104)
    t.is(e!.cause, err)
    t.regex(e!.message, /connection reset by peer/)
    t.deepEqual(storeContent(root), before)
    t.deepEqual(await leftovers(store), [])
  })
}

test('a source error without an errno is still an Io StrataError with the original as cause', async (t) => {
  const { store } = await setup(t)
  const err = new Error('upstream went away')
  const e = await t.throwsAsync(store.load(failingSource(Buffer.alloc(1024), err)), { instanceOf: StrataError })
  t.is(e!.code, 'Io')
  t.is(e!.syscode, undefined)
  t.is(e!.cause, err)
})

test.serial('aborting a load of a file mid-extraction rejects Aborted, stops and removes what was staged', async (t) => {
  const { dir, root, store, before } = await setup(t)
  const archive = path.join(dir, 'big.tar')
  writeArchive(archive, [bigImage()], 'docker25')
  const ac = new AbortController()
  let abortedAt = 0
  let progressAfterAbort = 0
  const r = await within(30_000, timed(store.load(archive, {
    signal: ac.signal,
    onProgress: (p) => {
      if (abortedAt) progressAfterAbort++
      else if (p.status === 'Loading layer' && p.current > 0 && p.current < p.total) {
        abortedAt = performance.now()
        ac.abort()
      }
    },
  })))
  t.true(abortedAt > 0, 'aborted while a layer was being read')
  t.true(r.error instanceof StrataError && r.error.code === 'Aborted', String(r.error))
  const ms = performance.now() - abortedAt
  t.log(`rejected ${ms.toFixed(1)} ms after abort`)
  t.is(progressAfterAbort, 0, 'no progress reported after the abort')
  t.deepEqual(storeContent(root), before)
  t.deepEqual(await leftovers(store), [])
})

test('a save whose destination fails gives Io with the errno name; nothing is left staged', async (t) => {
  const { root, store, archive } = await setup(t)
  await store.load(archive)
  const before = storeContent(root)
  const err = errnoError('broken pipe', 'EPIPE', 32)
  let writes = 0
  const dest = new Writable({
    write(_chunk, _enc, cb) {
      writes++
      cb(writes > 1 ? err : null)
    },
  })
  const e = await within(30_000, t.throwsAsync(store.save(['busybox:latest'], dest), { instanceOf: StrataError }))
  t.is(e!.code, 'Io')
  t.is(e!.syscode, 'EPIPE')
  t.is(e!.cause, err)
  t.deepEqual(storeContent(root), before)
  t.deepEqual(await leftovers(store), [])
})

test('aborting a save to a file removes the partial output', async (t) => {
  const { dir, store } = await setup(t)
  writeArchive(path.join(dir, 'big.tar'), [bigImage()], 'docker25')
  await store.load(path.join(dir, 'big.tar'))
  const ac = new AbortController()
  const out = path.join(dir, 'out.tar')
  const p = store.save(['big:1'], out, { signal: ac.signal })
  setTimeout(() => ac.abort(), 20)
  const r = await within(30_000, timed(p))
  t.true(r.error instanceof StrataError && r.error.code === 'Aborted', String(r.error))
  t.deepEqual(await leftovers(store), [])
  t.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('out') || n.startsWith('.out')), [])
})

test('one AbortSignal shared by 200 calls (50 at a time) collects no listener and no MaxListeners warning', async (t) => {
  t.timeout(120_000)
  const { store, archive } = await setup(t)
  await store.load(archive)
  const warnings: Error[] = []
  const onWarning = (w: Error) => { warnings.push(w) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const ac = new AbortController()
  let most = 0
  let started = 0
  const worker = async () => {
    while (started < 200) {
      started++
      await store.load(archive, { signal: ac.signal })
      most = Math.max(most, getEventListeners(ac.signal, 'abort').length)
    }
  }
  await within(100_000, Promise.all(Array.from({ length: 50 }, worker)))
  t.is(started, 200)
  t.true(most <= 1, `at most one listener while calls were in flight (saw ${most})`)
  t.deepEqual(getEventListeners(ac.signal, 'abort'), [])
  // Then abort it with 50 calls in flight: all reject Aborted and the signal is left clean.
  const inFlight = Array.from({ length: 50 }, () => store.load(neverEnding(Buffer.alloc(1024)), { signal: ac.signal }).catch((e: StrataError) => e.code))
  await new Promise((r) => setTimeout(r, 100))
  ac.abort()
  t.deepEqual(await within(30_000, Promise.all(inFlight)), Array(50).fill('Aborted'))
  t.deepEqual(getEventListeners(ac.signal, 'abort'), [])
  await new Promise((r) => setImmediate(r))
  t.deepEqual(warnings.map((w) => w.name), [])
  t.deepEqual(await leftovers(store), [])
})

test('aborting a commit mid-walk rejects Aborted; no image or layer appears', async (t) => {
  const { store, root } = await storeWith(t, [appImage(['app:1'])])
  const c = await store.containers.create('app:1', { name: 'ab1' })
  const rw = await c.view()
  await rw.writeFile('/big.bin', randomBytes(64 << 20))
  rw.close()
  const before = storeContent(root)
  const ac = new AbortController()
  const p = c.commit({ ref: 'app:committed', signal: ac.signal })
  setTimeout(() => ac.abort(), 30)
  const r = await within(30_000, timed(p))
  t.true(r.error instanceof StrataError && r.error.code === 'Aborted', String(r.error))
  t.deepEqual(getEventListeners(ac.signal, 'abort'), [])
  t.deepEqual(storeContent(root), before)
  t.deepEqual(await leftovers(store), [])
  t.deepEqual((await store.images.list()).map((i) => i.repoTags), [['app:1']])
})

test('aborting an export to a stream rejects Aborted and unmounts', async (t) => {
  const { store } = await storeWith(t, [appImage(['app:1'])])
  const c = await store.containers.create('app:1', { name: 'ex1' })
  const rw = await c.view()
  await rw.writeFile('/big.bin', randomBytes(64 << 20))
  rw.close()
  const ac = new AbortController()
  const sink = new Writable({ write(_c, _e, cb) { setTimeout(cb, 5) } })
  const p = c.export(sink, { signal: ac.signal })
  setTimeout(() => ac.abort(), 30)
  const r = await within(30_000, timed(p))
  t.true(r.error instanceof StrataError && r.error.code === 'Aborted', String(r.error))
  t.deepEqual(await leftovers(store), [])
  t.false(await c.isMounted())
})

test('a run whose stdout stream fails goes on: the exit code comes back, the log keeps the output', async (t) => {
  const { store } = await storeWith(t, [appImage(['app:1'])])
  const c = await store.containers.create('app:1', { name: 'out1', cmd: ['sh', '-c', 'echo one; echo two >&2; echo three'] })
  const stdout = new Writable({ write(_c, _e, cb) { cb(errnoError('broken pipe', 'EPIPE', 32)) } })
  const stderr = new Writable({ write(_c, _e, cb) { cb(new Error('stderr consumer failed')) } })
  const r = await within(60_000, c.run({ stdout, stderr }))
  t.is(r.exitCode, 0)
  t.deepEqual((await c.logs()).filter((l) => l.stream === 'stdout').map((l) => l.log), ['one\n', 'three\n'])
})

for (const autoRemove of [false, true]) {
  test(`aborting a run${autoRemove ? ' of an autoRemove container' : ''} kills the container, destroys its stdin and rejects Aborted; it ends exited and unmounted${autoRemove ? ', then removed' : ''}`, async (t) => {
    const { root, store } = await storeWith(t, [appImage(['app:1'])])
    const name = `cat${autoRemove ? 'rm' : ''}`
    // `cat` of a stdin that never ends: the container would run for good.
    const c = await store.containers.create('app:1', { name, cmd: ['cat'], openStdin: true, autoRemove })
    const stdin = neverEnding(Buffer.from('hello\n'))
    const ac = new AbortController()
    const stdout = new PassThrough()
    stdout.once('data', () => ac.abort()) // the process runs and has read its stdin
    const r = await within(60_000, timed(c.run({ stdin, stdout, signal: ac.signal })))
    t.true(r.error instanceof StrataError && r.error.code === 'Aborted', String(r.error))
    t.log(`run: rejected ${r.ms.toFixed(1)} ms after it started`)
    t.true(stdin.destroyed, 'stdin destroyed')
    t.deepEqual(getEventListeners(ac.signal, 'abort'), [])
    await store.close() // waits for what the abort left to finish in the background
    const s = await Store.open({ root })
    if (autoRemove) {
      t.deepEqual(await s.containers.list({ all: true }), [])
    } else {
      const info = await (await s.containers.get(name)).info()
      t.false(info.State.Running)
      t.is(info.State.ExitCode, 137)
      t.false(await (await s.containers.get(name)).isMounted())
    }
    t.deepEqual(fs.readdirSync(path.join(root, 'runc')).filter((n) => n === c.id), [], 'the runtime has no state left for it')
    await checkConsistent(t, root)
  })
}

test('aborting a wait rejects Aborted and leaves the container running', async (t) => {
  const { store } = await storeWith(t, [appImage(['app:1'])])
  const c = await store.containers.create('app:1', { name: 'waited', cmd: ['sh', '-c', 'while true; do sleep 1; done'] })
  await c.start()
  const ac = new AbortController()
  const waiting = c.wait({ signal: ac.signal })
  setTimeout(() => ac.abort(), 200)
  const e = await within(30_000, t.throwsAsync(waiting))
  t.is((e as StrataError).code, 'Aborted')
  t.deepEqual(getEventListeners(ac.signal, 'abort'), [])
  t.true((await c.info()).State.Running, 'the container still runs')
  await c.kill()
  t.is(await within(30_000, c.wait()), 137)
})
