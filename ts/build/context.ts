/**
 * The build context: the files of the context directory a build may see (after
 * `.dockerignore`), their `lstat` data, and the sha256 of their contents through the stat
 * index (./statindex.ts), which COPY/ADD cache keys are made of.
 *
 * Names are bytes; one that is not UTF-8 is a surrogate-escaped string here (../internal/bytepath.ts),
 * and goes back to the native side as the same bytes. Each entry's xattrs come with it: a
 * COPY carries them over, as BuildKit does, and the cache key includes them.
 *
 * The walk is breadth-first, one native call per level of the tree (`scanDirs`): each level's
 * entries are judged by the ignore rules (./dockerignore.ts) before the next level is listed,
 * so an ignored tree (`.git`, `node_modules`) is never read. The native side sends each level
 * as JSON objects already shaped as entries (path, stat fields), so `JSON.parse` makes the
 * entries and the JS side only judges and files them. It also looks each file up in the stat
 * index file: a file whose stat key is the recorded one comes with its recorded `sha256`, so a
 * rebuild where nothing changed neither loads the index here nor looks anything up; the files
 * hashed are recorded natively too (`saveIndex`), and the index is read here only when a path
 * is to be dropped.
 */
import * as path from 'node:path'
import { native } from '../internal/native'
import { call, StrataError } from '../errors'
import { PatternMatcher, verdict } from './dockerignore'
import { StatIndex, StatKey, recordable } from './statindex'
import { tempFor } from '../internal/metawrites'
import type { SourceTree } from './copy'
import { WirePath, fromWire, toBytes } from '../internal/bytepath'

export const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000

export interface ContextEntry extends Omit<StatKey, 'statKey'> {
  /**
   * `dev:ino:size:mtimeNs:ctimeNs:mode` as the scan saw the entry (./statindex.ts); absent
   * when the scan found the file in the stat index under this key and gave `sha256` instead.
   */
  statKey?: string
  /** A regular file's content digest, once known (from the stat index, or hashed). */
  sha256?: string
  /** `statKey`, once this build hashed the file and it was not racily clean then (../build/copy.ts SourceEntry). */
  verifiedKey?: string
  /** Path relative to the context root, `/`-separated. */
  rel: string
  /** Full `st_mode` (type and permission bits). */
  mode: number
  uid: number
  gid: number
  size: number
  dev: number
  ino: number
  nlink: number
  /** A symlink's target. */
  link?: string
  /** Extended attributes as `[name, base64 value]`, sorted (absent: none). */
  xattrs?: [string, string][]
}

export function isDir(e: { mode: number }): boolean {
  return (e.mode & S_IFMT) === S_IFDIR
}
export function isFile(e: { mode: number }): boolean {
  return (e.mode & S_IFMT) === S_IFREG
}
export function isSymlink(e: { mode: number }): boolean {
  return (e.mode & S_IFMT) === S_IFLNK
}

/** An entry as `native.scanDirs` sends it (crates/strata-napi/src/build.rs): paths in wire form. */
export interface ScannedEntry extends Omit<ContextEntry, 'rel' | 'link' | 'xattrs'> {
  rel: WirePath
  link?: WirePath
  xattrs?: [WirePath, string][]
}

/**
 * Lists the directories `dirs` of the tree at `root` (one level each): for each, its entries
 * in name order (byte-wise), with names that are not UTF-8 decoded (../internal/bytepath.ts).
 * With `index` (the stat index file of the context `root`), files it records unchanged come
 * with their `sha256`.
 */
export async function scanDirs(root: string, dirs: readonly string[], index?: string): Promise<ContextEntry[][]> {
  const levels = JSON.parse(await call(() => native.scanDirs(root, dirs.map(toBytes), index))) as ScannedEntry[][]
  for (const level of levels) {
    for (const e of level) {
      // Almost every name is a string already; the rest come as bytes.
      if (typeof e.rel !== 'string') e.rel = fromWire(e.rel)
      if (e.link !== undefined && typeof e.link !== 'string') e.link = fromWire(e.link)
      if (e.xattrs) e.xattrs = e.xattrs.map(([k, v]) => [fromWire(k), v])
    }
  }
  return levels as ContextEntry[][]
}

export interface ContextLimits {
  /** Most entries a context may have (default 1,000,000). */
  maxEntries?: number
  /** Most bytes of regular files (default 64 GiB). */
  maxBytes?: number
}

export class ContextTooLarge extends Error {}

export class BuildContext {
  /** Kept entries by relative path, parents before children. */
  readonly entries = new Map<string, ContextEntry>()
  /** Entries by parent directory (`''` = the root), in name order. */
  readonly #children = new Map<string, ContextEntry[]>()
  /** Bytes of file content read to compute digests (0 on a rebuild where nothing changed). */
  bytesRead = 0
  /** Kept files the scan gave a digest from the stat index for. */
  #indexHits = 0
  /** Files hashed in this build, with the stamp their hashing began at, for the stat index. */
  readonly #hashed: { e: ContextEntry; stamp: bigint }[] = []

  private constructor(readonly dir: string, readonly ignore: PatternMatcher | undefined, private readonly indexDir: string) {}

