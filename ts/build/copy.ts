/**
 * COPY and ADD: from the sources a step names to (a) the part of its cache key that
 * describes them and (b) the list of native copy steps (`native.copyIn`) that carry it out
 * in the step's overlay mount — with BuildKit's rules (its `fileop` copy and fsutil's
 * `copy.Copy`):
 *
 * - a source is a path of the context (or of another stage's rootfs with `--from`), `..`
 *   cannot leave the context (`ContextEscape`), nor can a symlink on the way; wildcards
 *   (`*`, `?`, `[...]`, Go's filepath.Match per component) may match nothing;
 * - a directory source copies its contents; a file goes *into* a destination that is an
 *   existing directory or ends with `/`; missing destination directories are made 0755,
 *   owned by the `--chown` user (root by default); several sources need a directory
 *   destination ending with `/`;
 * - files keep their mode (or take `--chmod`, directories too) and mtime; they are owned by
 *   root, or the `--chown` user and group (names resolved in the destination's /etc/passwd
 *   and /etc/group); files copied from another stage keep their owners unless `--chown`;
 * - hard links within one copy stay hard links; xattrs are copied with files, directories and
 *   symlinks (BuildKit copies every one: user.*, trusted.*, security.*); names that are not
 *   UTF-8 keep their bytes (../internal/bytepath.ts);
 * - ADD unpacks a local tar (plain, gzip, bzip2 or xz: what Docker 20.10's builder unpacks;
 *   a zstd tar is copied as a file there, and here) into the destination directory, owners
 *   from the tar unless `--chown`; ADD of a URL is refused (`InvalidArgument`).
 */
import * as path from 'node:path'
import { fsp as fs } from '../internal/lazy'
import { native } from '../internal/native'
import { call, StrataErrorCode } from '../errors'
import { BuildError } from './errors'
import { S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, scanDirs } from './context'
import { toWire } from '../internal/bytepath'
import { cleanPath } from './dockerignore'
import { resolveUser } from '../containers/spec'
import { goPathMatch } from '../internal/gomatch'

/** One entry of a source tree (the context, or a stage's rootfs). */
export interface SourceEntry {
  rel: string
  mode: number
  uid: number
  gid: number
  size: number
  dev: number
  ino: number
  nlink: number
  mtimeNs: string
  link?: string
  /** Extended attributes as `[name, base64 value]`, sorted (absent: none). */
  xattrs?: [string, string][]
  /** A regular file's content digest where the tree knows it (the context's, ./context.ts). */
  sha256?: string
  /**
   * The stat key under which `sha256` is known to be the content (a context file hashed in this
   * build and not racily clean then, ./context.ts): the copy does not hash it again while the
   * file still has this key (crates/strata-core/src/build_ctx.rs `CopyOp::File`).
   */
  verifiedKey?: string
}

/** Where sources are read from. */
export interface SourceTree {
  /** Host directory of the tree (read by the native copy, confined to it). */
  root: string
  /** The build context: sources cannot leave it, owners are reset, content is hashed. */
  isContext: boolean
  get(rel: string): Promise<SourceEntry | undefined>
  children(rel: string): Promise<SourceEntry[]>
}

export interface CopyOptions {
  add: boolean
  /** Sources (expanded), the destination last. */
  sourcesAndDest: string[]
  chown: string
  chmod: string
  /** The step's working directory (relative destinations). */
  workdir: string
  line: number
}

export interface PlannedSource {
  /** The source as written. */
  src: string
  /** Entries below the source item, relative to it ('' = the item), for the key. */
  items: { at: string; entry: SourceEntry; children: SourceEntry[] }[]
}

const isDirE = (e: { mode: number }): boolean => (e.mode & S_IFMT) === S_IFDIR
const isFileE = (e: { mode: number }): boolean => (e.mode & S_IFMT) === S_IFREG
const isLinkE = (e: { mode: number }): boolean => (e.mode & S_IFMT) === S_IFLNK

function fail(code: StrataErrorCode, message: string, line: number, p?: string): never {
  throw new BuildError(code, message, { line, ...(p ? { path: p } : {}) })
}

export function hasWildcard(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') i++
    else if ('*?['.includes(s[i])) return true
  }
  return false
}

function unescapeGlob(s: string): string {
  return s.replace(/\\(.)/g, '$1')
}

