/**
 * A file tree ⇄ tar entries, with the semantics of moby's `pkg/archive` that `docker cp` runs on
 * both sides: `TarWithOptions` (walk in `filepath.Walk` order, include one name, rebase its first
 * path element, headers from `FileInfoHeader`: Go's type bits in the mode, whole-second mtimes,
 * hard links by inode, `security.capability` as the only xattr, sockets skipped) and `Unpack`
 * (`filepath.Clean`ed names, missing parents made 0755, breakout checks, replace what is in the
 * way unless `NoOverwriteDirNonDir`, owners by `Lchown` or a fixed identity, modes and times
 * last, directories' times once more at the end).
 *
 * Both work on a `UnionView`: a container's layers (no mount needed), a mounted container's
 * merged dir, or a host directory — paths are resolved inside the view's root either way, so an
 * archive can never write outside the tree it is unpacked into.
 */
import { StrataError } from '../errors'
import type { UnionView, ViewStats } from '../view'
import { TarEntry, TarEntryType } from './tarstream'
import { base, clean, dir, join, rel } from './gopath'

export interface TarWithOptions {
  /** Names under the source dir to archive (`.` for all of it). */
  includeFiles: string[]
  /** Whether the source dir itself gets an entry. */
  includeSourceDir: boolean
  /** An include's first path element is renamed to this (`/` means "nothing"). */
  rebaseNames: Record<string, string>
  /** Owner names for the headers (`Uname`/`Gname`); none when absent. */
  names?: OwnerNames
}

/** uid → user name and gid → group name, as an `/etc/passwd` and `/etc/group` say. */
export class OwnerNames {
  readonly #users = new Map<number, string>()
  readonly #groups = new Map<number, string>()

  constructor(passwd?: string, group?: string) {
    for (const [text, map] of [[passwd, this.#users], [group, this.#groups]] as const) {
      for (const line of (text ?? '').split('\n')) {
        const f = line.split(':')
        if (f.length < 3 || f[0].startsWith('#')) continue
        const id = Number(f[2])
        if (Number.isInteger(id) && !map.has(id)) map.set(id, f[0])
      }
    }
  }

  user(uid: number): string { return this.#users.get(uid) ?? '' }
  group(gid: number): string { return this.#groups.get(gid) ?? '' }
}

const S_IFMT = 0o170000

function typeOfMode(mode: number): TarEntryType | undefined {
  switch (mode & S_IFMT) {
    case 0o100000: return 'file'
    case 0o040000: return 'dir'
    case 0o120000: return 'symlink'
    case 0o020000: return 'char'
    case 0o060000: return 'block'
    case 0o010000: return 'fifo'
    default: return undefined // sockets: archive/tar cannot hold them
  }
}

/** Linux `major()`/`minor()` of a device number. */
function devParts(rdev: number): [number, number] {
  const r = BigInt(rdev)
  const major = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn))
  const minor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn))
  return [major, minor]
}

/** moby `ReadSecurityXattrToTarHeader`: only file capabilities, v3 turned into v2. */
async function securityXattrs(view: UnionView, p: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  const cap = (await view.xattrs(p).catch(() => new Map<string, Buffer>())).get('security.capability')
  if (cap) {
    let v = Buffer.from(cap)
    if (v.length > 3 && v[3] === 3) {
      v = Buffer.from(v.subarray(0, 20))
      v[3] = 2
    }
    out.set('security.capability', v)
  }
  return out
}

async function* walk(view: UnionView, root: string): AsyncGenerator<[string, ViewStats]> {
  let st: ViewStats
  try {
    st = await view.lstat(root)
  } catch {
    return // filepath.Walk hands the error to moby's callback, which logs and skips it
  }
  yield* walkFrom(view, root, st)
}

