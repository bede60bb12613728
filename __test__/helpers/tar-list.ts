/**
 * A plain tar lister for tests (USTAR, PAX `x` records, GNU long names): every header field as
 * written — names keep their trailing `/`, modes keep Go's file-type bits — and a hash of each
 * file's data, so two engines' archives can be compared entry by entry.
 */
import { createHash } from 'node:crypto'
import type { TarEntry } from '../../ts/archive/tarstream'

/** A header as written: the typeflag character and the mode with Go's file-type bits. */
export interface ListedEntry extends Pick<TarEntry, 'name' | 'uid' | 'gid' | 'uname' | 'gname' | 'size' | 'mtime' | 'linkname'> {
  type: string
  mode: number
  sha?: string
  /** PAX record keys other than path/linkpath/size (xattrs and the like). */
  pax: string[]
}

function str(b: Buffer): string {
  const z = b.indexOf(0)
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8')
}

function num(b: Buffer): number {
  const s = str(b).trim()
  return s ? parseInt(s, 8) : 0
}

export function listTar(buf: Buffer): ListedEntry[] {
  const out: ListedEntry[] = []
  let off = 0
  let pax: Record<string, string> = {}
  let longName: string | undefined
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512)
    if (h.every((b) => b === 0)) break
    const type = String.fromCharCode(h[156])
    const size = pax.size ? Number(pax.size) : num(h.subarray(124, 136))
    const data = buf.subarray(off + 512, off + 512 + size)
    off += 512 + Math.ceil(size / 512) * 512
    if (type === 'x') {
      let i = 0
      while (i < data.length) {
        const sp = data.indexOf(0x20, i)
        const len = Number(data.subarray(i, sp).toString())
        const rec = data.subarray(sp + 1, i + len - 1).toString('latin1')
        const eq = rec.indexOf('=')
        pax[rec.slice(0, eq)] = rec.slice(eq + 1)
        i += len
      }
      continue
    }
    if (type === 'L') {
      longName = str(data)
      continue
    }
    const prefix = str(h.subarray(345, 500))
    const base = str(h.subarray(0, 100))
    out.push({
      name: pax.path ?? longName ?? (prefix ? `${prefix}/${base}` : base),
      type, mode: num(h.subarray(100, 108)), uid: pax.uid ? Number(pax.uid) : num(h.subarray(108, 116)),
      gid: pax.gid ? Number(pax.gid) : num(h.subarray(116, 124)), uname: pax.uname ?? str(h.subarray(265, 297)),
      gname: pax.gname ?? str(h.subarray(297, 329)), size, mtime: pax.mtime ? Math.floor(Number(pax.mtime)) : num(h.subarray(136, 148)),
      linkname: pax.linkpath ?? str(h.subarray(157, 257)),
      ...(type === '0' ? { sha: createHash('sha256').update(data).digest('hex') } : {}),
      pax: Object.keys(pax).filter((k) => !['path', 'linkpath', 'size'].includes(k)).sort(),
    })
    pax = {}
    longName = undefined
  }
  return out
}
