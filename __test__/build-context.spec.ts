/**
 * The build context: the walk with .dockerignore, content digests through the stat index
 * (nothing read when nothing changed; touched files keep their digests without being trusted
 * blindly), and git's racily-clean rule (a change that keeps size, mtime and ctime is seen).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { BuildContext } from '../ts/build/context'
import { copySteps, planSources } from '../ts/build/copy'
import { native } from '../ts/internal/native'
import { call } from '../ts/errors'
import { StatIndex, StatKey } from '../ts/build/statindex'
import { PatternMatcher } from '../ts/build/dockerignore'
import { toBytes } from '../ts/internal/bytepath'
import { tmpDir } from './helpers/fs'
import { clockPast } from './helpers/build'

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

/** A file's stat key as the scan makes it (`dev:ino:size:mtimeNs:ctimeNs:mode`, ts/build/statindex.ts). */
const statKeyOf = (st: fs.BigIntStats): StatKey => ({
  statKey: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}`, mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString(),
})

const files = (c: BuildContext): string[] => [...c.entries.values()].filter((e) => (e.mode & 0o170000) === 0o100000).map((e) => e.rel).sort()

/** A context (makeContext) whose `files` are older than any hashing from now on: recorded when hashed. */
async function settledContext(t: Parameters<typeof tmpDir>[0], files: string[], more?: (ctx: string) => void): Promise<{ dir: string; ctx: string; idx: string }> {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  makeContext(ctx)
  more?.(ctx)
  const old = new Date(Date.now() - 60_000)
  for (const f of files) fs.utimesSync(Buffer.concat([Buffer.from(`${ctx}/`), toBytes(f)]), old, old)
  // Recorded only once the file system's clock is past their change times (racily clean otherwise).
  await clockPast(ctx)
  return { dir, ctx, idx: path.join(dir, 'idx') }
}

test('the walk keeps what .dockerignore lets through and never lists ignored trees', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  makeContext(ctx)
  const c = await BuildContext.scan(ctx, ['.git', '*.md'], path.join(dir, 'idx'))
  t.deepEqual(files(c), ['src/a.txt', 'src/sub/b.txt'])
  t.is(c.entries.get('src/link')?.link, 'a.txt')
  t.false(c.entries.has('.git'))
})

test('a scan stops between levels once its cancel flag is set: Aborted', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  makeContext(ctx)
  const cancel = new native.NativeCancel()
  cancel.cancel()
  await t.throwsAsync(BuildContext.scan(ctx, [], path.join(dir, 'idx'), {}, cancel), { code: 'Aborted' })
  // Not set: the same walk.
  t.deepEqual(files(await BuildContext.scan(ctx, ['.git', '*.md'], path.join(dir, 'idx'), {}, new native.NativeCancel())), ['src/a.txt', 'src/sub/b.txt'])
})

test('stamps leave no file behind', (t) => {
  const dir = tmpDir(t)
  const a = StatIndex.stamp(dir)
  const b = StatIndex.stamp(dir)
  t.true(b >= a)
  t.deepEqual(fs.readdirSync(dir), [])
})

test('digests come from the stat index on a rebuild: no bytes read; a changed file is read again', async (t) => {
  // Files older than the hashing: trusted on the next scan.
  const { ctx, idx } = await settledContext(t, ['src/a.txt', 'src/sub/b.txt'])
  const c1 = await BuildContext.scan(ctx, [], idx)
  const d1 = await c1.digests(['src/a.txt', 'src/sub/b.txt'])
  t.is(d1.get('src/a.txt'), sha('alpha'))
  t.is(c1.bytesRead, 9)
  await c1.saveIndex()

  const c2 = await BuildContext.scan(ctx, [], idx)
  const d2 = await c2.digests(['src/a.txt', 'src/sub/b.txt'])
  t.deepEqual([...d2], [...d1])
  t.is(c2.bytesRead, 0)

  // Same size, mtime put back: ctime moved, so the file is hashed again.
  const st = fs.statSync(path.join(ctx, 'src/a.txt'))
  fs.writeFileSync(path.join(ctx, 'src/a.txt'), 'ALPHA')
  fs.utimesSync(path.join(ctx, 'src/a.txt'), st.atime, st.mtime)
  const c3 = await BuildContext.scan(ctx, [], idx)
  // The scan gives its stat key, not the recorded digest.
  t.is(c3.entries.get('src/a.txt')?.sha256, undefined)
  t.truthy(c3.entries.get('src/a.txt')?.statKey)
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
  await c1.saveIndex()
  // Rewritten at once, then every time field put back: the inode looks exactly as indexed.
  const before = fs.statSync(f, { bigint: true })
  fs.writeFileSync(f, 'two')
  const after = fs.statSync(f, { bigint: true })
  const index = StatIndex.load(idx, ctx)
  const key = statKeyOf(before)
  // The scan's key is the same string, made of the same fields.
  t.is(c1.entries.get('f')?.statKey, key.statKey)
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
  await c1.saveIndex()
  const now = new Date()
  for (const f of files(c1)) fs.utimesSync(path.join(ctx, f), now, now)
  const c2 = await BuildContext.scan(ctx, ['.git'], idx)
  t.deepEqual([...(await c2.digests(files(c2)))], [...d1])
})

/** Every entry below `dir` as python's lstat sees it (names as bytes in hex), with xattrs. */
function pythonWalk(dir: string): Record<string, unknown> {
  const py = `
import os, sys, json, stat
root = sys.argv[1].encode()
out = {}
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        st = os.lstat(p)
        x = sorted([k, os.getxattr(p, k, follow_symlinks=False).hex()] for k in os.listxattr(p, follow_symlinks=False))
        link = os.readlink(p).hex() if stat.S_ISLNK(st.st_mode) else None
        key = '%d:%d:%d:%d:%d:%d' % (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
        out[os.path.relpath(p, root).hex()] = [st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink, str(st.st_mtime_ns), str(st.st_ctime_ns), key, link, x or None]
print(json.dumps(out))
`
  return JSON.parse(execFileSync('python3', ['-c', py, dir], { encoding: 'utf8' })) as Record<string, unknown>
}

test('the scan gives every entry with its lstat, link target, xattrs and stat key, names as their bytes', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  makeContext(ctx)
  const b = (s: string): Buffer => Buffer.concat([Buffer.from(`${ctx}/`), Buffer.from(s, 'latin1')])
  fs.mkdirSync(b('d\xff/sub\xfe'), { recursive: true })
  fs.writeFileSync(b('d\xff/sub\xfe/caf\xe9.txt'), 'latin-1 name\n')
  fs.symlinkSync(Buffer.from('caf\xe9.txt', 'latin1'), b('d\xff/link\xfe'))
  fs.linkSync(path.join(ctx, 'notes.md'), path.join(ctx, 'hard.md'))
  fs.writeFileSync(path.join(ctx, 'quote"back\\slash'), 'q')
  execFileSync('setfattr', ['-n', 'user.one', '-v', '1', path.join(ctx, 'src/a.txt')])
  execFileSync('python3', ['-c', 'import os, sys; os.setxattr(bytes.fromhex(sys.argv[1]), "user.dir", b"\\xff")', b('d\xff').toString('hex')])
  const c = await BuildContext.scan(ctx, [], path.join(dir, 'idx'))
  const ours: Record<string, unknown> = {}
  for (const e of c.entries.values()) {
    const x = e.xattrs?.map(([k, v]) => [k, Buffer.from(v, 'base64').toString('hex')])
    ours[toBytes(e.rel).toString('hex')] = [e.mode, e.uid, e.gid, e.size, e.nlink, e.mtimeNs, e.ctimeNs, e.statKey, e.link !== undefined ? toBytes(e.link).toString('hex') : null, x ?? null]
  }
  t.deepEqual(ours, pythonWalk(ctx))
  // Children in name order (byte order for these names), each listed under its parent.
  t.deepEqual(c.children('d\xff'.replace('\xff', '\udcff')).map((e) => e.rel), ['d\udcff/link\udcfe', 'd\udcff/sub\udcfe'])
})

/** The walk as the full rule makes it: every kept path judged by `matches` (parent paths included). */
function referenceWalk(root: string, pm: PatternMatcher): string[] {
  const kept: string[] = []
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(rel === '' ? root : path.join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`
      const isDir = fs.lstatSync(path.join(root, r)).isDirectory()
      if (pm.matches(r) && !(isDir && pm.descendExcludedDir(r))) continue
      kept.push(r)
      if (isDir) walk(r)
    }
  }
  walk('')
  return kept.sort()
}

