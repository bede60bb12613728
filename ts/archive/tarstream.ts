/**
 * Tar streams entry by entry, for `docker cp` (`cp C:/path -` writes one, `cp - C:/path` reads
 * one): a reader for what docker and GNU/BSD tar produce (USTAR, PAX `x` records — `path`,
 * `linkpath`, `size`, ids, names, `mtime`, `SCHILY.xattr.*` —, GNU `L`/`K` long names, base-256
 * numbers; `g` global headers ignored, as moby does), and a writer whose headers come from the
 * native encoder that writes layers too (Go's `archive/tar` choices: USTAR, PAX only where
 * USTAR cannot hold a field). Headers carry Go's file-type bits in the mode field, as moby's
 * `FileInfoHeader` fills them. Bodies stream; nothing holds a whole file in memory.
 */
import type { Readable, Writable } from 'node:stream'
import { native } from '../native'
import { StrataError } from '../errors'

export type TarEntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo'

export interface TarEntry {
  /** As in the archive (`d1/`, `./f`, `/bin/`). */
  name: string
  type: TarEntryType
  /** Permission bits with setuid/setgid/sticky (no file-type bits). */
  mode: number
  uid: number
  gid: number
  uname: string
  gname: string
  /** Bytes of data (files only). */
  size: number
  /** Seconds since the epoch. */
  mtime: number
  /** Target of a symlink or hard link. */
  linkname: string
  devmajor: number
  devminor: number
  xattrs: Map<string, Buffer>
  /** A file's data, read once. */
  body?: () => AsyncIterable<Buffer>
}

const BLOCK = 512
const TYPEFLAG: Record<TarEntryType, string> = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' }
/** Go's archive/tar c_IS* bits, which moby's FileInfoHeader puts back into the mode field. */
const TYPE_BITS: Record<TarEntryType, number> = { file: 0o100000, link: 0o100000, symlink: 0o120000, char: 0o20000, block: 0o60000, dir: 0o40000, fifo: 0o10000 }

/** Go's archive/tar words for a broken archive, which docker passes on (`what` is for the reader of the code). */
function corrupt(what: string): StrataError {
  return new StrataError('CorruptArchive', what === 'unexpected EOF' ? what : 'archive/tar: invalid tar header')
}

function truncated(): StrataError {
  return corrupt('unexpected EOF')
}

/** Exact-size reads over a stream's chunks. */
class ByteReader {
  #it: AsyncIterator<Buffer | string>
  #buf = Buffer.alloc(0)
  #done = false

  constructor(input: Readable) {
    this.#it = input[Symbol.asyncIterator]()
  }

  async #fill(n: number): Promise<void> {
    while (this.#buf.length < n && !this.#done) {
      const r = await this.#it.next()
      if (r.done) this.#done = true
      else this.#buf = this.#buf.length ? Buffer.concat([this.#buf, Buffer.from(r.value)]) : Buffer.from(r.value)
    }
  }

  /** Exactly `n` bytes, or fewer at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    await this.#fill(n)
    const out = this.#buf.subarray(0, n)
    this.#buf = this.#buf.subarray(out.length)
    return out
  }

  /** `n` bytes as they come (at most a chunk at a time). */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n
    while (left > 0) {
      if (this.#buf.length === 0) await this.#fill(1)
      if (this.#buf.length === 0) throw truncated()
      const part = this.#buf.subarray(0, Math.min(left, this.#buf.length))
      this.#buf = this.#buf.subarray(part.length)
      left -= part.length
      yield part
    }
  }

  /** Stops reading the stream (its iterator's return destroys it). */
  async close(): Promise<void> {
    await this.#it.return?.()
  }
}

function cstring(b: Buffer): string {
  const nul = b.indexOf(0)
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8')
}