/**
 * Resolves `rel` in the tree following symlinks (chroot semantics); for the context, a
 * symlink leading out of it is refused. Returns the real relative path and its entry.
 */
async function resolvePath(tree: SourceTree, rel: string, line: number, shown: string): Promise<{ rel: string; entry: SourceEntry } | undefined> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.')
  let cur: string[] = []
  let hops = 0
  while (parts.length > 0) {
    const name = parts.shift()!
    if (name === '..') {
      if (cur.length === 0) {
        if (tree.isContext) fail('ContextEscape', `COPY source ${shown} leads outside the build context`, line, shown)
        continue
      }
      cur.pop()
      continue
    }
    const candidate = [...cur, name].join('/')
    const e = await tree.get(candidate)
    if (!e) return undefined
    if (isLinkE(e)) {
      if (++hops > 40) fail('SourceNotFound', `COPY source ${shown}: too many levels of symbolic links`, line, shown)
      const target = e.link ?? ''
      if (target.startsWith('/')) {
        if (tree.isContext) fail('ContextEscape', `COPY source ${shown} is a symlink leading outside the build context (${candidate} -> ${target})`, line, shown)
        cur = []
      }
      const climbs = target.split('/').filter((p) => p === '..').length
      if (tree.isContext && !target.startsWith('/') && climbs > 0) {
        // Lexically: does the target climb above the context root?
        const joined = cleanPath([...cur, target].join('/'))
        if (joined === '..' || joined.startsWith('../')) {
          fail('ContextEscape', `COPY source ${shown} is a symlink leading outside the build context (${candidate} -> ${target})`, line, shown)
        }
      }
      parts.unshift(...target.split('/'))
      continue
    }
    cur = [...cur, name]
    if (parts.length > 0 && !isDirE(e)) return undefined
  }
  const real = cur.join('/')
  const entry = real === '' ? await tree.get('') : await tree.get(real)
  return entry ? { rel: real, entry } : undefined
}

/** Expands a wildcard source into the matching paths (sorted per directory, as filepath.Glob). */
async function expandGlob(tree: SourceTree, pattern: string, line: number, shown: string): Promise<string[]> {
  const comps = pattern.split('/').filter((p) => p !== '' && p !== '.')
  let found: string[] = ['']
  for (const comp of comps) {
    const next: string[] = []
    for (const base of found) {
      if (!hasWildcard(comp)) {
        const rel = base ? `${base}/${unescapeGlob(comp)}` : unescapeGlob(comp)
        if (comp === '..') {
          if (tree.isContext && base === '') fail('ContextEscape', `COPY source ${shown} leads outside the build context`, line, shown)
          next.push(base.split('/').slice(0, -1).join('/'))
          continue
        }
        const r = await resolvePath(tree, rel, line, shown)
        if (r) next.push(rel)
        continue
      }
      const dir = base === '' ? { rel: '', entry: await tree.get('') } : await resolvePath(tree, base, line, shown)
      if (!dir?.entry || !isDirE(dir.entry)) continue
      const kids = await tree.children(dir.rel)
      for (const k of kids.map((x) => x.rel.split('/').pop()!).sort()) if (goPathMatch(comp, k)) next.push(base ? `${base}/${k}` : k)
    }
    found = next
  }
  return found.filter((f) => f !== '')
}

const byRel = (a: SourceEntry, b: SourceEntry): number => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0)

/** `entries` in string order of their paths: as they are when listed natively (byte order), which string order differs from only for some names outside ASCII. */
function sortedByRel(entries: SourceEntry[]): SourceEntry[] {
  for (let i = 1; i < entries.length; i++) if (entries[i - 1].rel > entries[i].rel) return [...entries].sort(byRel)
  return entries
}

/** Every entry below a directory item, parents first, names sorted. */
async function walkBelow(tree: SourceTree, rel: string): Promise<SourceEntry[]> {
  const out: SourceEntry[] = []
  const walk = async (dir: string): Promise<void> => {
    const kids = sortedByRel(await tree.children(dir))
    for (const k of kids) {
      out.push(k)
      if (isDirE(k)) await walk(k.rel)
    }
  }
  await walk(rel)
  return out
}

