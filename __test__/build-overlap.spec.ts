/**
 * A step's seal overlaps the next step's start (ts/build/builder.ts, #step and #make): while a
 * layer is described (its DiffID, which the next step's cache key needs), the next step's space
 * is mounted on that layer as it lies in the staging dir and a COPY's files are copied there;
 * the layer and its cache record are registered while the next step works. These tests hold it
 * to what a build without the overlap does: a probe that hits throws the speculative work away
 * and leaves nothing; a RUN never runs before its probe says miss; a failure, an abort or
 * concurrent builds leave no mount, container, staging dir or stray layer; image IDs follow the
 * inputs only.
 */
import test, { type ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as path from 'node:path'
import { spawn } from 'node:child_process'
import { Store } from '../ts'
import { BuildError } from '../ts/build/errors'
import { writeContext, buildSuite, BUILD_BASE } from './helpers/build'
import { native } from '../ts/internal/native'
import { checkConsistent } from './helpers/consistency'
import { CLI } from './helpers/fs'
import { BuildCache } from '../ts/build/cache'
import { LayerStore } from '../ts/internal/layers'

const suite = buildSuite()
const BB = BUILD_BASE

/** Files enough that copying them takes a while (the window a speculative copy runs in). */
function manyFiles(prefix: string, n: number, size: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}/f${i}.txt`, `${prefix} ${i}\n`.padEnd(size, 'x')]))
}

function layerDirs(root: string): string[] {
  return fs.readdirSync(path.join(root, 'overlay2')).filter((n) => n !== 'l').sort()
}

function layerCount(root: string): number {
  return fs.readdirSync(path.join(root, 'image/overlay2/layerdb/sha256')).length
}

/** No mount, container, staging dir or layer dir beyond `dirs` (the overlay2 dirs there should be). */
function nothingLeft(t: ExecutionContext, root: string, dirs: string[]): void {
  t.deepEqual(native.overlayMounts(root), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-')), [])
  t.deepEqual(fs.existsSync(path.join(root, 'runc')) ? fs.readdirSync(path.join(root, 'runc')) : [], [])
  t.deepEqual(layerDirs(root), dirs)
}

/** An HTTP server on the host's loopback counting requests: a RUN on the host network that runs leaves a trace here. */
async function counter(t: ExecutionContext): Promise<{ port: number; hits: () => number }> {
  let hits = 0
  const server = http.createServer((_req, res) => {
    hits++
    res.end('ran\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { port: (server.address() as { port: number }).port, hits: () => hits }
}

/** A fresh store of the suite, and a context under its dir with `files` in it. */
async function storeWithContext(t: ExecutionContext, files: Parameters<typeof writeContext>[1]) {
  const fixture = await suite.freshStore(t)
  const ctx = path.join(fixture.dir, 'ctx')
  writeContext(ctx, files)
  return { ...fixture, ctx }
}

test.serial('a step that misses but makes the same layer: the next COPY (copied while it was sealed) and RUN are hits, the RUN not run, nothing left behind', async (t) => {
  const { port, hits } = await counter(t)
  // `COPY one/ /` makes d/ with the times of the context's one/d (a directory the copy made
  // itself would have the time of the build, to the second): the same layer every time.
  const { store, root, ctx } = await storeWithContext(t, { 'one/d/a.txt': 'the same file\n', ...manyFiles('big', 400, 16 << 10) })
  const tail = `COPY big/ /big/\nRUN /bin/busybox wget -q -O /dev/null http://127.0.0.1:${port}/ran && echo ran > /ran\nENV DONE=1\n`
  const first = await store.build({ context: ctx, dockerfileText: `FROM ${BB}\nCOPY one/ /\n${tail}`, tags: ['ov:1'] })
  t.is(hits(), 1, 'the first build ran the RUN')
  t.deepEqual(first.steps.map((s) => s.cached), [false, false, false])
  const dirs = layerDirs(root)
  // `./one/` is another instruction (its key misses) with the very same layer: the steps after it hit.
  const second = await store.build({ context: ctx, dockerfileText: `FROM ${BB}\nCOPY ./one/ /\n${tail}`, tags: ['ov:2'] })
  t.deepEqual(second.steps.map((s) => s.cached), [false, true, true])
  t.deepEqual(second.steps.map((s) => s.diffId), first.steps.map((s) => s.diffId))
  t.is(hits(), 1, 'a RUN served from the cache never runs')
  nothingLeft(t, root, dirs)
  // The same inputs, the same image; the layers are the first build's.
  const again = await store.build({ context: ctx, dockerfileText: `FROM ${BB}\nCOPY ./one/ /\n${tail}` })
  t.is(again.imageId, second.imageId)
  t.true(again.steps.every((s) => s.cached))
  const view = await store.images.view(second.imageId)
  t.is((await view.readFile('/ran')).toString(), 'ran\n')
  t.is((await view.readFile('/big/f399.txt')).length, 16 << 10)
  t.is(hits(), 1)
  await store.close()
  await checkConsistent(t, root)
})

