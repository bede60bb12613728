import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Store, StrataError } from '../ts'
import { tmpDir, snapshot } from './helpers/fs'
import { writeArchive, ArchiveForm, sha256 } from './helpers/image'
import { richImage, busyboxImage, CAP, LONG_PAX, LONG_GNU, NON_UTF8 } from './helpers/fixtures'

async function loadRich(t: Parameters<typeof tmpDir>[0], form: ArchiveForm = 'docker25') {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const img = richImage()
  const archive = path.join(dir, form === 'oci-dir' ? 'rich-oci' : 'rich.tar')
  writeArchive(archive, [img], form)
  const store = await Store.open({ root })
  const res = await store.load(archive)
  return { dir, root, img, store, res }
}

for (const form of ['legacy', 'docker25', 'oci-tar', 'oci-dir'] as ArchiveForm[]) {
  test(`load ${form}: same image ID, tags and DiffIDs`, async (t) => {
    const { root, img, store, res } = await loadRich(t, form)
    t.deepEqual(res.images, [{ id: img.id, tags: ['rich:latest'] }])
    t.deepEqual(res.lines, ['Loaded image: rich:latest'])
    const info = await store.images.inspect('rich')
    t.is(info.Id, img.id)
    t.deepEqual((info.RootFS as { Layers: string[] }).Layers, img.diffIds)
    // Compressed layers are kept byte for byte (a whole blob file of an OCI dir is copied by the
    // kernel, a blob inside a tar is cut out of its range), private to the store.
    const blobsDir = path.join(root, 'content/blobs/sha256')
    const compressed = img.blobs.filter((_, i) => img.spec.compression![i] !== 'none').map((b) => sha256(b).slice(7)).sort()
    t.deepEqual(fs.readdirSync(blobsDir).sort(), compressed)
    for (const name of compressed) {
      t.is(sha256(fs.readFileSync(path.join(blobsDir, name))).slice(7), name)
      t.is(fs.statSync(path.join(blobsDir, name)).mode & 0o777, 0o600)
    }
  })
}

test('load lays the image out as overlay2 does: diff, link, lower, committed, l/ links, layerdb, imagedb', async (t) => {
  const { root, img, store } = await loadRich(t)
  const chain: string[] = []
  for (const d of img.diffIds) chain.push(chain.length === 0 ? d : sha256(`${chain[chain.length - 1]} ${d}`))
  const cacheIds: string[] = []
  const links: string[] = []
  for (let i = 0; i < chain.length; i++) {
    const meta = path.join(root, 'image/overlay2/layerdb/sha256', chain[i].slice(7))
    t.is(fs.readFileSync(path.join(meta, 'diff'), 'utf8'), img.diffIds[i])
    const parentFile = path.join(meta, 'parent')
    t.is(fs.existsSync(parentFile) ? fs.readFileSync(parentFile, 'utf8') : undefined, i === 0 ? undefined : chain[i - 1], `parent of ${i}`)
    t.true(fs.existsSync(path.join(meta, 'tar-split.json.gz')))
    const cacheId = fs.readFileSync(path.join(meta, 'cache-id'), 'utf8')
    t.regex(cacheId, /^[0-9a-f]{64}$/)
    cacheIds.push(cacheId)
    const ldir = path.join(root, 'overlay2', cacheId)
    t.true(fs.existsSync(path.join(ldir, 'committed')))
    t.true(fs.statSync(path.join(ldir, 'diff')).isDirectory())
    const link = fs.readFileSync(path.join(ldir, 'link'), 'utf8')
    t.regex(link, /^[A-Z0-9]{26}$/)
    links.push(link)
    t.is(fs.readlinkSync(path.join(root, 'overlay2/l', link)), `../${cacheId}/diff`)
    const lower = path.join(ldir, 'lower')
    if (i === 0) t.false(fs.existsSync(lower))
    else t.is(fs.readFileSync(lower, 'utf8'), links.slice(0, i).reverse().map((l) => `l/${l}`).join(':'))
  }
  const sizes = chain.map((c) => Number(fs.readFileSync(path.join(root, 'image/overlay2/layerdb/sha256', c.slice(7), 'size'), 'utf8')))
  t.true(sizes[0] > 100_000) // busybox
  t.is(sizes[2], 0) // the empty layer
  t.deepEqual(fs.readFileSync(path.join(root, 'image/overlay2/imagedb/content/sha256', img.id.slice(7))), img.config)
  const repos = JSON.parse(fs.readFileSync(path.join(root, 'image/overlay2/repositories.json'), 'utf8'))
  t.deepEqual(repos, { Repositories: { rich: { 'rich:latest': img.id } } })
  const info = await store.images.inspect(img.id)
  const g = (info.GraphDriver as { Data: Record<string, string>; Name: string })
  t.is(g.Name, 'overlay2')
  t.is(g.Data.UpperDir, path.join(root, 'overlay2', cacheIds[3], 'diff'))
  t.is(g.Data.LowerDir, cacheIds.slice(0, 3).reverse().map((c) => path.join(root, 'overlay2', c, 'diff')).join(':'))
  t.is(g.Data.MergedDir, path.join(root, 'overlay2', cacheIds[3], 'merged'))
  t.is(g.Data.WorkDir, path.join(root, 'overlay2', cacheIds[3], 'work'))
})