/** Resolves the sources of a COPY/ADD (everything but heredocs and URLs). */
export async function planSources(tree: SourceTree, sources: string[], line: number): Promise<PlannedSource[]> {
  const out: PlannedSource[] = []
  for (const src of sources) {
    const cleaned = cleanPath(src.startsWith('/') ? src.slice(1) || '.' : src)
    if (tree.isContext && (cleaned === '..' || cleaned.startsWith('../'))) {
      fail('ContextEscape', `COPY source ${src} is outside the build context`, line, src)
    }
    const rels = hasWildcard(src) ? await expandGlob(tree, cleaned === '.' ? '' : cleaned, line, src) : [cleaned === '.' ? '' : cleaned]
    const items: PlannedSource['items'] = []
    for (const rel of rels) {
      const r = rel === '' ? { rel: '', entry: await tree.get('') } : await resolvePath(tree, rel, line, src)
      if (!r?.entry) {
        if (hasWildcard(src)) continue
        fail('SourceNotFound', `failed to compute cache key: "/${rel}" not found: not found`, line, src)
      }
      const children = isDirE(r.entry) ? await walkBelow(tree, r.rel) : []
      items.push({ at: rel === '' ? '.' : rel, entry: { ...r.entry, rel: r.rel }, children })
    }
    out.push({ src, items })
  }
  return out
}

/**
 * `[path, type, mode, link target, sha256]` rows of a planned source for the cache key (no
 * times, no owners); a file's digest is its entry's own (a context file's: ./context.ts), else
 * the one `digests` has (a COPY --from source's, ./fromkey.ts).
 */
export function describeSource(p: PlannedSource, withMode: boolean, digests: ReadonlyMap<string, string> = new Map()): unknown[] {
  const rows: unknown[] = []
  for (const it of p.items) {
    const base = it.entry.rel
    const row = (e: SourceEntry, at: string): unknown[] => {
      const type = isDirE(e) ? 'dir' : isFileE(e) ? 'file' : isLinkE(e) ? 'symlink' : `other:${e.mode & S_IFMT}`
      const r = [at, type, withMode ? e.mode & 0o7777 : null, e.link ?? null, isFileE(e) ? e.sha256 ?? digests.get(e.rel) ?? null : null]
      // xattrs (copied with the entry) count; rows of entries without any keep their old shape.
      return e.xattrs ? [...r, e.xattrs] : r
    }
    rows.push([it.at, row(it.entry, '')])
    for (const c of it.children) rows.push([it.at, row(c, base === '' ? c.rel : c.rel.slice(base.length + 1))])
  }
  return rows
}

/** Regular files a planned source reads (for hashing). */
export function filesOf(p: PlannedSource[]): string[] {
  const out: string[] = []
  for (const s of p) for (const it of s.items) for (const e of [it.entry, ...it.children]) if (isFileE(e)) out.push(e.rel)
  return out
}

export interface Owner {
  uid: number
  gid: number
}

/** `--chown` resolved in the destination rootfs (names through its /etc/passwd and /etc/group). */
export function resolveChown(chown: string, rootfs: string, line: number): Owner | undefined {
  if (chown === '') return undefined
  const [u, g] = chown.split(':', 2)
  const read = (p: string): string | undefined => native.readInRoot(rootfs, p, 1 << 22)?.toString('utf8')
  const numeric = /^\d+$/
  if (numeric.test(u) && (g === undefined || numeric.test(g))) return { uid: Number(u), gid: Number(g ?? u) }
  try {
    const passwd = read('/etc/passwd')
    const group = read('/etc/group')
    const r = resolveUser(u === 'root' ? '0' : u, passwd, group)
    let gid = r.gid
    if (g !== undefined) gid = numeric.test(g) ? Number(g) : resolveUser(`0:${g}`, passwd, group).gid
    else if (numeric.test(u)) gid = Number(u)
    return { uid: r.uid, gid }
  } catch (e) {
    fail('InvalidArgument', `failed to resolve --chown=${chown}: ${(e as Error).message}`, line)
  }
}

type Xattrs = { xattrs?: [string, string][] }
export type CopyStep =
  | { op: 'mkdirs'; dst: string; mode: number; uid: number; gid: number }
  | ({ op: 'dir'; dst: string; mode: number; uid: number; gid: number; mtime: string } & Xattrs)
  | ({ op: 'file'; src: string; dst: string; mode: number; uid: number; gid: number; mtime: string; expect?: string; /** The stat key vouching for `expect` (SourceEntry.verifiedKey). */ verified?: string; /** Link from the reuse root if it has it (./reuse.ts). */ reuse?: boolean } & Xattrs)
  | ({ op: 'symlink'; dst: string; target: string; uid: number; gid: number; mtime: string } & Xattrs)
  | { op: 'hardlink'; dst: string; target: string }
  | { op: 'dirTimes'; dst: string; mtime: string }

