/**
 * All-or-nothing changes to the store's small metadata files (repositories.json, an image's
 * `lastUpdated`/`parent`, ...). Every new content is first written and synced to a temp file
 * beside its target — the only steps that need disk space — and only then are the temp files
 * renamed into place. A full disk, or any other failure while writing, therefore leaves every
 * file as it was: the temp files (and directories made for them) are removed again.
 *
 * The writes wait for the commit (or an earlier `flush`), so a set's files are written in one
 * native task and synced together — one fsync barrier for all of them, however many were put
 * one after another (an image's config, repositories.json and `lastUpdated` were three barriers
 * in a row) — and the same task goes on with the renames.
 */
import fsSync = require('node:fs')
import path = require('node:path')
import { fsp as fs } from './lazy'
import { randomBytes } from './random'
import { fsBatch, type NativeFsOp } from './native'
import { call } from '../errors'

/** A temp file `put` writes beside its target: `.<target name>.<pid>.<8 hex digits>.tmp`. */
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/

/** A temp file's name for `target` (the cleanup pass removes those of dead processes: `sweepTemps`). */
export function tempFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
}

/**
 * Writes a hint file of the builder (a stat index, a COPY record, a COPY --from key, a parsed
 * Dockerfile): its dir made, `text` written to a temp file beside it (`tempFor`, so the cleanup
 * pass removes it after a crash) and renamed into place, on the calling thread, unsynced (a hint
 * lost to a power cut is made again). Never throws: a write that fails (a full disk) leaves no
 * file, and the hint is made again next time.
 */
export function writeHint(file: string, text: string): void {
  const tmp = tempFor(file)
  try {
    fsSync.mkdirSync(path.dirname(file), { recursive: true })
    fsSync.writeFileSync(tmp, text)
    fsSync.renameSync(tmp, file)
  } catch {
    try { fsSync.rmSync(tmp, { force: true }) } catch { /* the dir itself is unusable: nothing was written */ }
  }
}

export class MetaWrites {
  /** Staged files in the order they were put, each with the barrier group it was put in. */
  readonly #staged: { tmp: string; target: string; group: number }[] = []
  /** Temp files put but not written yet (`flush`, or the commit's task, writes them). */
  readonly #unwritten: { tmp: string; text: string }[] = []
  readonly #madeDirs: string[] = []
  #group = 0

  /**
   * Orders the commit: the files put so far are renamed into place and their dirs synced before
   * any file put after this is renamed (an image's config is on disk before a tag names it).
   */
  barrier(): void {
    if (this.#staged.some((s) => s.group === this.#group)) this.#group++
  }

  /**
   * Makes `dir` (and missing parents) if needed; removed again if the writes are discarded. On
   * the calling thread: a few microseconds in the store's own dirs, where a trip through the
   * libuv pool took a millisecond of a build's export.
   */
  async mkdir(dir: string): Promise<void> {
    const first = fsSync.mkdirSync(dir, { recursive: true, mode: 0o755 })
    if (first) {
      // fs.mkdir names the first dir it made: record it and the ones below it, deepest first.
      for (let d = dir; d.length >= first.length; d = path.dirname(d)) this.#madeDirs.push(d)
    }
  }

  /**
   * Stages `data` for `target`, to be written to a synced temp file beside it by `flush` or the
   * commit, with the set's other files (see the module comment). Bytes that are not UTF-8 (what
   * a native write takes) are written and synced now.
   */
  async put(target: string, data: string | Uint8Array): Promise<void> {
    const tmp = tempFor(target)
    this.#staged.push({ tmp, target, group: this.#group })
    const text = asText(data)
    if (text === undefined) await writeFileSynced(tmp, data, 'wx')
    else this.#unwritten.push({ tmp, text })
  }

  /**
   * Writes and syncs the files put so far, now, in one native task (one fsync barrier): for a
   * caller that overlaps them with other work before the commit, or writes them before it takes
   * the lock that the renames need.
   */
  async flush(): Promise<void> {
    const ops = this.#writes()
    if (ops.length > 0) await call(() => fsBatch(ops))
  }

  /**
   * Writes and syncs the files not written yet (one barrier), then renames every staged file
   * into place, in the order they were put, then syncs their dirs (concurrently: one barrier),
   * all in one native task.
   */
  async commit(): Promise<void> {
    const writes = this.#writes()
    const { ops, dirs } = this.#renames()
    await call(() => fsBatch([...writes, ...ops, ...dirs.map((d): NativeFsOp => ({ op: 'fsync', path: d }))]))
    this.#published()
  }

  /**
   * Writes and syncs the files not written yet, renames every staged file into place, in the
   * order they were put, and returns the dirs to sync: for a caller that holds the store lock
   * for the renames only (it flushes first) and syncs after it.
   */
  async publish(): Promise<string[]> {
    const writes = this.#writes()
    const { ops, dirs } = this.#renames()
    await call(() => fsBatch([...writes, ...ops]))
    this.#published()
    return dirs
  }

  /** The writes of the files not written yet, then their fsyncs (one barrier); none are left. */
  #writes(): NativeFsOp[] {
    const files = this.#unwritten.splice(0)
    return [
      ...files.map(({ tmp, text }): NativeFsOp => ({ op: 'writeNew', path: tmp, data: text })),
      ...files.map(({ tmp }): NativeFsOp => ({ op: 'fsync', path: tmp })),
    ]
  }

