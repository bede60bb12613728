/**
 * The build context: the walk with .dockerignore, content digests through the stat index
 * (nothing read when nothing changed; touched files keep their digests without being trusted
 * blindly), and git's racily-clean rule (a change that keeps size, mtime and ctime is seen).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { BuildContext } from '../ts/build/context'
import { StatIndex } from '../ts/build/statindex'
import { tmpDir } from './helpers/fs'

const sha = (s: string | Buffer): string => `sha256:${createHash('sha256').update(s).digest('hex')}`

function makeContext(dir: string): void {
  fs.mkdirSync(path.join(dir, 'src/sub'), { recursive: true })
  fs.mkdirSync(path.join(dir, '.git/objects'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'src/a.txt'), 'alpha')
  fs.writeFileSync(path.join(dir, 'src/sub/b.txt'), 'beta')
  fs.writeFileSync(path.join(dir, '.git/objects/x'), 'never read')
  fs.writeFileSync(path.join(dir, 'notes.md'), 'notes')
  fs.symlinkSync('a.txt', path.join(dir, 'src/link'))
}

const files = (c: BuildContext): string[] => [...c.entries.values()].filter((e) => (e.mode & 0o170000) === 0o100000).map((e) => e.rel).sort()

test('the walk keeps what .dockerignore lets through and never lists ignored trees', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  makeContext(ctx)
  const c = await BuildContext.scan(ctx, ['.git', '*.md'], path.join(dir, 'idx'))
  t.deepEqual(files(c), ['src/a.txt', 'src/sub/b.txt'])
  t.is(c.entries.get('src/link')?.link, 'a.txt')
  t.false(c.entries.has('.git'))
})

test('digests come from the stat index on a rebuild: no bytes read; a changed file is read again', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  const idx = path.join(dir, 'idx')
  makeContext(ctx)
  // Files older than the hashing: trusted on the next scan.
  const old = new Date(Date.now() - 60_000)
  for (const f of ['src/a.txt', 'src/sub/b.txt']) fs.utimesSync(path.join(ctx, f), old, old)
  await new Promise((r) => setTimeout(r, 20))
  const c1 = await BuildContext.scan(ctx, [], idx)
  const d1 = await c1.digests(['src/a.txt', 'src/sub/b.txt'])
  t.is(d1.get('src/a.txt'), sha('alpha'))
  t.is(c1.bytesRead, 9)
  c1.saveIndex()

  const c2 = await BuildContext.scan(ctx, [], idx)
  const d2 = await c2.digests(['src/a.txt', 'src/sub/b.txt'])
  t.deepEqual([...d2], [...d1])
  t.is(c2.bytesRead, 0)

  // Same size, mtime put back: ctime moved, so the file is hashed again.
  const st = fs.statSync(path.join(ctx, 'src/a.txt'))
  fs.writeFileSync(path.join(ctx, 'src/a.txt'), 'ALPHA')
  fs.utimesSync(path.join(ctx, 'src/a.txt'), st.atime, st.mtime)
  const c3 = await BuildContext.scan(ctx, [], idx)
  t.is((await c3.digests(['src/a.txt'])).get('src/a.txt'), sha('ALPHA'))
  t.is(c3.bytesRead, 5)
})

test('racily clean entries are hashed again: a rewrite in the same clock tick is never served stale', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  const idx = path.join(dir, 'idx')
  fs.mkdirSync(ctx)
  const f = path.join(ctx, 'f')
  fs.writeFileSync(f, 'one')
  const c1 = await BuildContext.scan(ctx, [], idx)
  t.is((await c1.digests(['f'])).get('f'), sha('one'))
  c1.saveIndex()
  // Rewritten at once, then every time field put back: the inode looks exactly as indexed.
  const before = fs.statSync(f, { bigint: true })
  fs.writeFileSync(f, 'two')
  const after = fs.statSync(f, { bigint: true })
  const index = StatIndex.load(idx, ctx)
  const key = { dev: Number(before.dev), ino: Number(before.ino), size: Number(before.size), mtimeNs: before.mtimeNs.toString(), ctimeNs: before.ctimeNs.toString(), mode: Number(before.mode) }
  if (after.mtimeNs === before.mtimeNs && after.ctimeNs === before.ctimeNs) {
    // Same tick: the index must not trust its entry.
    t.is(index.lookup('f', key), undefined)
  }
  const c2 = await BuildContext.scan(ctx, [], idx)
  t.is((await c2.digests(['f'])).get('f'), sha('two'))
  // An entry stamped before its file's times is never trusted, whatever the stat says.
  const fresh = StatIndex.load(path.join(dir, 'idx2'), ctx)
  fresh.put('f', key, sha('stale'), BigInt(before.mtimeNs))
  t.is(fresh.lookup('f', key), undefined)
  fresh.put('f', key, sha('ok'), BigInt(before.mtimeNs) + 1n > BigInt(before.ctimeNs) ? BigInt(before.mtimeNs) + 1n : BigInt(before.ctimeNs) + 1n)
  t.is(fresh.lookup('f', key), sha('ok'))
})

test('touching every file keeps every digest', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  const idx = path.join(dir, 'idx')
  makeContext(ctx)
  const c1 = await BuildContext.scan(ctx, ['.git'], idx)
  const d1 = await c1.digests(files(c1))
  c1.saveIndex()
  const now = new Date()
  for (const f of files(c1)) fs.utimesSync(path.join(ctx, f), now, now)
  const c2 = await BuildContext.scan(ctx, ['.git'], idx)
  t.deepEqual([...(await c2.digests(files(c2)))], [...d1])
})
