/**
 * A userspace union view: overlayfs semantics over a stack of layer `diff/` dirs and an
 * optional writable upper dir, without mounting anything (no CAP_SYS_ADMIN, no mount
 * namespace). Reads come straight from the layer holding a file; writes copy up into the
 * upper dir exactly as kernel overlayfs (`redirect_dir=off,index=off,metacopy=off`) would,
 * so a later kernel mount of the same dirs sees the changes, and the reverse.
 *
 * The API follows `fs/promises`: paths are view paths (`/etc/passwd`, `etc/passwd`), resolved
 * inside the view like a chroot. Failures throw `StrataError` whose `code` and `syscode` are
 * the errno name Node users expect (`ENOENT`, `EEXIST`, `ENOTDIR`, `EISDIR`, `ENOTEMPTY`,
 * `EXDEV`, `EROFS` for writes to a read-only view).
 *
 * Like the kernel, a view caches lookups and assumes it is the only writer of the upper dir
 * while in use; call `invalidate()` after changing the layers some other way (e.g. through a
 * kernel mount).
 *
 * A view of a store image pins the image's layers while it is open (a lease, ./leases.ts): an
 * `rmi` meanwhile removes the image but not the files the view reads. `close()` gives them back
 * (a view that is garbage-collected unclosed gives them back then); after `close()` every call
 * fails with `EBADF`.
 */
import fs = require('node:fs')
import type { Readable } from 'node:stream'
import { native } from './native'
import { StrataError, toStrataError, type ErrnoName } from './errors'
import { expose, sync } from './boundary'
import * as v from './validate'
import type { NativeUnionView, NativeUnionStat } from '../native/binding'

/**
 * Runs a view operation; its failures are named after their errno, as `fs/promises` names them
 * (`code` = `syscode` = `ENOENT`, ...).
 */
async function call<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    const e = toStrataError(err)
    if (e.code !== 'Io' || !e.syscode) throw e
    throw new StrataError(e.syscode as ErrnoName, e.message, { errno: e.errno, syscode: e.syscode, path: e.path })
  }
}

export interface UnionViewOptions {
  /** Layer directories (overlay format), top first. */
  lowers: string[]
  /** Writable layer; without it the view is read-only. */
  upper?: string
  /** The container's overlay workdir, recorded for a later kernel mount. */
  work?: string
}

const S_IFMT = 0o170000

/** `fs.Stats`-like metadata of a view object. */
export class ViewStats {
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly size: number
  readonly nlink: number
  readonly ino: number
  readonly dev: number
  readonly rdev: number
  readonly blksize: number
  readonly blocks: number
  readonly atimeMs: number
  readonly mtimeMs: number
  readonly ctimeMs: number
  readonly atimeNs: bigint
  readonly mtimeNs: bigint
  readonly ctimeNs: bigint
  /** Index of the layer the object comes from: 0 is the top (the upper of a writable view). */
  readonly layer: number

  /** @internal */
  constructor(s: NativeUnionStat) {
    this.mode = s.mode
    this.uid = s.uid
    this.gid = s.gid
    this.size = s.size
    this.nlink = s.nlink
    this.ino = s.ino
    this.dev = s.dev
    this.rdev = s.rdev
    this.blksize = s.blksize
    this.blocks = s.blocks
    this.atimeMs = s.atimeMs
    this.mtimeMs = s.mtimeMs
    this.ctimeMs = s.ctimeMs
    this.atimeNs = s.atimeNs
    this.mtimeNs = s.mtimeNs
    this.ctimeNs = s.ctimeNs
    this.layer = s.layer
  }
  get atime(): Date {
    return new Date(this.atimeMs)
  }
  get mtime(): Date {
    return new Date(this.mtimeMs)
  }
  get ctime(): Date {
    return new Date(this.ctimeMs)
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === 0o010000
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === 0o140000
  }
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === 0o020000
  }
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === 0o060000
  }
}

export type ViewFileKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char' | 'block' | 'unknown'

/** `fs.Dirent`-like merged directory entry. */
export class ViewDirent {
  constructor(
    readonly name: string,
    readonly kind: ViewFileKind,
  ) {}
  isFile(): boolean {
    return this.kind === 'file'
  }
  isDirectory(): boolean {
    return this.kind === 'dir'
  }
  isSymbolicLink(): boolean {
    return this.kind === 'symlink'
  }
  isFIFO(): boolean {
    return this.kind === 'fifo'
  }
  isSocket(): boolean {
    return this.kind === 'socket'
  }
  isCharacterDevice(): boolean {
    return this.kind === 'char'
  }
  isBlockDevice(): boolean {
    return this.kind === 'block'
  }
}

type TimeLike = number | string | Date

/** Node's `utimes` convention: numbers are seconds, numeric strings too, or a Date. */
function toMs(t: TimeLike): number {
  if (t instanceof Date) return t.getTime()
  return Number(t) * 1000
}