  /**
   * The renames of the staged files, each barrier group's followed by the fsyncs of its dirs
   * (but the last group's, returned to sync). Until they are done the set still discards its
   * temp files (one already renamed is gone: removing it is a no-op) and the dirs it made (only
   * if empty).
   */
  #renames(): { ops: NativeFsOp[]; dirs: string[] } {
    const ops: NativeFsOp[] = []
    let dirs: string[] = []
    for (let i = 0; i < this.#staged.length; i++) {
      const { tmp, target, group } = this.#staged[i]
      ops.push({ op: 'rename', path: tmp, target })
      if (!dirs.includes(path.dirname(target))) dirs.push(path.dirname(target))
      const next = this.#staged[i + 1]
      if (next && next.group !== group) {
        for (const d of dirs) ops.push({ op: 'fsync', path: d })
        dirs = []
      }
    }
    return { ops, dirs }
  }

  /** After the renames: nothing is left to discard. */
  #published(): void {
    this.#staged.length = 0
    this.#madeDirs.length = 0
    this.#group = 0
  }

  /** Removes what `put` and `mkdir` made. */
  async discard(): Promise<void> {
    this.#unwritten.length = 0
    for (const { tmp } of this.#staged) await fs.rm(tmp, { force: true })
    for (const d of this.#madeDirs) await fs.rmdir(d).catch(() => undefined)
    this.#staged.length = 0
    this.#madeDirs.length = 0
  }
}

/** Runs `fn` to stage writes, then commits them all, or discards them all if anything failed. */
export async function writeAll(fn: (w: MetaWrites) => Promise<void>): Promise<void> {
  const w = new MetaWrites()
  try {
    await fn(w)
    await w.commit()
  } catch (e) {
    await w.discard()
    throw e
  }
}

/**
 * `data` as a string that encodes back to the same bytes (what a native write takes), or
 * undefined for bytes that are not UTF-8 (an image config is kept byte for byte as received).
 */
function asText(data: string | Uint8Array): string | undefined {
  if (typeof data === 'string') return data
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')
  return Buffer.byteLength(text) === data.byteLength && Buffer.from(text).equals(data) ? text : undefined
}

/** Writes `data` to `p` (opened with `flags`) and fsyncs it. */
export async function writeFileSynced(p: string, data: string | Uint8Array, flags = 'w'): Promise<void> {
  const fh = await fs.open(p, flags, 0o644)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsSync.constants.O_RDONLY | fsSync.constants.O_DIRECTORY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Whether process `pid` exists (a pid we may not signal exists too). */
export function alive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes the temp files that write sets of dead processes left beside their targets (a crash
 * between `put` and `commit`), in `dirs` and below them, not descending into `skip`. A live
 * process's temp files stay: it may be between its puts and its commit. Returns how many went.
 */
export async function sweepTemps(dirs: string[], skip: string[] = []): Promise<number> {
  let removed = 0
  const visit = async (dir: string): Promise<void> => {
    if (skip.includes(dir)) return
    let entries: fsSync.Dirent[]
    try {
      entries = await fs.readdir(dir, { withFileTypes: true })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return
      throw e
    }
    for (const ent of entries) {
      const p = path.join(dir, ent.name)
      if (ent.isDirectory()) {
        await visit(p)
        continue
      }
      const m = TEMP_NAME.exec(ent.name)
      if (m && ent.isFile() && !alive(Number(m[1]))) {
        await fs.rm(p, { force: true })
        removed++
      }
    }
  }
  for (const d of dirs) await visit(d)
  return removed
}
