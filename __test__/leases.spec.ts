/**
 * Readers that outlive one locked section pin the layers they read (ts/internal/leases.ts): an open image
 * view and a save under way keep their files through an rmi; the layers go once the reader is
 * done, or once a crashed reader's lease is found stale.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store } from '../ts'
import { tmpDir } from './helpers/fs'
import { writeArchive } from './helpers/image'
import { busyboxImage, richImage } from './helpers/fixtures'
import { startScenario, runScenario } from './helpers/child'
import { fullDisk } from './helpers/full-disk'

async function setup(t: Parameters<typeof tmpDir>[0]) {
  const dir = tmpDir(t, 'strata-lease-')
  const root = path.join(dir, 'root')
  const archive = path.join(dir, 'rich.tar')
  writeArchive(archive, [richImage()], 'docker25')
  const store = await Store.open({ root })
  await store.load(archive)
  return { dir, root, archive, store }
}

const layerdb = (root: string) => fs.readdirSync(path.join(root, 'image/overlay2/layerdb/sha256'))
const overlayDirs = (root: string) => fs.readdirSync(path.join(root, 'overlay2')).filter((d) => d !== 'l')

test('an open image view keeps its layers through an rmi; close() gives them back', async (t) => {
  const { root, store } = await setup(t)
  const view = await store.images.view('rich:latest')
  const events = await store.images.remove('rich:latest')
  t.deepEqual(events.map((e) => Object.keys(e)[0]), ['untagged', 'deleted'], 'the image goes, its layers stay for the view')
  await t.throwsAsync(store.images.inspect('rich:latest'), { code: 'ImageNotFound' } as never)
  t.is(await view.readFile('/etc/motd', 'utf8'), 'hello from layer 1\n')
  t.true((await view.readdir('/bin')).includes('busybox'))
  t.is(layerdb(root).length, 4)
  view.close()
  view.close()
  await t.throwsAsync(view.readFile('/etc/motd'), { code: 'EBADF' } as never)
  await store.close()
  t.deepEqual(layerdb(root), [], 'collected once the view closed')
  t.deepEqual(overlayDirs(root), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'leases')), [])
})

test('a view of an image that stays needs no collection, and its layers stay', async (t) => {
  const { root, store } = await setup(t)
  const view = await store.images.view('rich:latest')
  view.close()
  await store.close()
  t.is(layerdb(root).length, 4)
  t.deepEqual(fs.readdirSync(path.join(root, 'leases')), [])
})

test('a save under way keeps its layers through an rmi from another Store; the archive is complete', async (t) => {
  const { dir, root, store } = await setup(t)
  const other = await Store.open({ root })
  const out = path.join(dir, 'out.tar')
  const saving = store.save(['rich:latest'], out)
  // The rmi waits for the save's planning (shared lock), then goes ahead while it writes.
  const removed = other.images.remove('rich:latest')
  await Promise.all([saving, removed])
  await store.close()
  await other.close()
  t.deepEqual(layerdb(root), [], 'collected after the save')
  const fresh = await Store.open({ root: path.join(dir, 'fresh') })
  const { images } = await fresh.load(out)
  t.is(images[0].id, richImage().id)
})

test('a lease whose process died is stale: the next rmi collects the layers', async (t) => {
  const { dir, root } = await setup(t)
  const child = startScenario('holdView', { root, ref: 'rich:latest', ready: path.join(dir, 'viewing') }, 60_000)
  for (let i = 0; i < 400 && !fs.existsSync(path.join(dir, 'viewing')); i++) await new Promise((r) => setTimeout(r, 25))
  t.true(fs.existsSync(path.join(dir, 'viewing')))
  t.is(fs.readdirSync(path.join(root, 'leases')).length, 1)
  child.kill()
  await child.done.catch(() => undefined)
  const store = await Store.open({ root })
  // The first look at the leases (this rmi's) finds the dead one stale and drops it.
  const events = await store.images.remove('rich:latest')
  t.deepEqual(fs.readdirSync(path.join(root, 'leases')), [])
  t.is(events.filter((e) => 'deleted' in e).length, 5, 'image and its four layers')
  t.deepEqual(layerdb(root), [])
})

test('the lease of a view that is never closed goes when the view is garbage-collected', async (t) => {
  const { root } = await setup(t)
  const r = await runScenario('forgetView', { root, ref: 'rich:latest' }, 60_000, ['--expose-gc'])
  t.true(r.report.leasedWhileOpen)
  t.deepEqual(r.report.leasesAfterGc, [])
  t.deepEqual(fs.readdirSync(path.join(root, 'leases')), [])
})

test('views of two images: an rmi of one keeps only what its view needs', async (t) => {
  const { dir, root, store } = await setup(t)
  const bb = path.join(dir, 'bb.tar')
  writeArchive(bb, [busyboxImage()], 'docker25')
  await store.load(bb)
  const before = layerdb(root).length
  const view = await store.images.view('busybox:latest')
  await store.images.remove('rich:latest')
  t.is(layerdb(root).length, 1, 'rich\'s layers went at once (no view of them); busybox\'s stayed')
  await store.images.remove('busybox:latest')
  t.regex(await view.readFile('/etc/passwd', 'utf8'), /^root:x:0:0:/)
  view.close()
  await store.close()
  t.deepEqual(layerdb(root), [])
  t.true(before > 1)
})

test('a store whose disk is full still saves elsewhere and opens views (no room for a lease: the lock covers the save)', async (t) => {
  const d = await fullDisk(t)
  const { dir, root, store } = d
  d.fill()
  const warnings: string[] = []
  const onWarning = (w: Error) => { warnings.push(w.message) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  await store.save('bb:1', path.join(dir, 'out.tar'))
  const view = await store.images.view('bb:1')
  t.regex(await view.readFile('/etc/passwd', 'utf8'), /^root:/)
  view.close()
  await new Promise((r) => setImmediate(r))
  t.true(warnings.some((w) => /no room for a lease/.test(w)))
  const fresh = await Store.open({ root: path.join(dir, 'fresh') })
  t.is((await fresh.load(path.join(dir, 'out.tar'))).images[0].id, busyboxImage().id)
  t.deepEqual(fs.readdirSync(path.join(root, 'leases')), [])
})