function toBuffer(data: string | Uint8Array, encoding: BufferEncoding = 'utf8'): Buffer {
  if (typeof data === 'string') return Buffer.from(data, encoding)
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

export interface ViewReadStreamOptions {
  start?: number
  end?: number
  highWaterMark?: number
}

/** What runs when a view is closed (what the store pinned for it), by view. */
const closers = new WeakMap<UnionView, (() => void)[]>()

/** @internal runs `fn` when `view` is closed (releases what the store pinned for it). */
export function onViewClose(view: UnionView, fn: () => void): void {
  const list = closers.get(view) ?? []
  list.push(fn)
  closers.set(view, list)
}

/** A union view of an image (read-only) or a container (read-write). */
export class UnionView {
  #handle: NativeUnionView | undefined
  readonly lowers: readonly string[]
  readonly upper?: string
  readonly work?: string

  private constructor(n: NativeUnionView, opts: UnionViewOptions) {
    this.#handle = n
    this.lowers = Object.freeze([...opts.lowers])
    if (opts.upper !== undefined) this.upper = opts.upper
    if (opts.work !== undefined) this.work = opts.work
  }

  /** Opens a view over `lowers` (top first) and, for a writable view, `upper`. */
  static async open(opts: UnionViewOptions): Promise<UnionView> {
    const n = await call(() => native.NativeUnionView.open(opts.lowers, opts.upper, opts.work))
    return new UnionView(n, opts)
  }

  get #native(): NativeUnionView {
    if (!this.#handle) throw new StrataError('EBADF', 'the view is closed', { syscode: 'EBADF' })
    return this.#handle
  }

  /** Gives back what the view holds (pinned layers); later calls fail with `EBADF`. Idempotent. */
  close(): void {
    if (!this.#handle) return
    this.#handle = undefined
    for (const fn of closers.get(this)?.splice(0) ?? []) fn()
  }

  /** True when the view has an upper dir. */
  get writable(): boolean {
    return this.#native.writable
  }

  /** Forgets cached lookups (after the layers were changed outside this view). */
  invalidate(): void {
    this.#native.invalidate()
  }

  async stat(path: string): Promise<ViewStats> {
    return new ViewStats(await call(() => this.#native.stat(path, true)))
  }

  async lstat(path: string): Promise<ViewStats> {
    return new ViewStats(await call(() => this.#native.stat(path, false)))
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.lstat(path)
      return true
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return false
      throw e
    }
  }

  /** Merged listing, sorted by name; whited-out names are hidden. */
  readdir(path: string): Promise<string[]>
  readdir(path: string, options: { withFileTypes: true }): Promise<ViewDirent[]>
  readdir(path: string, options?: { withFileTypes?: false }): Promise<string[]>
  async readdir(path: string, options?: { withFileTypes?: boolean }): Promise<string[] | ViewDirent[]> {
    const ents = await call(() => this.#native.readdir(path))
    if (options?.withFileTypes) return ents.map((e) => new ViewDirent(e.name, e.kind as ViewFileKind))
    return ents.map((e) => e.name)
  }

  readFile(path: string): Promise<Buffer>
  readFile(path: string, encoding: BufferEncoding | { encoding: BufferEncoding }): Promise<string>
  async readFile(path: string, encoding?: BufferEncoding | { encoding: BufferEncoding }): Promise<Buffer | string> {
    const buf = await call(() => this.#native.readFile(path))
    const enc = typeof encoding === 'string' ? encoding : encoding?.encoding
    return enc ? buf.toString(enc) : buf
  }

  async readlink(path: string): Promise<string> {
    return call(() => this.#native.readlink(path))
  }

  /**
   * A `fs.ReadStream` reading straight from the layer that holds the file. The file is opened
   * by the view (off the JS thread); errors surface as `'error'` events carrying a StrataError.
   */
  createReadStream(path: string, options: ViewReadStreamOptions = {}): Readable {
    const n = this.#native
    const opener = {
      open(_p: fs.PathLike, _flags: unknown, _mode: unknown, cb: (err: Error | null, fd?: number) => void): void {
        call(() => n.openRead(path)).then(
          (fd) => cb(null, fd),
          (err: Error) => cb(err),
        )
      },
      read: fs.read,
      close: fs.close,
    }
    return fs.createReadStream(path, { ...options, fs: opener } as Parameters<typeof fs.createReadStream>[1])
  }

  async writeFile(path: string, data: string | Uint8Array, options: { mode?: number; encoding?: BufferEncoding } = {}): Promise<void> {
    const buf = toBuffer(data, options.encoding)
    await call(() => this.#native.writeFile(path, buf, false, options.mode ?? 0o666))
  }

  async appendFile(path: string, data: string | Uint8Array, options: { mode?: number; encoding?: BufferEncoding } = {}): Promise<void> {
    const buf = toBuffer(data, options.encoding)
    await call(() => this.#native.writeFile(path, buf, true, options.mode ?? 0o666))
  }

  async truncate(path: string, len = 0): Promise<void> {
    await call(() => this.#native.truncate(path, len))
  }

  async mkdir(path: string, options: { recursive?: boolean; mode?: number } = {}): Promise<void> {
    await call(() => this.#native.mkdir(path, options.mode ?? 0o777, options.recursive ?? false))
  }

  /** `rm`: `recursive` removes directories, `force` ignores a missing path. */
  async rm(path: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    await call(() => this.#native.rm(path, options.recursive ?? false, options.force ?? false))
  }

  async unlink(path: string): Promise<void> {
    await call(() => this.#native.unlink(path))
  }

  async rmdir(path: string): Promise<void> {
    await call(() => this.#native.rmdir(path))
  }

  /** Directories with parts in a lower layer fail with EXDEV, as overlayfs without redirect_dir. */
  async rename(from: string, to: string): Promise<void> {
    await call(() => this.#native.rename(from, to))
  }

  async chmod(path: string, mode: number): Promise<void> {
    await call(() => this.#native.chmod(path, mode))
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    await call(() => this.#native.chown(path, uid, gid, true))
  }

  async lchown(path: string, uid: number, gid: number): Promise<void> {
    await call(() => this.#native.chown(path, uid, gid, false))
  }

  async utimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
    await call(() => this.#native.utimes(path, toMs(atime), toMs(mtime), true))
  }

  async lutimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
    await call(() => this.#native.utimes(path, toMs(atime), toMs(mtime), false))
  }

  async symlink(target: string, path: string): Promise<void> {
    await call(() => this.#native.symlink(target, path))
  }

  async link(existing: string, path: string): Promise<void> {
    await call(() => this.#native.link(existing, path))
  }

  async mkfifo(path: string, mode = 0o666): Promise<void> {
    await call(() => this.#native.mkfifo(path, mode))
  }

  /** A character device (or a block device with `block`) `major:minor`. */
  async mknod(path: string, block: boolean, mode: number, major: number, minor: number): Promise<void> {
    await call(() => this.#native.mknod(path, block, mode, major, minor))
  }

  async setxattr(path: string, name: string, value: string | Uint8Array): Promise<void> {
    await call(() => this.#native.setxattr(path, name, toBuffer(value)))
  }

  /** xattrs of the object (not following a final symlink). */
  async xattrs(path: string): Promise<Map<string, Buffer>> {
    const xs = await call(() => this.#native.xattrs(path))
    return new Map(xs.map((x) => [x.name, x.value]))
  }
}

const path = v.string
const mode = v.optional(v.count)
const encoding = v.encoding
/** A uid or gid; -1 leaves it unchanged, as chown(2). */
const id = v.check((x) => Number.isSafeInteger(x) && (x as number) >= -1, 'an integer >= -1')
const time = v.either(v.nonNegative, v.string, v.date)
const writeOptions = v.optional(v.options({ mode, encoding: v.optional(encoding) }))

expose(UnionView, {
  invalidate: sync([]),
  close: sync([]),
  stat: [['path', path]],
  lstat: [['path', path]],
  exists: [['path', path]],
  readdir: [['path', path], ['options', v.optional(v.options({ withFileTypes: v.optional(v.boolean) }))]],
  readFile: [['path', path], ['encoding', v.optional(v.either(encoding, v.options({ encoding })))]],
  readlink: [['path', path]],
  createReadStream: sync([['path', path], ['options', v.optional(v.options({ start: v.optional(v.count), end: v.optional(v.count), highWaterMark: v.optional(v.count) }))]]),
  writeFile: [['path', path], ['data', v.bytes], ['options', writeOptions]],
  appendFile: [['path', path], ['data', v.bytes], ['options', writeOptions]],
  truncate: [['path', path], ['len', v.optional(v.count)]],
  mkdir: [['path', path], ['options', v.optional(v.options({ recursive: v.optional(v.boolean), mode }))]],
  rm: [['path', path], ['options', v.optional(v.options({ recursive: v.optional(v.boolean), force: v.optional(v.boolean) }))]],
  unlink: [['path', path]],
  rmdir: [['path', path]],
  rename: [['from', path], ['to', path]],
  chmod: [['path', path], ['mode', v.count]],
  chown: [['path', path], ['uid', id], ['gid', id]],
  lchown: [['path', path], ['uid', id], ['gid', id]],
  utimes: [['path', path], ['atime', time], ['mtime', time]],
  lutimes: [['path', path], ['atime', time], ['mtime', time]],
  symlink: [['target', v.string], ['path', path]],
  link: [['existing', path], ['path', path]],
  mkfifo: [['path', path], ['mode', mode]],
  mknod: [['path', path], ['block', v.boolean], ['mode', v.count], ['major', v.count], ['minor', v.count]],
  setxattr: [['path', path], ['name', v.nonEmptyString], ['value', v.bytes]],
  xattrs: [['path', path]],
}, {
  open: [['opts', v.options({ lowers: v.arrayOf(v.nonEmptyString), upper: v.optional(v.nonEmptyString), work: v.optional(v.nonEmptyString) })]],
})
