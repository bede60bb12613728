/**
 * The stat index: what a build context's files hashed to, keyed by what `lstat` says of them,
 * so a rebuild reads no file whose inode is unchanged.
 *
 * On disk: `<root>/builder/statindex/<sha256 of the context's real path>.json`, replaced
 * atomically (a torn or unreadable file, or one of another version, is an empty index):
 *
 * ```
 * {"v":3,"context":"/abs/path","entries":[<rel path>,"<stat key>","sha256:…",…]}
 * ```
 *
 * flat, three values an entry (one array to parse, no object per entry); the path is a string,
 * or `{"b": base64}` of its bytes when they are not UTF-8 (../internal/bytepath.ts `toWire`:
 * the native side reads the file too). The stat key is the scan's `statKey`
 * (crates/strata-napi/src/build.rs `scanDirs`): `dev:ino:size:mtimeNs:ctimeNs:mode`.
 *
 * The context scan looks every file up in this file natively
 * (crates/strata-core/src/build_statindex.rs) and hands over the recorded digest with the
 * entry when the file's stat key now is the recorded one. The rows a build hashed are written
 * natively too (`native.statIndexUpdate`, from the rows parsed for the scan); this class only
 * reads and writes the file when rows of paths no longer in the context are to be dropped
 * (./context.ts).
 *
 * An entry is used only if the file's stat key now is the recorded one, and it is recorded
 * only if the file's mtime and ctime were both older than the stamp taken when its hashing
 * began — git's "racily clean" rule: `stamp` is the file system's clock then (read off a file
 * written just then, so it is the clock file times come from); a file changed in the same clock
 * tick as it was hashed can keep its size, mtime and ctime, so such a file is not recorded and
 * is hashed again next time (and, once the clock has moved on, recorded). Any later write
 * changes ctime to at least the stamp, so a recorded entry can never describe an older
 * content. (Whether a recorded entry may be trusted depends only on its own stat key and
 * stamp, so it is decided once, when it is recorded; version 1 kept the stamp and decided on
 * every lookup; version 2 wrote paths as strings only.)
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { sha256Hex } from '../internal/sha256'
import { tempFor } from '../internal/metawrites'
import { WirePath, fromWire, toWire } from '../internal/bytepath'

/** What an entry is keyed on: the scan's stat key, and the two times in it. */
export interface StatKey {
  /** `dev:ino:size:mtimeNs:ctimeNs:mode` as the scan saw the file. */
  statKey: string
  mtimeNs: string
  ctimeNs: string
}

/**
 * `a >= b` for nanosecond times written as decimal strings. Non-negative ones (no leading
 * zeros) compare by length, then as text, without parsing each into a BigInt.
 */
function nsAtLeast(a: string, b: string): boolean {
  if (a.startsWith('-') || b.startsWith('-')) return BigInt(a) >= BigInt(b)
  return a.length !== b.length ? a.length > b.length : a >= b
}

/**
 * Whether a file `st` describes may be recorded as hashed in a hashing that began at `stampNs`:
 * not when it was racily clean then (see the module comment).
 */
export function recordable(st: StatKey, stampNs: bigint): boolean {
  const stamp = stampNs.toString()
  return !nsAtLeast(st.mtimeNs, stamp) && !nsAtLeast(st.ctimeNs, stamp)
}

/** Also crates/strata-core/src/build_statindex.rs `VERSION`. */
const VERSION = 3

export class StatIndex {
  /** The entries as on disk: `[rel, stat key, sha256, …]` (dropped ones stay until saved). */
  #rows: string[] = []
  /** Where each present path's entry starts in #rows. */
  #at = new Map<string, number>()
  #dirty = false

  private constructor(private readonly file: string, private readonly context: string) {}

  /** Where the index of `context` (a real path) is kept under `dir`. */
  static fileFor(dir: string, context: string): string {
    return path.join(dir, `${sha256Hex(context)}.json`)
  }

  /** The index of `context` (a real path) kept under `dir`; empty when there is none yet. */
  static load(dir: string, context: string): StatIndex {
    const file = StatIndex.fileFor(dir, context)
    const idx = new StatIndex(file, context)
    try {
      const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { v?: number; context?: string; entries?: unknown }
      const ok = (x: unknown, i: number): boolean => typeof x === 'string' || (i % 3 === 0 && typeof (x as { b?: unknown } | null)?.b === 'string')
      if (v.v === VERSION && v.context === context && Array.isArray(v.entries) && v.entries.length % 3 === 0 && v.entries.every(ok)) {
        // Read as they are: one Map entry a path, no object per entry.
        const rows = v.entries as (string | WirePath)[]
        for (let i = 0; i < rows.length; i += 3) if (typeof rows[i] !== 'string') rows[i] = fromWire(rows[i] as WirePath)
        idx.#rows = rows as string[]
        for (let i = 0; i < idx.#rows.length; i += 3) idx.#at.set(idx.#rows[i], i)
      }
    } catch { /* none yet, or unreadable: start empty */ }
    return idx
  }

  /** The recorded sha256 of `rel` if its stat is unchanged. */
  lookup(rel: string, st: StatKey): string | undefined {
    const i = this.#at.get(rel)
    return i !== undefined && this.#rows[i + 1] === st.statKey ? this.#rows[i + 2] : undefined
  }

  /**
   * Records that `rel`, as `st` describes it, hashed to `sha256` in a hashing that began at
   * `stampNs` — unless it was racily clean then (see the module comment), when any entry of
   * `rel` is dropped instead.
   */
  put(rel: string, st: StatKey, sha256: string, stampNs: bigint): void {
    if (!recordable(st, stampNs)) {
      this.#drop(rel)
      return
    }
    const i = this.#at.get(rel)
    if (i !== undefined) {
      this.#rows[i + 1] = st.statKey
      this.#rows[i + 2] = sha256
    } else {
      this.#at.set(rel, this.#rows.length)
      this.#rows.push(rel, st.statKey, sha256)
    }
    this.#dirty = true
  }

  #drop(rel: string): void {
    if (this.#at.delete(rel)) this.#dirty = true
  }

  /** Drops entries of paths no longer in the context. */
  retain(present: (rel: string) => boolean): void {
    // (A Map's iteration goes on past a deletion of the current key.)
    for (const k of this.#at.keys()) if (!present(k)) this.#drop(k)
  }

  /**
   * The file system's current time as file times record it: a stamp file is written in `dir`
   * (where indexes are kept) and its mtime read back. Taken before hashing begins.
   */
  static stamp(dir: string): bigint {
    fs.mkdirSync(dir, { recursive: true })
    const f = tempFor(path.join(dir, 'stamp'))
    const fd = fs.openSync(f, 'w', 0o600)
    try {
      fs.writeSync(fd, 'x')
      return fs.fstatSync(fd, { bigint: true }).mtimeNs
    } finally {
      fs.closeSync(fd)
      // Not rmSync: Node 20's loads and runs its JS rimraf (an lstat first) for this one file.
      try { fs.unlinkSync(f) } catch { /* gone already */ }
    }
  }

  /** Writes the index if anything changed (temp file + rename; no fsync: it is a cache). */
  save(): void {
    if (!this.#dirty) return
    fs.mkdirSync(path.dirname(this.file), { recursive: true })
    const tmp = tempFor(this.file)
    const entries: WirePath[] = []
    for (const i of this.#at.values()) entries.push(toWire(this.#rows[i]), this.#rows[i + 1], this.#rows[i + 2])
    fs.writeFileSync(tmp, JSON.stringify({ v: VERSION, context: this.context, entries }))
    fs.renameSync(tmp, this.file)
    this.#dirty = false
  }
}
