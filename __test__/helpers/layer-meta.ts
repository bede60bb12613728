/**
 * The full metadata of a layer dir, for differential tests against Docker's: per entry its
 * type, mode, owner, size and content hash, link target, device number, mtime and atime in
 * nanoseconds, xattrs (without following symlinks), and which names share its inode. Times are
 * read before any content or link target (reading either moves its atime), and directories' atimes are left
 * out (both tools read their directories after extracting them).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { xattrsUnder, typeOf, Node } from './fs'

export interface EntryMeta extends Omit<Node, 'mtime'> {
  mtimeNs: string
  atimeNs?: string
  /** Every name of the inode, sorted (hard links), when there is more than one. */
  links?: string[]
}

/** Names are relative to `dir`, decoded latin1 (non-UTF-8 names survive). */
export function layerMeta(dir: string): Record<string, EntryMeta> {
  const out: Record<string, EntryMeta> = {}
  const files: [string, string][] = []
  // Read after every lstat: reading a symlink moves its atime, seen through its other hard links.
  const links: [string, Buffer][] = []
  const inodes = new Map<bigint, string[]>()
  const walk = (rel: Buffer): void => {
    const abs = Buffer.concat([Buffer.from(dir + '/'), rel])
    for (const name of fs.readdirSync(abs, { encoding: 'buffer' })) {
      const r = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name
      const p = Buffer.concat([Buffer.from(dir + '/'), r])
      const st = fs.lstatSync(p, { bigint: true })
      const key = r.toString('latin1')
      const m: EntryMeta = { type: typeOf(st), mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs.toString() }
      if (!st.isDirectory()) m.atimeNs = st.atimeNs.toString()
      if (st.isFile()) { m.size = Number(st.size); files.push([key, p.toString('latin1')]) }
      if (st.isSymbolicLink()) links.push([key, p])
      if (st.isCharacterDevice() || st.isBlockDevice()) m.rdev = Number(st.rdev)
      if (!st.isDirectory()) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), key])
      out[key] = m
      if (st.isDirectory()) walk(r)
    }
  }
  walk(Buffer.alloc(0))
  for (const [key, p] of links) out[key].link = fs.readlinkSync(p, { encoding: 'buffer' }).toString('latin1')
  for (const [key, p] of files) out[key].sha = createHash('sha256').update(fs.readFileSync(Buffer.from(p, 'latin1'))).digest('hex')
  for (const names of inodes.values()) if (names.length > 1) for (const n of names) out[n].links = [...names].sort()
  for (const [rel, x] of xattrsUnder(dir)) if (out[rel]) out[rel].xattrs = x
  return out
}

/** Allocated bytes of a file (st_blocks × 512): a sparse file has far fewer than its size. */
export function allocated(p: string): number {
  return Number(fs.statSync(p, { bigint: true }).blocks) * 512
}

/** Every `.wh.NAME` of a layer's entries, as the whiteout NAME it becomes on disk. */
export function whiteoutsOf(names: string[]): string[] {
  return names.filter((n) => path.basename(n).startsWith('.wh.') && !path.basename(n).startsWith('.wh..wh.'))
    .map((n) => path.join(path.dirname(n), path.basename(n).slice(4)))
}
