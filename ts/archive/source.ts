/**
 * Reading an image archive: a tar file (indexed natively, members read in place by offset), or a
 * directory (OCI image layout / unpacked docker-archive). Member names from manifests are
 * normalised and must stay inside the archive: a manifest naming `../x` is a corrupt archive.
 */
import path = require('node:path')
import { native } from '../internal/native'
import { call, StrataError } from '../errors'
import { fsp as fs } from '../internal/lazy'

/** Where a member's bytes are: a file and a byte range in it (layers are read in place). */
export interface BlobLocation {
  path: string
  offset: number
  length: number
}

export interface ArchiveSource {
  readonly description: string
  has(name: string): Promise<boolean>
  read(name: string, maxBytes?: number): Promise<Buffer>
  locate(name: string): Promise<BlobLocation>
}

/** Normalises a member name (`./a//b` → `a/b`); rejects absolute names and `..`. */
export function memberName(name: string): string {
  if (typeof name !== 'string' || name === '' || name.includes('\0')) {
    throw new StrataError('CorruptArchive', `invalid archive member name ${JSON.stringify(name)}`)
  }
  const parts: string[] = []
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue
    if (p === '..') throw new StrataError('CorruptArchive', `archive member name escapes the archive: ${JSON.stringify(name)}`)
    parts.push(p)
  }
  if (name.startsWith('/') || parts.length === 0) {
    throw new StrataError('CorruptArchive', `invalid archive member name ${JSON.stringify(name)}`)
  }
  return parts.join('/')
}

const MAX_METADATA = 64 << 20

interface Member { kind: string; offset: number; size: number; linkname?: string }

export class TarSource implements ArchiveSource {
  private constructor(readonly file: string, private readonly members: Map<string, Member>) {}

  static async open(file: string): Promise<TarSource> {
    const index = await call(() => native.archiveIndex(file))
    const members = new Map<string, Member>()
    for (const m of index) {
      let name: string
      try {
        name = memberName(m.name)
      } catch {
        continue // a member we will never be asked for by a sane manifest; names are checked on lookup
      }
      members.set(name, { kind: m.kind, offset: m.offset, size: m.size, linkname: m.linkname ?? undefined })
    }
    return new TarSource(file, members)
  }

  get description(): string { return this.file }

  private resolve(name: string, depth = 0): Member {
    const n = memberName(name)
    const m = this.members.get(n)
    if (!m) throw new StrataError('CorruptArchive', `archive has no member ${n}`)
    if (depth > 16) throw new StrataError('CorruptArchive', `too many links resolving ${n}`)
    if (m.kind === 'symlink' && m.linkname) {
      const target = m.linkname.startsWith('/') ? m.linkname : path.posix.join(path.posix.dirname(n), m.linkname)
      return this.resolve(target, depth + 1)
    }
    if (m.kind === 'hardlink' && m.linkname) return this.resolve(m.linkname, depth + 1)
    if (m.kind !== 'file') throw new StrataError('CorruptArchive', `archive member ${n} is not a file`)
    return m
  }

  async has(name: string): Promise<boolean> {
    try {
      this.resolve(name)
      return true
    } catch {
      return false
    }
  }

  async read(name: string, maxBytes = MAX_METADATA): Promise<Buffer> {
    const m = this.resolve(name)
    if (m.size > maxBytes) throw new StrataError('CorruptArchive', `archive member ${name} is too large (${m.size} bytes)`)
    const fh = await fs.open(this.file, 'r')
    try {
      const buf = Buffer.alloc(m.size)
      const { bytesRead } = await fh.read(buf, 0, m.size, m.offset)
      if (bytesRead !== m.size) throw new StrataError('CorruptArchive', `archive member ${name} is truncated`)
      return buf
    } finally {
      await fh.close()
    }
  }

  async locate(name: string): Promise<BlobLocation> {
    const m = this.resolve(name)
    return { path: this.file, offset: m.offset, length: m.size }
  }
}

export class DirSource implements ArchiveSource {
  private readonly sizes = new Map<string, number>()
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<DirSource> {
    return new DirSource(await fs.realpath(dir))
  }

  get description(): string { return this.dir }

  /** Resolves a member to a real path inside the directory (symlinks may not lead out). */
  private async real(name: string): Promise<string> {
    const p = path.join(this.dir, memberName(name))
    let real: string
    try {
      real = await fs.realpath(p)
    } catch {
      throw new StrataError('CorruptArchive', `archive has no member ${name}`)
    }
    if (!real.startsWith(this.dir + path.sep)) throw new StrataError('CorruptArchive', `archive member ${name} leads outside the archive`)
    const st = await fs.stat(real)
    if (!st.isFile()) throw new StrataError('CorruptArchive', `archive member ${name} is not a file`)
    this.sizes.set(name, st.size)
    return real
  }

  async has(name: string): Promise<boolean> {
    try {
      await this.real(name)
      return true
    } catch {
      return false
    }
  }

  async read(name: string, maxBytes = MAX_METADATA): Promise<Buffer> {
    const real = await this.real(name)
    const size = this.sizes.get(name) ?? 0
    if (size > maxBytes) throw new StrataError('CorruptArchive', `archive member ${name} is too large (${size} bytes)`)
    return fs.readFile(real)
  }

  async locate(name: string): Promise<BlobLocation> {
    const real = await this.real(name)
    return { path: real, offset: 0, length: this.sizes.get(name) ?? 0 }
  }
}