test('the walk keeps exactly what the full matching rule keeps, with and without exception patterns', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  for (const f of ['a/b/c.txt', 'a/b/d.md', 'a/x.txt', 'ab/a/b', 'b/a/c.txt', 'b/b/b', 'c.txt', 'd.md', '.x/a', 'x/.x/b', 'axtxt', '(a)/b', 'c/a/b']) {
    fs.mkdirSync(path.join(ctx, path.dirname(f)), { recursive: true })
    fs.writeFileSync(path.join(ctx, f), f)
  }
  const sets = [
    ['*.txt'], ['a'], ['a/b'], ['*/b'], ['**/b'], ['a/**'], ['**/*.md', 'b/*'], ['?'], ['[ab]/*/c.txt'], ['**/.x'], ['*/a'],
    ['a', '!a/b'], ['**', '!**/*.txt'], ['*/b', '!b/b/b'],
    // Each kind of pattern (exact, prefix `x/**`, suffix `**/x`, regexp), with characters special
    // in a regular expression, several at once, and none that is not blank.
    ['a/b/c.txt', 'x/.x/**', '**/d.md', 'b/?/c.txt'], ['a.x.txt', '**/a/b', '(a)/**', 'c.txt'], ['   '],
  ]
  for (const set of sets) {
    const c = await BuildContext.scan(ctx, set, path.join(dir, 'idx'))
    t.deepEqual([...c.entries.keys()].sort(), referenceWalk(ctx, new PatternMatcher(set)), JSON.stringify(set))
  }
})