function number(b: Buffer, field: string): number {
  if (b[0] & 0x80) {
    // Base-256 (GNU): big-endian, the top bit of the first byte marks it.
    let v = b[0] & 0x7f
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i]
    return v
  }
  const s = cstring(b).trim()
  if (s === '') return 0
  if (!/^[0-7]+$/.test(s)) throw corrupt(`bad ${field} field ${JSON.stringify(s)}`)
  return parseInt(s, 8)
}

function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>()
  let i = 0
  while (i < data.length) {
    const sp = data.indexOf(0x20, i)
    if (sp < 0) throw corrupt('bad PAX record')
    const len = Number(data.subarray(i, sp).toString('ascii'))
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length) throw corrupt('bad PAX record length')
    const rec = data.subarray(sp + 1, i + len - 1)
    const eq = rec.indexOf(0x3d)
    if (eq < 0) throw corrupt('bad PAX record')
    out.set(rec.subarray(0, eq).toString('utf8'), rec.subarray(eq + 1).toString('latin1'))
    i += len
  }
  return out
}

function typeOf(flag: string): TarEntryType | undefined {
  switch (flag) {
    case '0': case '\0': case '7': return 'file'
    case '1': return 'link'
    case '2': return 'symlink'
    case '3': return 'char'
    case '4': return 'block'
    case '5': return 'dir'
    case '6': return 'fifo'
    default: return undefined
  }
}

/**
 * The entries of a tar stream, in order. Each entry's `body` must be read before the next
 * entry is asked for (what is left unread is skipped). Stops at the end-of-archive blocks.
 */