test.serial('after a step that misses with a new layer, the next COPY and RUN are built on it: the same image as a build without the cache', async (t) => {
  const { port, hits } = await counter(t)
  const df = `FROM ${BB}\nCOPY tree/ /\nCOPY big/ /app/big/\nRUN /bin/busybox wget -q -O /dev/null http://127.0.0.1:${port}/ran && ls -R /app > /app/count && cat /app/src/f0.txt > /app/first\nWORKDIR /app/w\nCOPY tree/app/src/f1.txt /app/w/\n`
  const { store, root, ctx } = await storeWithContext(t, { Dockerfile: df, ...manyFiles('tree/app/src', 300, 30 << 10), ...manyFiles('big', 50, 1000) })
  await store.build({ context: ctx, tags: ['ov:1'] })
  t.is(hits(), 1)
  fs.appendFileSync(path.join(ctx, 'tree/app/src/f0.txt'), 'changed\n')
  const r = await store.build({ context: ctx, tags: ['ov:1'] })
  t.deepEqual(r.steps.map((s) => s.cached), [false, false, false, false, false])
  t.is(hits(), 2, 'the RUN ran once its probe missed')
  const view = await store.images.view(r.imageId)
  t.true((await view.readFile('/app/first')).toString().endsWith('changed\n'))
  t.is((await view.readFile('/app/w/f1.txt')).length, 30 << 10)
  // The files are those a --no-cache build makes, the first layer too (the later ones hold
  // directories whose times are those of the build).
  const fresh = await store.build({ context: ctx, noCache: true })
  t.is(hits(), 3)
  t.is(fresh.steps[0].diffId, r.steps[0].diffId)
  const freshView = await store.images.view(fresh.imageId)
  for (const f of ['/app/count', '/app/first', '/app/w/f1.txt']) t.deepEqual(await view.readFile(f), await freshView.readFile(f))
  t.deepEqual(native.overlayMounts(root), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-')), [])
  await store.close()
  await checkConsistent(t, root)
})

test.serial('a COPY copied while the step below is sealed is sealed then too: once, before its probe; its layer the one a build without the cache makes', async (t) => {
  const { store, ctx } = await storeWithContext(t, { ...manyFiles('src', 100, 4 << 10), 'b.txt': 'b\n' })
  const df = `FROM ${BB}\nCOPY src/ /src/\nCOPY b.txt /b.txt\n`
  await store.build({ context: ctx, dockerfileText: df })
  fs.appendFileSync(path.join(ctx, 'src/f0.txt'), 'changed\n')
  // The addon itself (the module `native` reads through): its seals logged, the first one (the
  // step below's, whose DiffID the next step's probe needs) held back long enough for the next
  // COPY's work to be done meanwhile.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const binding = require(path.resolve(__dirname, '..', 'native', `strata.${process.platform}-${process.arch}-gnu.node`)) as typeof native
  const real = binding.sealLayer
  const log: string[] = []
  binding.sealLayer = (diff, tarSplit, cancel) => {
    log.push(`seal ${diff}`)
    if (log.length > 1) return real(diff, tarSplit, cancel)
    return new Promise((r) => setTimeout(r, 400)).then(() => real(diff, tarSplit, cancel)).finally(() => log.push('below sealed'))
  }
  let r
  try {
    r = await store.build({ context: ctx, dockerfileText: df })
  } finally {
    binding.sealLayer = real
  }
  t.deepEqual(r.steps.map((s) => s.cached), [false, false])
  const seals = log.filter((l) => l.startsWith('seal '))
  t.is(new Set(seals).size, 2, 'each step space sealed once')
  t.is(seals.length, 2)
  // The probe of the second COPY needs the first one's DiffID: its seal began before that probe.
  t.deepEqual(log.slice(1), [seals[1], 'below sealed'])
  const fresh = await store.build({ context: ctx, dockerfileText: df, noCache: true })
  // (The first layer holds /src, made by the copy with the time of the build.)
  t.is(r.steps[1].diffId, fresh.steps[1].diffId)
  await store.close()
})

test.serial('the next step probes before the step below registers its layer and record (which are off the critical path)', async (t) => {
  const { store, ctx } = await storeWithContext(t, { ...manyFiles('src', 100, 4 << 10), 'b.txt': 'b\n' })
  const df = `FROM ${BB}\nCOPY src/ /src/\nCOPY b.txt /b.txt\nENV X=1\n`
  await store.build({ context: ctx, dockerfileText: df })
  fs.appendFileSync(path.join(ctx, 'src/f0.txt'), 'changed\n')
  const { get, put } = BuildCache.prototype
  const log: string[] = []
  BuildCache.prototype.get = function (key) { log.push(`probe ${key}`); return get.call(this, key) }
  BuildCache.prototype.put = function (r, makeLayer) { log.push(`record ${r.key}`); return put.call(this, r, makeLayer) }
  let r
  try {
    r = await store.build({ context: ctx, dockerfileText: df })
  } finally {
    Object.assign(BuildCache.prototype, { get, put })
  }
  t.deepEqual(r.steps.map((s) => s.cached), [false, false])
  const [a, b] = r.steps.map((s) => s.key)
  t.deepEqual(log, [`probe ${a}`, `probe ${b}`, `record ${a}`, `record ${b}`])
  await store.close()
})

test.serial('the steps after a miss mount the stack below them looked up once: one lookup per top layer in a build', async (t) => {
  const { store, ctx } = await storeWithContext(t, { ...manyFiles('src', 50, 1000), 'b.txt': 'b\n' })
  const df = `FROM ${BB}\nENV A=1\nCOPY b.txt /b0.txt\nCOPY src/ /src/\nCOPY b.txt /b1.txt\nRUN echo ran > /ran\n`
  await store.build({ context: ctx, dockerfileText: df })
  fs.appendFileSync(path.join(ctx, 'src/f0.txt'), 'changed\n')
  const { stack } = LayerStore.prototype
  const looked: string[] = []
  LayerStore.prototype.stack = function (chainId) { looked.push(chainId); return stack.call(this, chainId) }
  let r
  try {
    r = await store.build({ context: ctx, dockerfileText: df })
  } finally {
    LayerStore.prototype.stack = stack
  }
  t.deepEqual(r.steps.map((s) => s.cached), [true, false, false, false])
  // The three steps made here all lie on the base image and the first COPY's layer.
  t.deepEqual(looked, [...new Set(looked)])
  t.true(looked.length >= 1)
  const view = await store.images.view(r.imageId)
  t.is((await view.readFile('/ran')).toString(), 'ran\n')
  t.true((await view.readFile('/src/f0.txt')).toString().endsWith('changed\n'))
  await store.close()
})

test.serial('a COPY that fails while the step below is sealed fails the build with its own line and step; nothing left behind', async (t) => {
  const { store, root, ctx } = await storeWithContext(t, { ...manyFiles('src', 300, 30 << 10), 'b.txt': 'b\n' })
  const before = layerCount(root)
  const dirs = layerDirs(root)
  const e = await t.throwsAsync(store.build({ context: ctx, dockerfileText: `FROM ${BB}\nCOPY src/ /src/\nCOPY --chown=nosuchuser b.txt /b.txt\nRUN echo never\n`, tags: ['ov:f'] }), { instanceOf: BuildError }) as BuildError
  t.is(e.line, 3)
  t.regex(e.message, /nosuchuser/)
  // The step below finished: its layer (and record) stay, as a build without the overlap keeps it.
  t.is(layerCount(root), before + 1)
  t.deepEqual(native.overlayMounts(root), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-')), [])
  t.is(layerDirs(root).length, dirs.length + 1)
  await t.throwsAsync(store.images.inspect('ov:f'))
  // The next build reuses it.
  const r = await store.build({ context: ctx, dockerfileText: `FROM ${BB}\nCOPY src/ /src/\nCOPY b.txt /b.txt\n` })
  t.deepEqual(r.steps.map((s) => s.cached), [true, false])
  await store.close()
  await checkConsistent(t, root)
})

test.serial('aborts at any moment of the overlap: Aborted, no mount, container, staging dir or stray layer; the store consistent, the next build right', async (t) => {
  t.timeout(180_000)
  const df = `FROM ${BB}\nCOPY src/ /app/src/\nCOPY big/ /app/big/\nRUN ls -R /app > /app/count\nCOPY b.txt /app/b.txt\n`
  const { store, root, ctx } = await storeWithContext(t, { Dockerfile: df, 'b.txt': 'b\n', ...manyFiles('src', 400, 40 << 10), ...manyFiles('big', 200, 2000) })
  await store.build({ context: ctx })
  let aborted = 0
  for (const delay of [0, 2, 5, 10, 15, 20, 30, 45, 60, 90]) {
    fs.appendFileSync(path.join(ctx, 'src/f0.txt'), `edit ${delay}\n`)
    const ac = new AbortController()
    const e = await store.build({
      context: ctx, signal: ac.signal,
      // From the first step that misses on: its copy, its seal and the next steps' start.
      onProgress: (ev) => { if (ev.type === 'vertex' && ev.name.includes('COPY src/')) setTimeout(() => ac.abort(), delay) },
    }).then(() => undefined, (err: unknown) => err)
    aborted += e === undefined ? 0 : 1
    // An abort after the last step finished is no abort: the build is done.
    if (e === undefined) continue
    t.is((e as BuildError).code, 'Aborted', `abort after ${delay} ms`)
    t.deepEqual(native.overlayMounts(root), [], `abort after ${delay} ms`)
    t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-')), [], `abort after ${delay} ms`)
    t.deepEqual(fs.existsSync(path.join(root, 'runc')) ? fs.readdirSync(path.join(root, 'runc')) : [], [])
  }
  t.true(aborted >= 5, `${aborted} builds aborted`)
  const r = await store.build({ context: ctx })
  const fresh = await store.build({ context: ctx, noCache: true })
  const view = await store.images.view(r.imageId)
  t.true((await view.readFile('/app/src/f0.txt')).toString().endsWith('edit 90\n'))
  t.is((await view.readFile('/app/count')).toString(), (await (await store.images.view(fresh.imageId)).readFile('/app/count')).toString())
  // Every layer dir the store has is a layer it knows.
  t.is(layerDirs(root).length, layerCount(root))
  await store.close()
  await checkConsistent(t, root)
})

test('concurrent builds that make and hit the same steps while seals overlap: one image per context, each step made once, the store consistent', async (t) => {
  t.timeout(180_000)
  const { port, hits } = await counter(t)
  const { store, root, ctx } = await storeWithContext(t, { ...manyFiles('tree/app/src', 200, 20 << 10), ...manyFiles('big', 100, 1000) })
  // The first COPY differs by its spelling only (the same layer): the steps after it are shared.
  const dockerfiles = [0, 1].map((i) => `FROM ${BB}\nCOPY ${i === 0 ? '' : './'}tree/ /\nCOPY big/ /app/big/\nRUN /bin/busybox wget -q -O /dev/null http://127.0.0.1:${port}/ran && ls -R /app | wc -l > /app/count\n`)
  const results = await Promise.all([0, 1, 0, 1].map((i) => store.build({ context: ctx, dockerfileText: dockerfiles[i] })))
  t.is(results[0].imageId, results[2].imageId)
  t.is(results[1].imageId, results[3].imageId)
  // One layer stack for all four: the RUN ran once.
  t.deepEqual(new Set(results.map((r) => r.steps.map((s) => s.diffId).join())).size, 1)
  t.is(hits(), 1)
  t.deepEqual(native.overlayMounts(root), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-')), [])
  t.is(layerDirs(root).length, layerCount(root))
  await store.close()
  await checkConsistent(t, root)
})

test.serial('kill -9 at any moment of the overlap: the store consistent, no mount left once it opens, the next build reuses what was recorded and is right', async (t) => {
  t.timeout(180_000)
  const df = `FROM ${BB}\nCOPY src/ /app/src/\nCOPY big/ /app/big/\nRUN ls -R /app > /app/count\n`
  const { store, root, ctx } = await storeWithContext(t, { Dockerfile: df, ...manyFiles('src', 400, 40 << 10), ...manyFiles('big', 200, 2000) })
  await store.build({ context: ctx })
  await store.close()
  for (const delay of [0, 10, 25, 50, 80]) {
    fs.appendFileSync(path.join(ctx, 'src/f0.txt'), `edit ${delay}\n`)
    const child = spawn(process.execPath, [CLI, '--root', root, 'build', '--progress=plain', ctx], { stdio: ['ignore', 'ignore', 'pipe'] })
    const closed = new Promise((r) => child.on('close', r))
    let err = ''
    // From the first step that misses on: its copy, its seal, the next steps' start.
    await new Promise<void>((resolve) => {
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString()
        if (/COPY src\//.test(err)) setTimeout(resolve, delay)
      })
      void closed.then(() => resolve())
    })
    child.kill('SIGKILL')
    await closed
    await checkConsistent(t, root)
    t.deepEqual(native.overlayMounts(root), [], `kill after ${delay} ms`)
    t.deepEqual(fs.existsSync(path.join(root, 'runc')) ? fs.readdirSync(path.join(root, 'runc')) : [], [])
  }
  const again = await Store.open({ root })
  t.teardown(() => again.close())
  const r = await again.build({ context: ctx })
  const fresh = await again.build({ context: ctx, noCache: true })
  const view = await again.images.view(r.imageId)
  t.true((await view.readFile('/app/src/f0.txt')).toString().endsWith('edit 80\n'))
  t.is((await view.readFile('/app/count')).toString(), (await (await again.images.view(fresh.imageId)).readFile('/app/count')).toString())
  await again.close()
  await checkConsistent(t, root)
  t.is(layerDirs(root).length, layerCount(root))
})