test('the scan hands over the stat index\'s digests (names as their bytes too), for regular files only', async (t) => {
  const names = ['src/a.txt', 'src/sub/b.txt', 'notes.md', 'src/caf\udce9.txt']
  // One name that is not UTF-8.
  const { ctx, idx } = await settledContext(t, names, (ctx) => fs.writeFileSync(Buffer.concat([Buffer.from(`${ctx}/src/`), Buffer.from('caf\xe9.txt', 'latin1')]), 'latin-1 name\n'))
  const c1 = await BuildContext.scan(ctx, ['.git'], idx)
  t.true(files(c1).every((f) => c1.entries.get(f)?.sha256 === undefined && c1.entries.get(f)?.statKey !== undefined))
  await c1.hashAll()
  await c1.saveIndex()

  const c2 = await BuildContext.scan(ctx, ['.git'], idx)
  t.deepEqual(files(c2).sort(), [...names].sort())
  for (const f of names) {
    t.is(c2.entries.get(f)?.sha256, c1.entries.get(f)?.sha256, f)
    t.is(c2.entries.get(f)?.statKey, undefined, f)
  }
  t.is(c2.entries.get('src/caf\udce9.txt')?.sha256, sha('latin-1 name\n'))
  // Directories and symlinks keep their stat keys (the index holds regular files only).
  t.truthy(c2.entries.get('src')?.statKey)
  t.truthy(c2.entries.get('src/link')?.statKey)
  await c2.hashAll()
  t.is(c2.bytesRead, 0)
})