test('extracted layers keep every entry type, owner, mode, xattr and name; whiteouts become overlay whiteouts', async (t) => {
  const { store } = await loadRich(t)
  const info = await store.images.inspect('rich:latest')
  const g = (info.GraphDriver as { Data: Record<string, string> }).Data
  const lowers = g.LowerDir.split(':')
  const base = snapshot(lowers[2], { mtimes: true })
  t.like(base['bin/busybox'], { type: 'file', mode: 0o755, uid: 0, gid: 0, size: fs.statSync('/bin/busybox').size })
  t.is(fs.statSync(path.join(lowers[2], 'bin/sh')).ino, fs.statSync(path.join(lowers[2], 'bin/busybox')).ino, 'hardlink shares the inode')
  // The hardlink usr/bin/hl says 0644: its header goes to the shared inode, as Docker applies it.
  t.like(base['usr/bin/su'], { type: 'file', mode: 0o644 })
  t.is(fs.statSync(path.join(lowers[2], 'usr/bin/hl')).ino, fs.statSync(path.join(lowers[2], 'usr/bin/su')).ino)
  t.like(base['usr/bin/vi'], { type: 'symlink', link: '../../bin/busybox' })
  t.like(base['etc/localtime'], { type: 'symlink', link: '/usr/share/zoneinfo/UTC' })
  t.like(base.srv, { type: 'dir', mode: 0o2775, gid: 50 })
  t.like(base.tmp, { type: 'dir', mode: 0o1777 })
  t.like(base['root'], { type: 'dir', mode: 0o700 })
  t.like(base['run/fifo'], { type: 'fifo', mode: 0o600 })
  t.like(base['dev/null2'], { type: 'char', mode: 0o666 })
  t.is(base['dev/null2'].rdev, (1 << 8) | 3)
  t.like(base['dev/loop9'], { type: 'block', mode: 0o660 })
  t.is(base['dev/loop9'].rdev, (7 << 8) | 9)
  t.like(base['home/user/notes.txt'], { uid: 1000, gid: 1000, mode: 0o640, mtime: 1234567890 })
  t.like(base['home/user'], { uid: 1000, gid: 1000 })
  const ping = base['usr/bin/ping'].xattrs ?? {}
  t.is(ping['security.capability'], `0x${CAP.toString('hex')}`)
  t.is(ping['user.note'], `0x${Buffer.from('kept').toString('hex')}`)
  t.false('trusted.overlay.opaque' in ping, 'trusted.overlay.* from a layer is never applied')
  t.false('user.overlay.redirect' in ping, 'user.overlay.* from a layer is never applied')
  t.like(base[LONG_PAX], { type: 'file', size: 14 })
  t.like(base[LONG_GNU], { type: 'file', size: 14 })
  t.like(base[NON_UTF8.toString('latin1')], { type: 'file', size: 12 })
  t.is(fs.readFileSync(Buffer.concat([Buffer.from(lowers[2] + '/'), NON_UTF8])).toString(), 'latin1 name\n')

  t.deepEqual(Object.keys(snapshot(lowers[0])), [], 'the empty layer is empty')
  const top = snapshot(g.UpperDir)
  t.like(top['usr/share/doc/a.txt'], { type: 'char', rdev: 0 })
  t.like(top.srv, { type: 'char', rdev: 0 })
  t.is(top['opt/app'].xattrs?.['trusted.overlay.opaque'], '0x79')
  t.false('usr/share/doc/.wh.a.txt' in top)
  t.false('opt/app/.wh..wh..opq' in top)
})