/** The destination as BuildKit computes it: absolute in the rootfs, a trailing `/` kept. */
export function destinationPath(dest: string, workdir: string): string {
  const abs = dest.startsWith('/') ? dest : path.posix.join(workdir || '/', dest)
  let d = path.posix.join('/', abs)
  if ((dest === '.' || dest === '' || dest.endsWith('/')) && d !== '/') d += '/'
  return d
}

/**
 * The native steps copying `planned` (read from `srcRoot` of `tree`) into the rootfs mounted
 * at `rootfs`. A context file's expected content is its entry's `sha256`.
 */
export function copySteps(opts: {
  planned: PlannedSource[]; tree: SourceTree; dest: string; rootfs: string; owner?: Owner; chmod?: number; line: number
}): CopyStep[] {
  const { planned, tree, rootfs, owner, chmod } = opts
  const steps: CopyStep[] = []
  const dirTimes: CopyStep[] = []
  const mkOwner = owner ?? { uid: 0, gid: 0 }
  const links = new Map<string, string>()
  const root: Owner = { uid: 0, gid: 0 }
  const ownerOf = (e: SourceEntry): Owner => owner ?? (tree.isContext ? root : e)
  const modeOf = (e: SourceEntry): number => (chmod !== undefined ? chmod : e.mode & 0o7777)
  const statDest = (p: string) => native.statInRoot(rootfs, p)
  const count = planned.reduce((n, p) => n + p.items.length, 0)
  const dest = opts.dest
  if ((count > 1 || planned.length > 1) && !dest.endsWith('/')) {
    fail('InvalidArgument', 'When using COPY with more than one source file, the destination must be a directory and end with a /', opts.line)
  }
  // One step per entry, built field by field (no spread per entry: a COPY may hold thousands).
  const emit = (e: SourceEntry, dst: string): void => {
    const { uid, gid } = ownerOf(e)
    let st: Exclude<CopyStep, { op: 'mkdirs' | 'hardlink' | 'dirTimes' }>
    if (isDirE(e)) {
      st = { op: 'dir', dst, mode: modeOf(e), uid, gid, mtime: e.mtimeNs }
      dirTimes.unshift({ op: 'dirTimes', dst, mtime: e.mtimeNs })
    } else if (isFileE(e)) {
      if (e.nlink > 1) {
        const key = `${e.dev}:${e.ino}`
        const first = links.get(key)
        if (first) {
          steps.push({ op: 'hardlink', dst, target: first })
          return
        }
        links.set(key, dst)
      }
      const file: Extract<CopyStep, { op: 'file' }> = { op: 'file', src: e.rel, dst, mode: modeOf(e), uid, gid, mtime: e.mtimeNs }
      const expect = tree.isContext ? e.sha256 : undefined
      if (expect) {
        file.expect = expect
        if (e.verifiedKey) file.verified = e.verifiedKey
      }
      st = file
    } else if (isLinkE(e)) {
      st = { op: 'symlink', dst, target: e.link ?? '', uid, gid, mtime: e.mtimeNs }
    } else {
      // Sockets, fifos and devices of a context are not copied (BuildKit's context transfer skips them).
      return
    }
    if (e.xattrs) st.xattrs = e.xattrs
    steps.push(st)
  }
  for (const p of planned) {
    for (const it of p.items) {
      const srcIsDir = isDirE(it.entry)
      const trimmed = dest.endsWith('/') && dest !== '/' ? dest.slice(0, -1) : dest
      const leaf = path.posix.basename(dest.endsWith('/') ? '' : dest)
      const ensure = leaf !== '' && leaf !== '.' ? path.posix.dirname(trimmed) : trimmed
      if (ensure !== '/' && ensure !== '') steps.push({ op: 'mkdirs', dst: ensure, mode: 0o755, ...mkOwner })
      // What is at the destination now, as far as the steps so far make it.
      const fiDest = statDest(trimmed) ?? (dest.endsWith('/') || ensure === trimmed ? { mode: S_IFDIR } : undefined)
      const destIsDir = fiDest !== undefined && isDirE(fiDest)
      let dst = trimmed
      if (!srcIsDir && fiDest !== undefined && destIsDir) dst = path.posix.join(trimmed, path.posix.basename(it.at === '.' ? it.entry.rel : it.at))
      const target = srcIsDir && fiDest === undefined ? dst : path.posix.dirname(dst)
      if (target !== '/' && target !== ensure) steps.push({ op: 'mkdirs', dst: target, mode: 0o755, ...mkOwner })
      if (srcIsDir) {
        if (fiDest === undefined) steps.push({ op: 'mkdirs', dst, mode: 0o755, ...mkOwner })
        const base = it.entry.rel
        // `path.posix.join(dst, below)` for a clean `dst` and the clean relative path of an entry
        // below the item, without normalising a thousand paths again.
        const under = dst === '/' ? '/' : `${dst}/`
        for (const c of it.children) emit(c, under + (base === '' ? c.rel : c.rel.slice(base.length + 1)))
      } else emit(it.entry, dst)
    }
  }
  return [...steps, ...dirTimes]
}