test('saving the index rewrites it only when a row is to be recorded or dropped (a deleted or newly ignored file)', async (t) => {
  const { ctx, idx } = await settledContext(t, ['src/a.txt', 'src/sub/b.txt', 'notes.md'])
  const build = async (ignore: string[]): Promise<void> => {
    const c = await BuildContext.scan(ctx, ignore, idx)
    await c.hashAll()
    await c.saveIndex()
  }
  const file = StatIndex.fileFor(idx, ctx)
  const rows = (): string[] => {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { entries: string[] }
    return v.entries.filter((_, i) => i % 3 === 0).sort()
  }
  await build(['.git'])
  t.deepEqual(rows(), ['notes.md', 'src/a.txt', 'src/sub/b.txt'])
  const ino = fs.statSync(file).ino
  await build(['.git'])
  t.is(fs.statSync(file).ino, ino, 'nothing changed: not written again')
  await build(['.git', '*.md'])
  t.deepEqual(rows(), ['src/a.txt', 'src/sub/b.txt'])
  fs.rmSync(path.join(ctx, 'src/sub/b.txt'))
  await build(['.git', '*.md'])
  t.deepEqual(rows(), ['src/a.txt'])
})

test('an index of version 2 (paths as strings only) is no index: its files are hashed again and it is written anew', async (t) => {
  const dir = tmpDir(t)
  const ctx = path.join(dir, 'ctx')
  const idx = path.join(dir, 'idx')
  fs.mkdirSync(ctx)
  fs.writeFileSync(path.join(ctx, 'f'), 'one')
  await clockPast(ctx)
  const st = fs.statSync(path.join(ctx, 'f'), { bigint: true })
  fs.mkdirSync(idx)
  // A digest that is not the file's: used, it would show.
  fs.writeFileSync(StatIndex.fileFor(idx, ctx), JSON.stringify({ v: 2, context: ctx, entries: ['f', statKeyOf(st).statKey, sha('two')] }))
  const c = await BuildContext.scan(ctx, [], idx)
  t.is(c.entries.get('f')?.sha256, undefined)
  t.is((await c.digests(['f'])).get('f'), sha('one'))
  await c.saveIndex()
  t.is((JSON.parse(fs.readFileSync(StatIndex.fileFor(idx, ctx), 'utf8')) as { v: number }).v, 3)
})

test.serial('a file changed since the last build is recorded without the index being read in JS; with a path gone too, that row is dropped as well', async (t) => {
  const { ctx, idx } = await settledContext(t, ['src/a.txt', 'src/sub/b.txt', 'notes.md', 'src/caf\udce9.txt'], (ctx) => fs.writeFileSync(Buffer.concat([Buffer.from(`${ctx}/src/`), Buffer.from('caf\xe9.txt', 'latin1')]), 'latin-1 name\n'))
  let loads = 0
  const load = StatIndex.load
  StatIndex.load = (dir: string, context: string): StatIndex => {
    loads++
    return load(dir, context)
  }
  t.teardown(() => { StatIndex.load = load })
  const build = async (): Promise<BuildContext> => {
    const c = await BuildContext.scan(ctx, ['.git'], idx)
    await c.hashAll()
    await c.saveIndex()
    return c
  }
  const rows = (): string[] => {
    const v = JSON.parse(fs.readFileSync(StatIndex.fileFor(idx, ctx), 'utf8')) as { entries: unknown[] }
    return v.entries.filter((_, i) => i % 3 === 0).map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).sort()
  }
  await build()
  t.is(loads, 0, 'a first index is written natively')
  t.deepEqual(rows(), ['notes.md', 'src/a.txt', 'src/sub/b.txt', `{"b":"${Buffer.from('src/caf\xe9.txt', 'latin1').toString('base64')}"}`])
  // One file changed (recordable once the clock has moved on).
  fs.appendFileSync(path.join(ctx, 'src/a.txt'), ' and more')
  await clockPast(ctx)
  const c2 = await build()
  t.is(c2.bytesRead, 'alpha and more'.length)
  t.is(loads, 0, 'recorded natively')
  const c3 = await build()
  t.is(c3.bytesRead, 0)
  t.is(c3.entries.get('src/a.txt')?.sha256, sha('alpha and more'))
  t.is(c3.entries.get('src/caf\udce9.txt')?.sha256, sha('latin-1 name\n'))
  // One changed and one deleted: the native update declines (a row it was not told of), JS drops it.
  fs.appendFileSync(path.join(ctx, 'src/a.txt'), '!')
  fs.rmSync(path.join(ctx, 'notes.md'))
  await clockPast(ctx)
  await build()
  t.is(loads, 1)
  t.is(rows().length, 3)
  t.false(rows().includes('notes.md'))
  const c5 = await build()
  t.is(c5.bytesRead, 0)
  t.is(c5.entries.get('src/a.txt')?.sha256, sha('alpha and more!'))
})

