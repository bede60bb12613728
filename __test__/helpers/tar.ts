/**
 * A raw tar writer for tests: builds exactly the bytes we ask for (ustar headers, PAX and GNU
 * long-name records, hostile names a normal tar tool refuses to write).
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo'

export interface TarEntry {
  name: string | Buffer
  type?: EntryType
  data?: Buffer | string
  mode?: number
  uid?: number
  gid?: number
  mtime?: number
  linkname?: string | Buffer
  devmajor?: number
  devminor?: number
  /** Extra PAX records (e.g. `SCHILY.xattr.security.capability`, or a hostile `path`). */
  pax?: Record<string, string | Buffer>
  /** Write long names as GNU `././@LongLink` records instead of PAX. */
  gnuLongName?: boolean
  /** Size to put in the header, if it should lie. */
  headerSize?: number
}

const TYPEFLAG: Record<EntryType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' }

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0'
}

function header(fields: { name: Buffer; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname: Buffer; devmajor: number; devminor: number; prefix?: Buffer }): Buffer {
  const h = Buffer.alloc(512)
  fields.name.copy(h, 0, 0, Math.min(100, fields.name.length))
  h.write(octal(fields.mode, 8), 100, 'ascii')
  h.write(octal(fields.uid, 8), 108, 'ascii')
  h.write(octal(fields.gid, 8), 116, 'ascii')
  h.write(octal(fields.size, 12), 124, 'ascii')
  h.write(octal(fields.mtime, 12), 136, 'ascii')
  h.write('        ', 148, 'ascii')
  h.write(fields.type, 156, 'ascii')
  fields.linkname.copy(h, 157, 0, Math.min(100, fields.linkname.length))
  h.write('ustar\0', 257, 'ascii')
  h.write('00', 263, 'ascii')
  h.write('root', 265, 'ascii')
  h.write('root', 297, 'ascii')
  h.write(octal(fields.devmajor, 8), 329, 'ascii')
  h.write(octal(fields.devminor, 8), 337, 'ascii')
  if (fields.prefix) fields.prefix.copy(h, 345, 0, Math.min(155, fields.prefix.length))
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii')
  return h
}

function pad(data: Buffer): Buffer {
  const rem = data.length % 512
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rem)])
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')])
  let len = body.length + 1
  while (String(len).length + body.length !== len) len = String(len).length + body.length
  return Buffer.concat([Buffer.from(String(len)), body])
}

export function entry(e: TarEntry): Buffer {
  const type = e.type ?? 'file'
  const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name)
  const linkname = e.linkname === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.linkname) ? e.linkname : Buffer.from(e.linkname)
  const data = type === 'file' ? (Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data ?? '')) : Buffer.alloc(0)
  const parts: Buffer[] = []
  const pax: [string, Buffer][] = Object.entries(e.pax ?? {}).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(v)])
  if (name.length > 100) {
    if (e.gnuLongName) {
      const ln = Buffer.concat([name, Buffer.from([0])])
      parts.push(header({ name: Buffer.from('././@LongLink'), mode: 0o644, uid: 0, gid: 0, size: ln.length, mtime: 0, type: 'L', linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 }), pad(ln))
    } else pax.push(['path', name])
  }
  if (linkname.length > 100) {
    if (e.gnuLongName) {
      const ll = Buffer.concat([linkname, Buffer.from([0])])
      parts.push(header({ name: Buffer.from('././@LongLink'), mode: 0o644, uid: 0, gid: 0, size: ll.length, mtime: 0, type: 'K', linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 }), pad(ll))
    } else pax.push(['linkpath', linkname])
  }
  if (pax.length > 0) {
    const body = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)))
    parts.push(header({ name: Buffer.from('PaxHeader'), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, type: 'x', linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 }), pad(body))
  }
  const defMode = type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644
  parts.push(header({
    name: name.subarray(0, 100), mode: e.mode ?? defMode, uid: e.uid ?? 0, gid: e.gid ?? 0,
    size: e.headerSize ?? data.length, mtime: e.mtime ?? 1700000000, type: TYPEFLAG[type],
    linkname: linkname.subarray(0, 100), devmajor: e.devmajor ?? 0, devminor: e.devminor ?? 0,
  }))
  if (data.length) parts.push(pad(data))
  return Buffer.concat(parts)
}

/** A whole tar: entries then two zero blocks. */
export function tar(entries: TarEntry[]): Buffer {
  return Buffer.concat([...entries.map(entry), Buffer.alloc(1024)])
}