  /** Walks `dir` with the ignore patterns; the stat index lives under `indexDir`. Stops (`Aborted`) between levels once `cancel` is set. */
  static async scan(dir: string, patterns: readonly string[], indexDir: string, limits: ContextLimits = {}, cancel?: InstanceType<typeof native.NativeCancel>): Promise<BuildContext> {
    const pm = patterns.length > 0 ? new PatternMatcher(patterns) : undefined
    const ctx = new BuildContext(dir, pm, indexDir)
    const indexFile = StatIndex.fileFor(indexDir, dir)
    const maxEntries = limits.maxEntries ?? 1_000_000
    const maxBytes = limits.maxBytes ?? 64 * 2 ** 30
    let bytes = 0
    let level = ['']
    while (level.length > 0) {
      if (cancel?.cancelled) throw new StrataError('Aborted', 'build aborted')
      const listed = await scanDirs(dir, level, indexFile)
      const next: string[] = []
      for (let i = 0; i < listed.length; i++) {
        const kept: ContextEntry[] = []
        for (const e of listed[i]) {
          const isDirectory = isDir(e)
          if (verdict(pm, e.rel, isDirectory) !== 'keep') continue
          ctx.entries.set(e.rel, e)
          kept.push(e)
          if (isDirectory) next.push(e.rel)
          else if (isFile(e)) {
            bytes += e.size
            if (e.sha256 !== undefined) ctx.#indexHits++
          }
          if (ctx.entries.size > maxEntries || bytes > maxBytes) {
            throw new ContextTooLarge(`build context ${dir} is too large: more than ${ctx.entries.size > maxEntries ? `${maxEntries} entries` : `${maxBytes} bytes`}`)
          }
        }
        if (kept.length > 0) ctx.#children.set(level[i], kept)
      }
      level = next
    }
    return ctx
  }

  /** Total bytes of regular files in the context (what "transferring context" reports). */
  get size(): number {
    let n = 0
    for (const e of this.entries.values()) if (isFile(e)) n += e.size
    return n
  }

  /**
   * Hashes the regular files of `todo` that have no digest yet (natively, on a few threads),
   * to be recorded in the stat index (`saveIndex`), and sets each one's `sha256`.
   */
  async #hash(todo: ContextEntry[], cancel?: InstanceType<typeof native.NativeCancel>): Promise<void> {
    if (todo.length === 0) return
    const stamp = StatIndex.stamp(this.indexDir)
    const res = await call(() => native.hashFiles(this.dir, todo.map((e) => toBytes(e.rel)), cancel))
    this.bytesRead += res.bytesRead
    todo.forEach((e, i) => {
      e.sha256 = res.digests[i]
      this.#hashed.push({ e, stamp })
      // What the stat index will trust from the next build on, a copy in this one trusts too.
      if (recordable(e as StatKey, stamp)) e.verifiedKey = e.statKey
    })
  }

  /** Gives every regular file of the context its `sha256` (hashing those the stat index does not know). */
  async hashAll(cancel?: InstanceType<typeof native.NativeCancel>): Promise<void> {
    const todo: ContextEntry[] = []
    for (const e of this.entries.values()) if (e.sha256 === undefined && isFile(e)) todo.push(e)
    await this.#hash(todo, cancel)
  }

  /**
   * The sha256 of each of `rels` (regular files of the context): from the stat index where
   * it may be trusted, else read and hashed (natively, on a few threads).
   */
  async digests(rels: readonly string[], cancel?: InstanceType<typeof native.NativeCancel>): Promise<Map<string, string>> {
    const todo: ContextEntry[] = []
    for (const rel of rels) {
      const e = this.entries.get(rel)
      if (!e || !isFile(e)) throw new Error(`${rel} is not a regular file of the build context`)
      if (e.sha256 === undefined) todo.push(e)
    }
    await this.#hash(todo, cancel)
    return new Map(rels.map((rel) => [rel, this.entries.get(rel)!.sha256!]))
  }

  /**
   * Saves the stat index: the files hashed recorded (or dropped: racily clean), paths no longer
   * present dropped. Natively on a pool thread where it can (below).
   */
  async saveIndex(): Promise<void> {
    const file = StatIndex.fileFor(this.indexDir, this.dir)
    const rels: Buffer[] = []
    const keys: string[] = []
    const shas: string[] = []
    let recorded = 0
    for (const { e, stamp } of this.#hashed) {
      // A file without a digest from the scan came with its stat key.
      const ok = recordable(e as StatKey, stamp)
      rels.push(toBytes(e.rel))
      keys.push(ok ? e.statKey! : '')
      shas.push(ok ? e.sha256! : '')
      if (ok) recorded++
    }
    // Natively, from the rows the scan parsed, when every row left is a kept file's (the scan's
    // hits and the rows recorded now); else rows of paths gone or ignored since are dropped here.
    if ((await call(() => native.statIndexUpdate(this.dir, file, tempFor(file), rels, keys, shas, this.#indexHits + recorded))) !== 'declined') return
    const index = StatIndex.load(this.indexDir, this.dir)
    for (const { e, stamp } of this.#hashed) index.put(e.rel, e as StatKey, e.sha256!, stamp)
    index.retain((rel) => this.entries.has(rel))
    index.save()
  }

  /** Children of a directory entry (`''` = the root), in order. */
  children(dir: string): ContextEntry[] {
    return this.#children.get(dir) ?? []
  }

  /** The context as a source tree of COPY/ADD (./copy.ts). */
  tree(): SourceTree {
    const rootEntry = { rel: '', mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 0, dev: 0, ino: 0, nlink: 2, mtimeNs: '0' }
    return {
      root: this.dir, isContext: true,
      get: async (rel) => (rel === '' ? rootEntry : this.entries.get(rel)),
      children: async (rel) => this.children(rel),
    }
  }

  /** Absolute host path of an entry (for reading; never for resolving user paths). */
  hostPath(rel: string): string {
    return path.join(this.dir, rel)
  }
}