/** Runs copy steps reading from `srcRoot` (files marked `reuse`: linked from `reuseRoot` where it can), writing into `rootfs`. */
export async function runCopy(srcRoot: string, rootfs: string, steps: CopyStep[], cancel?: Parameters<typeof native.copyIn>[3], reuseRoot?: string): Promise<void> {
  if (steps.length === 0) return
  // Paths travel as strings, or as their bytes where they are not valid Unicode (../internal/bytepath.ts).
  // A path that is not (a lone surrogate) comes out of JSON.stringify as a `\udXXX` escape: without
  // one anywhere, the steps go as they are (a name holding that text only takes the long way).
  let json = JSON.stringify(steps)
  if (/\\ud[89a-f]/i.test(json)) {
    json = JSON.stringify(steps.map((st) => {
      const w: Record<string, unknown> = { ...st, dst: toWire(st.dst) }
      if ('src' in st) w.src = toWire(st.src)
      if ('target' in st) w.target = toWire(st.target)
      if ('xattrs' in st && st.xattrs) w.xattrs = st.xattrs.map(([k, v]) => [toWire(k), v])
      return w
    }))
  }
  await call(() => native.copyIn(srcRoot, rootfs, json, cancel, reuseRoot))
}

/** A tree of a few files written for heredoc sources (`COPY <<EOF /dest`). */
export async function heredocTree(dir: string, files: { name: string; content: string }[]): Promise<SourceTree> {
  await fs.mkdir(dir, { recursive: true })
  const entries = new Map<string, SourceEntry>()
  const now = `${BigInt(Date.now()) * 1_000_000n}`
  const st = await fs.stat(dir)
  entries.set('', { rel: '', mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 0, dev: st.dev, ino: st.ino, nlink: 2, mtimeNs: now })
  for (const f of files) {
    await fs.writeFile(path.join(dir, f.name), f.content, { mode: 0o644 })
    const fst = await fs.stat(path.join(dir, f.name))
    entries.set(f.name, { rel: f.name, mode: S_IFREG | 0o644, uid: 0, gid: 0, size: fst.size, dev: fst.dev, ino: fst.ino, nlink: 1, mtimeNs: now })
  }
  return {
    root: dir, isContext: false,
    get: async (rel) => entries.get(rel),
    children: async (rel) => (rel === '' ? [...entries.values()].filter((e) => e.rel !== '') : []),
  }
}

/** A source tree over a directory of the host (a stage's rootfs mount, an unpacked archive), scanned lazily. */
export function dirTree(root: string): SourceTree {
  const cache = new Map<string, SourceEntry[]>()
  const list = async (rel: string): Promise<SourceEntry[]> => {
    const hit = cache.get(rel)
    if (hit) return hit
    const [out] = await scanDirs(root, [rel])
    cache.set(rel, out)
    return out
  }
  return {
    root, isContext: false,
    get: async (rel) => {
      if (rel === '') return { rel: '', mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 0, dev: 0, ino: 0, nlink: 2, mtimeNs: '0' }
      const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : ''
      return (await list(parent)).find((e) => e.rel === rel)
    },
    children: list,
  }
}
