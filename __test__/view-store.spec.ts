/**
 * Union views on the store's own images and containers (issue: a container's writable layer
 * changed through the view while not mounted shows in a later kernel mount, and the reverse).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { StrataError } from '../ts'
import { storeWith, appImage } from './helpers/container'

test('an image view reads the merged image without mounting; writes are EROFS', async (t) => {
  const { store } = await storeWith(t, [appImage(['app:1'])])
  const v = await store.images.view('app:1')
  t.is((await v.readFile('/etc/motd')).toString(), 'hello from the app layer\n')
  t.true((await v.readdir('/bin')).includes('busybox'))
  const err = await t.throwsAsync(v.writeFile('/x', 'y'))
  t.is((err as StrataError).code, 'EROFS')
})

test('container view writes then a kernel mount shows them; kernel writes then the view reads them', async (t) => {
  const { store } = await storeWith(t, [appImage(['app:1'])])
  const c = await store.containers.create('app:1', { name: 'v1' })
  const v = await c.view()
  await v.writeFile('/opt/app/new.txt', 'from the view\n')
  await v.appendFile('/etc/motd', 'appended\n')
  await v.rm('/srv', { recursive: true })
  const layers = await c.layers()
  // The view left exactly what overlayfs would: a copied-up motd, a 0/0 whiteout for /srv.
  const wh = fs.lstatSync(path.join(layers.upperDir, 'srv'))
  t.true(wh.isCharacterDevice())
  t.is(wh.rdev, 0)
  // A writable view is refused while mounted.
  const merged = await c.mount()
  t.is((await t.throwsAsync(c.view()) as StrataError).code, 'Conflict')
  t.is(fs.readFileSync(path.join(merged, 'opt/app/new.txt'), 'utf8'), 'from the view\n')
  t.is(fs.readFileSync(path.join(merged, 'etc/motd'), 'utf8'), 'hello from the app layer\nappended\n')
  t.false(fs.existsSync(path.join(merged, 'srv')))
  fs.writeFileSync(path.join(merged, 'kernel.txt'), 'from the kernel\n')
  fs.rmSync(path.join(merged, 'opt/app/old.txt'))
  // A read-only view works while mounted.
  const ro = await c.view({ readOnly: true })
  t.is((await ro.readFile('/kernel.txt')).toString(), 'from the kernel\n')
  await c.unmount()
  const v2 = await c.view()
  t.is((await v2.readFile('/kernel.txt')).toString(), 'from the kernel\n')
  t.is(((await t.throwsAsync(v2.stat('/opt/app/old.txt'))) as StrataError).code, 'ENOENT')
  t.deepEqual((await v2.readdir('/opt/app')).sort(), ['keep.txt', 'new.txt'])
})