test('kernel overlayfs reads the loaded layers as one image: whiteouts and opaque dirs take effect', async (t) => {
  const { dir, store } = await loadRich(t)
  const g = ((await store.images.inspect('rich')).GraphDriver as { Data: Record<string, string> }).Data
  const target = path.join(dir, 'mnt')
  fs.mkdirSync(target)
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${g.UpperDir}:${g.LowerDir}`, target])
  try {
    t.false(fs.existsSync(path.join(target, 'usr/share/doc/a.txt')))
    t.true(fs.existsSync(path.join(target, 'usr/share/doc/b.txt')))
    t.false(fs.existsSync(path.join(target, 'srv')))
    t.deepEqual(fs.readdirSync(path.join(target, 'opt/app')), ['fresh.txt'])
    t.is(fs.readFileSync(path.join(target, 'data/one.txt'), 'utf8'), 'layer one\n')
    t.is(execFileSync(path.join(target, 'bin/busybox'), ['echo', 'ok']).toString(), 'ok\n')
  } finally {
    execFileSync('umount', [target])
  }
})

test('a layer already in the store is not extracted again', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const a = busyboxImage(['bb:a'])
  const rich = richImage()
  writeArchive(path.join(dir, 'a.tar'), [a], 'docker25')
  writeArchive(path.join(dir, 'rich.tar'), [rich], 'docker25')
  const store = await Store.open({ root })
  await store.load(path.join(dir, 'rich.tar'))
  const before = fs.readdirSync(path.join(root, 'overlay2')).sort()
  const statuses: string[] = []
  await store.load(path.join(dir, 'rich.tar'), { onProgress: (p) => statuses.push(p.status) })
  t.deepEqual(fs.readdirSync(path.join(root, 'overlay2')).sort(), before, 'no new layer dirs')
  t.deepEqual(statuses, ['Already exists', 'Already exists', 'Already exists', 'Already exists'])
  await store.load(path.join(dir, 'a.tar'))
  t.is(fs.readdirSync(path.join(root, 'overlay2')).length, before.length + 1)
})

test('progress reports every layer being extracted, up to its full size', async (t) => {
  const dir = tmpDir(t)
  const img = richImage()
  writeArchive(path.join(dir, 'r.tar'), [img], 'legacy')
  const store = await Store.open({ root: path.join(dir, 'root') })
  const seen = new Map<number, { current: number; total: number; status: string }>()
  await store.load(path.join(dir, 'r.tar'), { onProgress: (p) => seen.set(p.layer, p) })
  t.is(seen.size, 4)
  for (const [, p] of seen) {
    t.is(p.status, 'Loaded')
    t.is(p.current, p.total)
  }
})

test('a multi-image archive loads every image, untagged ones by ID', async (t) => {
  const dir = tmpDir(t)
  const a = busyboxImage(['one:1', 'one:2'])
  const b = richImage([])
  writeArchive(path.join(dir, 'm.tar'), [a, b], 'docker25')
  const store = await Store.open({ root: path.join(dir, 'root') })
  const res = await store.load(path.join(dir, 'm.tar'))
  t.deepEqual(res.lines, ['Loaded image: one:1', 'Loaded image: one:2', `Loaded image ID: ${b.id}`])
})

test('a tag that moves reports the image it was taken from', async (t) => {
  const dir = tmpDir(t)
  writeArchive(path.join(dir, 'a.tar'), [busyboxImage(['x:latest'])], 'docker25')
  writeArchive(path.join(dir, 'b.tar'), [richImage(['x:latest'])], 'docker25')
  const store = await Store.open({ root: path.join(dir, 'root') })
  await store.load(path.join(dir, 'a.tar'))
  const res = await store.load(path.join(dir, 'b.tar'))
  t.deepEqual(res.lines, [`The image x:latest already exists, renaming the old one with ID ${busyboxImage().id} to empty string`, 'Loaded image: x:latest'])
})

test('load from a stream and from a gzip-compressed archive', async (t) => {
  const dir = tmpDir(t)
  const img = richImage()
  writeArchive(path.join(dir, 'r.tar'), [img], 'docker25')
  execFileSync('gzip', ['-k', path.join(dir, 'r.tar')])
  const store = await Store.open({ root: path.join(dir, 'root') })
  const res = await store.load(fs.createReadStream(path.join(dir, 'r.tar')))
  t.is(res.images[0].id, img.id)
  const store2 = await Store.open({ root: path.join(dir, 'root2') })
  t.is((await store2.load(path.join(dir, 'r.tar.gz'))).images[0].id, img.id)
  t.deepEqual(fs.readdirSync(path.join(dir, 'root', 'tmp')), [], 'spooled input removed')
})

test('an aborted load throws Aborted and leaves the store as it was', async (t) => {
  const dir = tmpDir(t)
  writeArchive(path.join(dir, 'r.tar'), [richImage()], 'docker25')
  const root = path.join(dir, 'root')
  const store = await Store.open({ root })
  const before = snapshot(root, { xattrs: false })
  const ac = new AbortController()
  ac.abort()
  const err = await t.throwsAsync(store.load(path.join(dir, 'r.tar'), { signal: ac.signal }))
  t.is((err as StrataError).code, 'Aborted')
  const ac2 = new AbortController()
  const p = store.load(path.join(dir, 'r.tar'), { signal: ac2.signal, onProgress: () => ac2.abort() })
  const err2 = await t.throwsAsync(p)
  t.is((err2 as StrataError).code, 'Aborted')
  t.deepEqual(snapshot(root, { xattrs: false }), before)
})

test('a missing file gives a typed error', async (t) => {
  const dir = tmpDir(t)
  const store = await Store.open({ root: path.join(dir, 'root') })
  const err = await t.throwsAsync(store.load(path.join(dir, 'nope.tar')))
  t.is((err as StrataError).code, 'Io')
  t.is((err as StrataError).syscode, 'ENOENT')
})

test('kept compressed blobs go with the last layer anything needs: an image deleted under a container keeps them until the container goes', async (t) => {
  const { root, img, store } = await loadRich(t)
  const blobsDir = path.join(root, 'content/blobs/sha256')
  const compressed = img.blobs.filter((_, i) => img.spec.compression![i] !== 'none').map((b) => sha256(b).slice(7)).sort()
  t.deepEqual(fs.readdirSync(blobsDir).sort(), compressed, 'one kept blob per layer that came compressed')
  const c = await store.containers.create('rich:latest', { cmd: ['true'] })
  await store.images.remove(img.id, { force: true })
  t.deepEqual(await store.images.list(), [])
  t.deepEqual(fs.readdirSync(blobsDir).sort(), compressed, 'the container still needs the layers, so their blobs stay')
  await store.containers.remove(c.id)
  t.deepEqual(fs.readdirSync(path.join(root, 'image/overlay2/layerdb/sha256')), [])
  t.deepEqual(fs.readdirSync(blobsDir), [], 'the blobs went with the layers')
  await store.close()
})
