import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { Store, StrataError, type StrataErrorCode } from '../ts'
import { tmpDir, snapshot } from './helpers/fs'
import { tar, entry, TarEntry } from './helpers/tar'
import { buildImage, writeArchive, busyboxEntries, sha256, compress } from './helpers/image'

interface World {
  dir: string
  root: string
  canary: string
  store: Store
}

async function world(t: Parameters<typeof tmpDir>[0]): Promise<World> {
  const dir = tmpDir(t)
  const canary = path.join(dir, 'canary')
  fs.mkdirSync(path.join(canary, 'sub'), { recursive: true })
  fs.writeFileSync(path.join(canary, 'secret'), 'do not touch\n')
  fs.writeFileSync(path.join(canary, 'sub', 'file'), 'nor this\n')
  const root = path.join(dir, 'root')
  const store = await Store.open({ root })
  // A base image already in the store: a hostile load must not disturb it either.
  writeArchive(path.join(dir, 'base.tar'), [buildImage({ layers: [tar(busyboxEntries())], tags: ['base:1'] })], 'docker25')
  await store.load(path.join(dir, 'base.tar'))
  return { dir, root, canary, store }
}

const UP = '../../../../../../../../../../..'

/**
 * Hostile layers: each must be refused with UnsafeLayerEntry naming `bad`. (Swapping a directory
 * or a file for a symlink needs the same name twice: a layer that does that is refused as Docker
 * refuses it, before anything is written; see the test below.)
 */