test('a COPY trusts the stat key of a file this build hashed, as the stat index would: not hashed again unless racily clean or changed since', async (t) => {
  const { dir, ctx, idx } = await settledContext(t, ['src/a.txt', 'src/sub/b.txt'])
  // Racily clean when hashed: its mtime is not older than the hashing's stamp (as a file written in the same clock tick).
  fs.writeFileSync(path.join(ctx, 'src/new.txt'), 'fresh')
  const later = new Date(Date.now() + 3_600_000)
  fs.utimesSync(path.join(ctx, 'src/new.txt'), later, later)
  const c = await BuildContext.scan(ctx, ['.git', '*.md'], idx)
  await c.hashAll()
  const a = c.entries.get('src/a.txt')!
  t.is(a.verifiedKey, a.statKey)
  t.truthy(a.verifiedKey)
  t.is(c.entries.get('src/new.txt')!.verifiedKey, undefined)
  // Digests the stat index gave (a rebuild) carry no key: the copy hashes those, as before.
  await c.saveIndex()
  const again = await BuildContext.scan(ctx, ['.git', '*.md'], idx)
  await again.hashAll()
  t.is(again.entries.get('src/a.txt')!.sha256, a.sha256)
  t.is(again.entries.get('src/a.txt')!.verifiedKey, undefined)

  const tree = c.tree()
  const rootfs = path.join(dir, 'rootfs')
  fs.mkdirSync(rootfs)
  const planned = await planSources(tree, ['src'], 1)
  const steps = copySteps({ planned, tree, dest: '/app/', rootfs, line: 1 })
  const fileSteps = steps.filter((s) => s.op === 'file')
  t.deepEqual(fileSteps.map((s) => [s.dst, 'verified' in s && s.verified !== undefined]).sort(), [['/app/a.txt', true], ['/app/new.txt', false], ['/app/sub/b.txt', true]])
  // b.txt rewritten with other bytes of the same size after it was hashed: its key no longer vouches, the hash catches it.
  fs.writeFileSync(path.join(ctx, 'src/sub/b.txt'), 'BETA')
  const copyIn = (s: typeof steps) => call(() => native.copyIn(ctx, rootfs, JSON.stringify(s), undefined, undefined))
  const ok = await copyIn(steps.filter((s) => !('src' in s) || s.src !== 'src/sub/b.txt'))
  t.is(ok.files, 2)
  t.is(ok.verified, 1, 'a.txt not hashed again; new.txt (racily clean) hashed')
  t.is(fs.readFileSync(path.join(rootfs, 'app/a.txt'), 'utf8'), 'alpha')
  t.is(fs.readFileSync(path.join(rootfs, 'app/new.txt'), 'utf8'), 'fresh')
  const err = await t.throwsAsync(copyIn(steps.filter((s) => 'src' in s && s.src === 'src/sub/b.txt')))
  t.is((err as { code?: string }).code, 'FileChangedDuringArchive')
})