async function* walkFrom(view: UnionView, p: string, st: ViewStats): AsyncGenerator<[string, ViewStats]> {
  if (!st.isDirectory()) {
    yield [p, st]
    return
  }
  const names = await view.readdir(p).catch(() => undefined)
  yield [p, st]
  if (!names) return
  for (const name of [...names].sort(byteOrder)) {
    const child = join(p, name)
    const cst = await view.lstat(child).catch(() => undefined)
    if (cst) yield* walkFrom(view, child, cst)
  }
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/** moby `canonicalTarName`: a directory's name ends with `/`. */
function canonicalName(name: string, isDir: boolean): string {
  return isDir && !name.endsWith('/') ? `${name}/` : name
}

/** moby `TarWithOptions` over a view (no excludes, no id maps, no whiteout conversion). */
export async function* tarWithOptions(view: UnionView, srcPath: string, opts: TarWithOptions): AsyncGenerator<TarEntry> {
  let src = srcPath
  let includes = opts.includeFiles
  const top = await view.lstat(src).catch(() => undefined)
  if (!top) return
  if (!top.isDirectory()) {
    includes = [base(src)]
    src = dir(src)
  }
  if (includes.length === 0) includes = ['.']
  const seen = new Set<string>()
  const inodes = new Map<number, string>()
  for (const include of includes) {
    const rebaseName = opts.rebaseNames[include] ?? ''
    const walkRoot = `${src.replace(/\/$/, '')}/${include}`
    for await (const [filePath, st] of walk(view, walkRoot)) {
      let relPath = rel(src, filePath)
      if (relPath === undefined || (!opts.includeSourceDir && relPath === '.' && st.isDirectory())) continue
      if (opts.includeSourceDir && include === '.' && relPath !== '.') relPath = `./${relPath}`
      if (seen.has(relPath)) continue
      seen.add(relPath)
      if (rebaseName !== '') {
        const replacement = rebaseName === '/' ? '' : rebaseName
        relPath = relPath.replace(include, () => replacement)
      }
      const e = await entryOf(view, filePath, relPath, st, inodes, opts.names)
      if (e) yield e
    }
  }
}

/** moby `addTarFile` → one entry (undefined for what tar cannot hold). */
async function entryOf(view: UnionView, p: string, name: string, st: ViewStats, inodes: Map<number, string>, names?: OwnerNames): Promise<TarEntry | undefined> {
  const type = typeOfMode(st.mode)
  if (!type) return undefined
  const [devmajor, devminor] = type === 'char' || type === 'block' ? devParts(st.rdev) : [0, 0]
  const e: TarEntry = {
    name: canonicalName(name, type === 'dir'), type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid,
    uname: names?.user(st.uid) ?? '', gname: names?.group(st.gid) ?? '', size: type === 'file' ? st.size : 0,
    mtime: Number(st.mtimeNs / 1_000_000_000n) - (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n ? 1 : 0),
    linkname: type === 'symlink' ? await view.readlink(p) : '', devmajor, devminor, xattrs: await securityXattrs(view, p),
  }
  // Hard links by inode number alone, as moby's getInodeFromStat.
  if (type !== 'dir' && st.nlink > 1) {
    const first = inodes.get(st.ino)
    if (first !== undefined) return { ...e, type: 'link', linkname: first, size: 0 }
    inodes.set(st.ino, e.name)
  }
  if (type === 'file' && e.size > 0) e.body = () => view.createReadStream(p)
  return e
}

export interface UnpackOptions {
  /** Set owners (`Lchown`) — to `chown` when given, else to the entry's uid/gid. */
  lchown: boolean
  chown?: { uid: number; gid: number }
  /** Refuse to replace a directory by a non-directory or the reverse. */
  noOverwriteDirNonDir: boolean
  /**
   * Directories' access time at the end: the daemon of Docker 20.10 sets the epoch (its
   * Chtimes clamps the zero time), the CLI's go-archive the mtime.
   */
  dirAtime: 'epoch' | 'mtime'
}

function errno(e: unknown): string | undefined {
  return (e as StrataError).syscode ?? (e as StrataError).code
}

async function lstatOrUndefined(view: UnionView, p: string): Promise<ViewStats | undefined> {
  try {
    return await view.lstat(p)
  } catch (e) {
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return undefined
    throw e
  }
}

/** `mkdir -p` of `p` (mode 0755, owned by root): only the dirs it makes get an owner. */
async function mkdirAll(view: UnionView, p: string): Promise<void> {
  const parts = clean(p).split('/').filter(Boolean)
  let cur = ''
  for (const part of parts) {
    cur = `${cur}/${part}`
    const st = await lstatOrUndefined(view, cur)
    if (st) continue
    await view.mkdir(cur, { mode: 0o755 })
    await view.lchown(cur, 0, 0)
  }
}

/**
 * moby `Unpack` into `dest` (a directory of the view): entries in order; errors as moby words
 * them (paths are the view's).
 */
export async function unpack(view: UnionView, dest: string, entries: AsyncIterable<TarEntry>, opts: UnpackOptions): Promise<void> {
  const dirs: TarEntry[] = []
  for await (const hdr of entries) {
    const name = clean(hdr.name)
    const parentPath = join(dest, dir(name))
    if (!(await lstatOrUndefined(view, parentPath))) await mkdirAll(view, parentPath)
    const path = join(dest, name)
    const r = rel(dest, path)
    if (r === undefined || r.startsWith('../') || r === '..') {
      throw new StrataError('UnsafeLayerEntry', `${JSON.stringify(hdr.name)} is outside of ${JSON.stringify(dest)}`)
    }
    const fi = await lstatOrUndefined(view, path)
    if (fi) {
      if (opts.noOverwriteDirNonDir && fi.isDirectory() && hdr.type !== 'dir') {
        throw new StrataError('Conflict', `cannot overwrite directory ${JSON.stringify(path)} with non-directory ${JSON.stringify(dest)}`)
      }
      if (opts.noOverwriteDirNonDir && !fi.isDirectory() && hdr.type === 'dir') {
        throw new StrataError('Conflict', `cannot overwrite non-directory ${JSON.stringify(path)} with directory ${JSON.stringify(dest)}`)
      }
      if (fi.isDirectory() && name === '.') continue
      if (!(fi.isDirectory() && hdr.type === 'dir')) await view.rm(path, { recursive: true, force: true })
    }
    await createEntry(view, path, dest, hdr, opts)
    if (hdr.type === 'dir') dirs.push({ ...hdr, name: path })
  }
  for (const d of dirs) await view.utimes(d.name, opts.dirAtime === 'epoch' ? 0 : d.mtime, d.mtime)
}

/** moby `createTarFile`. */
async function createEntry(view: UnionView, path: string, dest: string, hdr: TarEntry, opts: UnpackOptions): Promise<void> {
  switch (hdr.type) {
    case 'dir': {
      const st = await lstatOrUndefined(view, path)
      if (!st?.isDirectory()) await view.mkdir(path, { mode: hdr.mode })
      break
    }
    case 'file': {
      let first = true
      if (hdr.body) {
        for await (const chunk of hdr.body()) {
          if (first) await view.writeFile(path, chunk, { mode: hdr.mode })
          else await view.appendFile(path, chunk)
          first = false
        }
      }
      if (first) await view.writeFile(path, Buffer.alloc(0), { mode: hdr.mode })
      break
    }
    case 'char': case 'block':
      await view.mknod(path, hdr.type === 'block', hdr.mode, hdr.devmajor, hdr.devminor)
      break
    case 'fifo':
      await view.mkfifo(path, hdr.mode)
      break
    case 'link': {
      const target = join(dest, hdr.linkname)
      if (!target.startsWith(dest)) throw new StrataError('UnsafeLayerEntry', `invalid hardlink ${JSON.stringify(target)} -> ${JSON.stringify(hdr.linkname)}`)
      await view.link(target, path)
      break
    }
    case 'symlink': {
      const target = join(dir(path), hdr.linkname)
      if (!target.startsWith(dest)) throw new StrataError('UnsafeLayerEntry', `invalid symlink ${JSON.stringify(path)} -> ${JSON.stringify(hdr.linkname)}`)
      await view.symlink(hdr.linkname, path)
      break
    }
  }
  if (opts.lchown) {
    const id = opts.chown ?? { uid: hdr.uid, gid: hdr.gid }
    await view.lchown(path, id.uid, id.gid)
  }
  for (const [k, v] of hdr.xattrs) {
    await view.setxattr(path, k, v).catch((e: StrataError) => {
      if (errno(e) !== 'ENOTSUP' && errno(e) !== 'EOPNOTSUPP' && errno(e) !== 'EPERM') throw e
    })
  }
  // A hard link shares its inode (mode, times) with the entry written before it; moby's Lstat of
  // the link name, relative to its working dir, almost never finds it and leaves it alone too.
  if (hdr.type === 'link') return
  if (hdr.type === 'symlink') {
    await view.lutimes(path, hdr.mtime, hdr.mtime)
    return
  }
  await view.chmod(path, hdr.mode)
  await view.utimes(path, hdr.mtime, hdr.mtime)
}