export async function* readTar(input: Readable): AsyncGenerator<TarEntry> {
  const r = new ByteReader(input)
  let pax = new Map<string, string>()
  let longName: string | undefined
  let longLink: string | undefined
  try {
    for (;;) {
      const h = await r.read(BLOCK)
      if (h.length === 0) return
      if (h.length < BLOCK) throw truncated()
      if (h.every((b) => b === 0)) return
      let sum = 0
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]
      if (number(h.subarray(148, 156), 'checksum') !== sum) throw new StrataError('CorruptArchive', 'archive/tar: invalid tar header')
      const flag = String.fromCharCode(h[156])
      const size = pax.has('size') ? Number(pax.get('size')) : number(h.subarray(124, 136), 'size')
      const padded = Math.ceil(size / BLOCK) * BLOCK
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        const data = await r.read(padded)
        if (data.length < padded) throw truncated()
        const body = data.subarray(0, size)
        if (flag === 'x') pax = new Map([...pax, ...parsePax(body)])
        else if (flag === 'L') longName = cstring(body)
        else if (flag === 'K') longLink = cstring(body)
        continue
      }
      const type = typeOf(flag)
      const ustar = h.subarray(257, 262).toString('latin1') === 'ustar'
      const prefix = ustar ? cstring(h.subarray(345, 500)) : ''
      const baseName = cstring(h.subarray(0, 100))
      const name = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${baseName}` : baseName)
      const mtime = pax.has('mtime') ? Math.floor(Number(pax.get('mtime'))) : number(h.subarray(136, 148), 'mtime')
      const xattrs = new Map<string, Buffer>()
      for (const [k, v] of pax) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice(13), Buffer.from(v, 'latin1'))
      const entry: TarEntry = {
        name,
        type: type ?? 'file',
        mode: number(h.subarray(100, 108), 'mode') & 0o7777,
        uid: pax.has('uid') ? Number(pax.get('uid')) : number(h.subarray(108, 116), 'uid'),
        gid: pax.has('gid') ? Number(pax.get('gid')) : number(h.subarray(116, 124), 'gid'),
        uname: pax.get('uname') ?? (ustar ? cstring(h.subarray(265, 297)) : ''),
        gname: pax.get('gname') ?? (ustar ? cstring(h.subarray(297, 329)) : ''),
        size: type === 'file' ? size : 0,
        mtime,
        linkname: pax.get('linkpath') ?? longLink ?? cstring(h.subarray(157, 257)),
        devmajor: ustar ? number(h.subarray(329, 337), 'devmajor') : 0,
        devminor: ustar ? number(h.subarray(337, 345), 'devminor') : 0,
        xattrs,
      }
      pax = new Map()
      longName = undefined
      longLink = undefined
      if (!type) throw corrupt(`unsupported entry type ${JSON.stringify(flag)} for ${name}`)
      // Bytes of the data not read yet: the consumer may stop early, the rest is skipped.
      let remaining = size
      if (type === 'file') {
        entry.body = () => ({
          [Symbol.asyncIterator]: () => {
            const g = r.take(remaining)
            return {
              next: async () => {
                const x = await g.next()
                if (!x.done) remaining -= x.value.length
                return x
              },
              return: async () => ({ done: true as const, value: undefined }),
            }
          },
        })
      }
      yield entry
      for await (const _ of r.take(remaining)) { /* skip what was not read */ }
      const pad = padded - size
      if (pad > 0 && (await r.read(pad)).length < pad) throw truncated()
    }
  } finally {
    await r.close()
  }
}

/** The header block(s) of `e` as Go's archive/tar writes them (moby's mode bits included). */
export function tarHeader(e: TarEntry): Buffer {
  return native.tarHeader({
    name: e.name, kind: TYPEFLAG[e.type], mode: (e.mode & 0o7777) | TYPE_BITS[e.type], uid: e.uid, gid: e.gid, mtime: e.mtime,
    size: e.type === 'file' ? e.size : 0, linkname: e.linkname, devmajor: e.devmajor, devminor: e.devminor, uname: e.uname,
    gname: e.gname, xattrs: [...e.xattrs].map(([name, value]) => ({ name, value })),
  })
}

/** Bytes `e` takes in a tar stream (headers, data, padding). */
export function tarEntrySize(e: TarEntry): number {
  const data = e.type === 'file' ? Math.ceil(e.size / BLOCK) * BLOCK : 0
  return tarHeader(e).length + data
}

/** The end of an archive: two zero blocks (Go's `Writer.Close`). */
export const TAR_TRAILER_SIZE = 2 * BLOCK

function write(out: Writable, b: Buffer): Promise<void> | undefined {
  if (out.destroyed || out.writableEnded) throw new StrataError('Io', 'write after the output was closed', { syscode: 'EPIPE' })
  if (out.write(b)) return undefined
  return new Promise((resolve, reject) => {
    const done = (e?: Error) => {
      out.off('drain', ok).off('error', done).off('close', closed)
      if (e) reject(e)
      else resolve()
    }
    const ok = () => done()
    const closed = () => done(new StrataError('Io', 'the output was closed', { syscode: 'EPIPE' }))
    out.on('drain', ok).on('error', done).on('close', closed)
  })
}

/** Writes `entries` as a tar stream to `out` (not ended); resolves with the bytes written. */
export async function writeTar(entries: AsyncIterable<TarEntry>, out: Writable): Promise<number> {
  let total = 0
  for await (const e of entries) {
    const h = tarHeader(e)
    await write(out, h)
    total += h.length
    if (e.type !== 'file') continue
    let n = 0
    if (e.body) {
      for await (const chunk of e.body()) {
        if (n + chunk.length > e.size) throw new StrataError('Io', `${e.name} grew while it was archived`)
        await write(out, chunk)
        n += chunk.length
      }
    }
    // A file that shrank under us is padded to the size its header promised (Go errors instead).
    if (n < e.size) await write(out, Buffer.alloc(e.size - n))
    const pad = (BLOCK - (e.size % BLOCK)) % BLOCK
    if (pad) await write(out, Buffer.alloc(pad))
    total += e.size + pad
  }
  await write(out, Buffer.alloc(TAR_TRAILER_SIZE))
  return total + TAR_TRAILER_SIZE
}
