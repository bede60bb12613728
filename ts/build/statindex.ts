/**
 * The stat index: what a build context's files hashed to, keyed by what `lstat` says of them,
 * so a rebuild reads no file whose inode is unchanged.
 *
 * On disk: `<root>/builder/statindex/<sha256 of the context's real path>.json`, replaced
 * atomically (a torn or unreadable file is an empty index):
 *
 * ```
 * {"v":1,"context":"/abs/path","entries":{"<rel path>":[dev,ino,size,"mtimeNs","ctimeNs",mode,"sha256:…","stampNs"],…}}
 * ```
 *
 * `stampNs` is the file system's clock when the hashing that produced the entry began (read
 * off a file written just then, so it is the clock file times come from). An entry is used
 * only if all six stat fields are equal *and* the file's mtime and ctime are both older than
 * its stamp — git's "racily clean" rule: a file changed in the same clock tick as it was
 * hashed can keep its size, mtime and ctime, so such entries are hashed again (and, once the
 * clock has moved on, recorded with a stamp they are older than). Any later write changes
 * ctime to at least the stamp, so a trusted entry can never describe an older content.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { tempFor } from '../internal/metawrites'

/** The stat fields an entry is keyed on. */
export interface StatKey {
  dev: number
  ino: number
  size: number
  mtimeNs: string
  ctimeNs: string
  mode: number
}

type Row = [number, number, number, string, string, number, string, string]

/**
 * `a >= b` for nanosecond times written as decimal strings. Non-negative ones (no leading
 * zeros) compare by length, then as text: a rebuild looks up every file of the context, and
 * parsing each time into a BigInt was most of a no-change build's hashing step.
 */
function nsAtLeast(a: string, b: string): boolean {
  if (a.startsWith('-') || b.startsWith('-')) return BigInt(a) >= BigInt(b)
  return a.length !== b.length ? a.length > b.length : a >= b
}

const VERSION = 1

export class StatIndex {
  #entries = new Map<string, Row>()
  #dirty = false

  private constructor(private readonly file: string, private readonly context: string) {}

  /** The index of `context` (a real path) kept under `dir`; empty when there is none yet. */
  static load(dir: string, context: string): StatIndex {
    const file = path.join(dir, `${createHash('sha256').update(context).digest('hex')}.json`)
    const idx = new StatIndex(file, context)
    try {
      const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { v?: number; context?: string; entries?: Record<string, Row> }
      if (v.v === VERSION && v.context === context && v.entries && typeof v.entries === 'object') {
        for (const [k, row] of Object.entries(v.entries)) if (Array.isArray(row) && row.length === 8) idx.#entries.set(k, row)
      }
    } catch { /* none yet, or unreadable: start empty */ }
    return idx
  }

  /** The recorded sha256 of `rel` if its stat is unchanged and it was not racily clean. */
  lookup(rel: string, st: StatKey): string | undefined {
    const r = this.#entries.get(rel)
    if (!r) return undefined
    if (r[0] !== st.dev || r[1] !== st.ino || r[2] !== st.size || r[3] !== st.mtimeNs || r[4] !== st.ctimeNs || r[5] !== st.mode) return undefined
    if (nsAtLeast(st.mtimeNs, r[7]) || nsAtLeast(st.ctimeNs, r[7])) return undefined
    return r[6]
  }

  put(rel: string, st: StatKey, sha256: string, stampNs: bigint): void {
    this.#entries.set(rel, [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs, st.mode, sha256, stampNs.toString()])
    this.#dirty = true
  }

  /** Drops entries of paths no longer in the context. */
  retain(present: (rel: string) => boolean): void {
    for (const k of this.#entries.keys()) {
      if (!present(k)) {
        this.#entries.delete(k)
        this.#dirty = true
      }
    }
  }

  /**
   * The file system's current time as file times record it: a stamp file is written and its
   * mtime read back. Taken before hashing begins.
   */
  stamp(): bigint {
    fs.mkdirSync(path.dirname(this.file), { recursive: true })
    const f = tempFor(path.join(path.dirname(this.file), 'stamp'))
    const fd = fs.openSync(f, 'w', 0o600)
    try {
      fs.writeSync(fd, 'x')
      return fs.fstatSync(fd, { bigint: true }).mtimeNs
    } finally {
      fs.closeSync(fd)
      fs.rmSync(f, { force: true })
    }
  }

  /** Writes the index if anything changed (temp file + rename; no fsync: it is a cache). */
  save(): void {
    if (!this.#dirty) return
    fs.mkdirSync(path.dirname(this.file), { recursive: true })
    const tmp = tempFor(this.file)
    const entries: Record<string, Row> = {}
    for (const [k, v] of this.#entries) entries[k] = v
    fs.writeFileSync(tmp, JSON.stringify({ v: VERSION, context: this.context, entries }))
    fs.renameSync(tmp, this.file)
    this.#dirty = false
  }
}