function hostileLayers(canary: string): { title: string; entries: TarEntry[]; bad: string }[] {
  const c = canary.replace(/^\//, '')
  return [
    { title: 'dot-dot file name', entries: [{ name: '../escape.txt', data: 'x' }], bad: '../escape.txt' },
    { title: 'dot-dot inside the name', entries: [{ name: 'a/../../escape.txt', data: 'x' }], bad: 'a/../../escape.txt' },
    { title: 'absolute name into the canary', entries: [{ name: `${canary}/pwned`, data: 'x' }], bad: `${canary}/pwned` },
    { title: 'absolute symlink as a parent', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/pwned', data: 'x' }], bad: 'link/pwned' },
    { title: 'relative symlink as a parent', entries: [{ name: 'link', type: 'symlink', linkname: `${UP}/${c}` }, { name: 'link/pwned', data: 'x' }], bad: 'link/pwned' },
    { title: 'symlink chain as a parent', entries: [{ name: 'b', type: 'symlink', linkname: canary }, { name: 'a', type: 'symlink', linkname: 'b' }, { name: 'a/pwned', data: 'x' }], bad: 'a/pwned' },
    { title: 'hardlink to a dot-dot path', entries: [{ name: 'hl', type: 'hardlink', linkname: `${UP}/${c}/secret` }], bad: 'hl' },
    { title: 'hardlink to an absolute path', entries: [{ name: 'hl', type: 'hardlink', linkname: `${canary}/secret` }], bad: 'hl' },
    { title: 'hardlink through a symlink', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'hl', type: 'hardlink', linkname: 'link/secret' }], bad: 'hl' },
    { title: 'hardlink to a name escaping via a subdir', entries: [{ name: 'x/', type: 'dir' }, { name: 'hl', type: 'hardlink', linkname: 'x/../../secret' }], bad: 'hl' },
    { title: 'whiteout through a symlink', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/.wh.secret', data: '' }], bad: 'link/.wh.secret' },
    { title: 'whiteout of dot-dot', entries: [{ name: 'sub/', type: 'dir' }, { name: 'sub/.wh...', data: '' }], bad: 'sub/.wh...' },
    { title: 'whiteout of dot', entries: [{ name: 'sub/', type: 'dir' }, { name: 'sub/.wh..', data: '' }], bad: 'sub/.wh..' },
    { title: 'opaque marker under a symlink', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/.wh..wh..opq', data: '' }], bad: 'link/.wh..wh..opq' },
    { title: 'PAX path override with dot-dot', entries: [{ name: 'innocent.txt', data: 'x', pax: { path: `${UP}/${c}/pwned` } }], bad: `${UP}/${c}/pwned` },
    { title: 'PAX linkpath override, then write through the link', entries: [{ name: 's', type: 'symlink', linkname: 'harmless', pax: { linkpath: canary } }, { name: 's/pwned', data: 'x' }], bad: 's/pwned' },
    { title: 'PAX linkpath override on a hardlink', entries: [{ name: 'hl', type: 'hardlink', linkname: 'bin/busybox', pax: { linkpath: `${UP}/${c}/secret` } }], bad: 'hl' },
    { title: 'GNU long name with dot-dot', entries: [{ name: `${UP}/${c}/${'n'.repeat(120)}`, data: 'x', gnuLongName: true }], bad: `${UP}/${c}/${'n'.repeat(120)}` },
    { title: 'device node through a symlink', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/null', type: 'char', devmajor: 1, devminor: 3 }], bad: 'link/null' },
    { title: 'fifo through a symlink', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/fifo', type: 'fifo' }], bad: 'link/fifo' },
    { title: 'directory through a symlink', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/newdir/', type: 'dir' }], bad: 'link/newdir' },
    { title: 'symlink through a symlink', entries: [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/evil', type: 'symlink', linkname: '/etc/passwd' }], bad: 'link/evil' },
    { title: 'dot-dot symlink name', entries: [{ name: '../evil-link', type: 'symlink', linkname: '/' }], bad: '../evil-link' },
    { title: 'deep dir then symlink swap of an ancestor', entries: [{ name: 'p/q/', type: 'dir' }, { name: 'p', type: 'symlink', linkname: canary }, { name: 'p/q/pwned', data: 'x' }], bad: 'p/q/pwned' },
  ]
}

test('a suite of hostile layers: each refused with UnsafeLayerEntry, canary and store untouched', async (t) => {
  const w = await world(t)
  const cases = hostileLayers(w.canary)
  t.true(cases.length >= 20)
  const canaryBefore = snapshot(w.canary, { mtimes: true })
  const storeBefore = snapshot(w.root, { mtimes: true })
  for (const [i, c] of cases.entries()) {
    const img = buildImage({ layers: [tar(busyboxEntries()), tar(c.entries)], compression: ['none', i % 2 ? 'gzip' : 'none'], tags: [`evil:${i}`] })
    const file = path.join(w.dir, `evil-${i}.tar`)
    writeArchive(file, [img], 'docker25')
    const err = await t.throwsAsync(w.store.load(file), undefined, c.title)
    t.is((err as StrataError).code, 'UnsafeLayerEntry', `${c.title}: ${(err as Error).message}`)
    t.true((err as Error).message.includes(c.bad) || (err as StrataError).path === c.bad, `${c.title}: error names ${c.bad}: ${(err as Error).message}`)
    t.deepEqual(snapshot(w.canary, { mtimes: true }), canaryBefore, `${c.title}: canary untouched`)
    t.deepEqual(snapshot(w.root, { mtimes: true }), storeBefore, `${c.title}: store unchanged`)
  }
  t.deepEqual((await w.store.images.list()).map((i) => i.repoTags), [['base:1']])
})

test('a layer that names a path twice (a directory or a file swapped for a symlink) is refused, as Docker refuses it; canary and store untouched', async (t) => {
  const w = await world(t)
  const canaryBefore = snapshot(w.canary, { mtimes: true })
  const storeBefore = snapshot(w.root, { mtimes: true })
  const swaps: TarEntry[][] = [
    [{ name: 'd/', type: 'dir' }, { name: 'd', type: 'symlink', linkname: w.canary }, { name: 'd/pwned', data: 'x' }],
    [{ name: 'f', type: 'symlink', linkname: `${w.canary}/secret` }, { name: 'f', data: 'replaced\n' }],
  ]
  for (const [i, entries] of swaps.entries()) {
    const img = buildImage({ layers: [tar(entries)], tags: [`swap:${i}`] })
    writeArchive(path.join(w.dir, `swap-${i}.tar`), [img], 'docker25')
    const err = await t.throwsAsync(w.store.load(path.join(w.dir, `swap-${i}.tar`)), { instanceOf: StrataError })
    t.is(err.code, 'UnsupportedArchive', err.message)
    t.regex(err.message, /duplicates of file paths not supported/)
  }
  t.deepEqual(snapshot(w.canary, { mtimes: true }), canaryBefore)
  t.deepEqual(snapshot(w.root, { mtimes: true }), storeBefore)
})

function corruptCases(): { title: string; code: StrataErrorCode; make: () => { layers: Buffer[]; blobs?: Buffer[]; configPatch?: (c: Record<string, unknown>) => void } }[] {
  const good = tar([{ name: 'a.txt', data: 'a'.repeat(5000) }, { name: 'b.txt', data: 'b'.repeat(3000) }])
  return [
    { title: 'truncated layer tar', code: 'CorruptArchive', make: () => ({ layers: [good], blobs: [good.subarray(0, 2048)] }) },
    { title: 'corrupt gzip', code: 'CorruptArchive', make: () => { const z = zlib.gzipSync(good); z.fill(0x55, 30, 60); return { layers: [good], blobs: [z] } } },
    { title: 'truncated gzip', code: 'CorruptArchive', make: () => { const z = zlib.gzipSync(good); return { layers: [good], blobs: [z.subarray(0, z.length - 20)] } } },
    { title: 'corrupt zstd', code: 'CorruptArchive', make: () => { const z = compress(good, 'zstd'); z.fill(0x55, 20, z.length - 8); return { layers: [good], blobs: [z] } } },
    { title: 'PAX size that lies', code: 'CorruptArchive', make: () => { const l = Buffer.concat([entry({ name: 'a.txt', data: 'short', pax: { size: '999999' } }), Buffer.alloc(1024)]); return { layers: [l] } } },
    { title: 'header size that lies', code: 'CorruptArchive', make: () => { const l = Buffer.concat([entry({ name: 'a.txt', data: 'short', headerSize: 999999 }), Buffer.alloc(1024)]); return { layers: [l] } } },
    { title: 'bad header checksum', code: 'CorruptArchive', make: () => { const l = Buffer.from(good); l[10] ^= 0xff; return { layers: [good], blobs: [l] } } },
    { title: 'DiffID mismatch', code: 'DigestMismatch', make: () => ({ layers: [good], configPatch: (c) => { (c.rootfs as { diff_ids: string[] }).diff_ids = [sha256('something else')] } }) },
  ]
}

test('broken archives give typed errors and leave the store as it was', async (t) => {
  const w = await world(t)
  const before = snapshot(w.root, { mtimes: true })
  for (const [i, c] of corruptCases().entries()) {
    const m = c.make()
    const img = buildImage({ layers: m.layers, tags: [`broken:${i}`] })
    if (m.blobs) img.blobs = m.blobs
    if (m.configPatch) {
      const cfg = JSON.parse(img.config.toString())
      m.configPatch(cfg)
      img.config = Buffer.from(JSON.stringify(cfg))
      img.id = sha256(img.config)
    }
    for (const form of ['legacy', 'docker25'] as const) {
      const file = path.join(w.dir, `broken-${i}-${form}.tar`)
      writeArchive(file, [img], form)
      const err = await t.throwsAsync(w.store.load(file), undefined, c.title)
      t.is((err as StrataError).code, c.code, `${c.title} (${form}): ${(err as Error).message}`)
      t.deepEqual(snapshot(w.root, { mtimes: true }), before, `${c.title} (${form}): store unchanged`)
    }
  }
})

test('archive-level damage: bad manifests, escaping member names, blob digest mismatch, garbage', async (t) => {
  const w = await world(t)
  const before = snapshot(w.root, { mtimes: true })
  const img = buildImage({ layers: [tar([{ name: 'a', data: 'a' }])], tags: ['x:1'] })
  const cases: { title: string; code: StrataErrorCode; file: () => string }[] = [
    { title: 'manifest naming a path outside the archive', code: 'CorruptArchive', file: () => {
      const f = path.join(w.dir, 'esc.tar')
      fs.writeFileSync(f, tar([{ name: 'manifest.json', data: JSON.stringify([{ Config: '../../../../etc/passwd', RepoTags: ['x:1'], Layers: [] }]) }]))
      return f
    } },
    { title: 'config that is not JSON', code: 'CorruptArchive', file: () => {
      const f = path.join(w.dir, 'cfg.tar')
      fs.writeFileSync(f, tar([{ name: 'c.json', data: '{nope' }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: [] }]) }]))
      return f
    } },
    { title: 'layer count differs from the config', code: 'CorruptArchive', file: () => {
      const f = path.join(w.dir, 'count.tar')
      fs.writeFileSync(f, tar([{ name: 'c.json', data: img.config }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: [] }]) }]))
      return f
    } },
    { title: 'OCI blob whose content does not match its digest', code: 'DigestMismatch', file: () => {
      const d = path.join(w.dir, 'ocibad')
      writeArchive(d, [img], 'oci-dir')
      const blob = path.join(d, 'blobs/sha256', sha256(img.blobs[0]).slice(7))
      const b = fs.readFileSync(blob)
      b[512] ^= 1 // a byte of file data: the tar still parses, the digest does not match
      fs.writeFileSync(blob, b)
      return d
    } },
    { title: 'not an archive', code: 'CorruptArchive', file: () => {
      const f = path.join(w.dir, 'garbage.tar')
      fs.writeFileSync(f, Buffer.alloc(4096, 0x41))
      return f
    } },
    { title: 'a tar without manifest or index', code: 'UnsupportedArchive', file: () => {
      const f = path.join(w.dir, 'plain.tar')
      fs.writeFileSync(f, tar([{ name: 'hello.txt', data: 'hi' }]))
      return f
    } },
  ]
  for (const c of cases) {
    const err = await t.throwsAsync(w.store.load(c.file()), undefined, c.title)
    t.is((err as StrataError).code, c.code, `${c.title}: ${(err as Error).message}`)
    t.deepEqual(snapshot(w.root, { mtimes: true }), before, `${c.title}: store unchanged`)
  }
})
