/**
 * A full file system: each test mounts a small tmpfs (16 MiB), puts a store on it with an image
 * (and a container) in it, fills what is left, and runs one operation. Each must fail with an
 * `Io` StrataError whose `syscode` is ENOSPC (commit too: the extractor's ENOSPC, not the
 * walker's EPIPE), leave the store exactly as it was, and leave it consistent once space is back.
 */
import test, { type ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import { StrataError } from '../ts'
import { snapshot, cli } from './helpers/fs'
import { tar } from './helpers/tar'
import { writeArchive, buildImage } from './helpers/image'
import { fullDisk, FullDisk } from './helpers/full-disk'
import { checkConsistent } from './helpers/consistency'

/** Runs `op` on the full disk: ENOSPC as an Io StrataError, the store byte for byte as before, consistent after. */
async function failsFull(t: ExecutionContext, d: FullDisk, op: () => Promise<unknown>): Promise<StrataError> {
  d.fill()
  const before = snapshot(d.root, { mtimes: true })
  const err = await t.throwsAsync(op())
  t.true(err instanceof StrataError, `${err?.constructor.name}: ${err?.message}`)
  const e = err as StrataError
  t.is(e.code, 'Io', e.message)
  t.is(e.syscode, 'ENOSPC', e.message)
  t.is(e.errno, 28)
  t.deepEqual(snapshot(d.root, { mtimes: true }), before, 'store unchanged')
  d.free()
  await checkConsistent(t, d.root)
  return e
}

test('load on a full disk: ENOSPC, store unchanged', async (t) => {
  const d = await fullDisk(t)
  const big = path.join(d.dir, 'big.tar')
  // A layer the store does not have yet (busybox's is there already).
  writeArchive(big, [buildImage({ layers: [tar([{ name: 'data.bin', data: Buffer.alloc(3 << 20, 7) }])], tags: ['big:1'] })], 'docker25')
  await failsFull(t, d, () => d.store.load(big))
  // And from a stream (spooled first).
  d.fill()
  const before = snapshot(d.root, { mtimes: true })
  const e = (await t.throwsAsync(d.store.load(Readable.from([fs.readFileSync(big)])))) as StrataError
  t.is(e.code, 'Io', e.message)
  t.is(e.syscode, 'ENOSPC', e.message)
  t.deepEqual(snapshot(d.root, { mtimes: true }), before)
})

test('import on a full disk: ENOSPC, store unchanged', async (t) => {
  const d = await fullDisk(t)
  const rootfs = path.join(d.dir, 'rootfs.tar')
  fs.writeFileSync(rootfs, tar([{ name: 'etc/', type: 'dir' }, { name: 'etc/big', data: Buffer.alloc(2 << 20, 1) }]))
  await failsFull(t, d, () => d.store.import(rootfs, { ref: 'imported:1' }))
})

test('tag on a full disk: ENOSPC, store unchanged', async (t) => {
  const d = await fullDisk(t)
  await failsFull(t, d, () => d.store.images.tag('bb:1', 'bb:2'))
  t.deepEqual((await d.store.images.list()).flatMap((i) => i.repoTags), ['bb:1'])
})

test('rmi on a full disk: ENOSPC, store unchanged', async (t) => {
  const d = await fullDisk(t, async (s) => {
    await s.images.tag('bb:1', 'bb:2')
  })
  // Untagging one of two tags, and removing the image: both rewrite repositories.json first.
  await failsFull(t, d, () => d.store.images.remove('bb:2'))
  t.deepEqual((await d.store.images.list()).flatMap((i) => i.repoTags).sort(), ['bb:1', 'bb:2'])
  await failsFull(t, d, () => d.store.images.remove('bb:1', { force: true }))
  t.deepEqual((await d.store.images.list()).flatMap((i) => i.repoTags).sort(), ['bb:1', 'bb:2'])
})

test('commit on a full disk: the extractor\'s ENOSPC (not EPIPE), store unchanged', async (t) => {
  let upper = ''
  const d = await fullDisk(t, async (s) => {
    const c = await s.containers.create('bb:1', { name: 'c1', cmd: ['true'] })
    upper = (await c.layers()).upperDir
    // 3 MiB the container "wrote": the new layer needs that much again.
    fs.writeFileSync(path.join(upper, 'written.bin'), Buffer.alloc(3 << 20, 3))
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(upper, `small-${i}`), `file ${i}\n`)
  })
  const c = await d.store.containers.get('c1')
  const e = await failsFull(t, d, () => c.commit({ ref: 'bb:committed' }))
  t.notRegex(e.message, /EPIPE|Broken pipe/)
  t.true(fs.existsSync(path.join(upper, 'written.bin')), 'the container keeps its layer')
})

test('save on a full disk: ENOSPC, store unchanged, no partial output', async (t) => {
  const d = await fullDisk(t)
  const out = path.join(d.fsDir, 'out.tar')
  await failsFull(t, d, () => d.store.save('bb:1', out))
  t.false(fs.existsSync(out))
  t.deepEqual(fs.readdirSync(d.fsDir).sort(), ['root'])
  // An OCI layout directory too.
  const outDir = path.join(d.fsDir, 'oci')
  await failsFull(t, d, () => d.store.save(['bb:1'], outDir, { format: 'oci' }))
  t.false(fs.existsSync(outDir))
})

test('create on a full disk: ENOSPC, store unchanged', async (t) => {
  const d = await fullDisk(t)
  await failsFull(t, d, () => d.store.containers.create('bb:1', { name: 'nope', cmd: ['true'] }))
  t.deepEqual(await d.store.containers.list({ all: true }), [])
})

test('the CLI on a full disk: one strata: line naming ENOSPC, exit 1, no stack trace', async (t) => {
  const d = await fullDisk(t)
  d.fill()
  const before = snapshot(d.root, { mtimes: true })
  const r = await cli(d.root, ['tag', 'bb:1', 'bb:2'])
  t.is(r.code, 1)
  t.regex(r.stderr, /^strata: .*ENOSPC.*\n$/)
  t.notRegex(r.stderr, /\n\s+at /)
  t.deepEqual(snapshot(d.root, { mtimes: true }), before)
  d.free()
})
