/**
 * Differential testing of the userspace union view against kernel overlayfs.
 *
 * One sequence = a seeded random layer stack (1–10 lowers, with whiteouts and opaque dirs) and
 * a seeded random list of operations. The operations run once through a real kernel overlay
 * mount and once through `UnionView`, each with its own (initially identical) upper dir over
 * the same read-only lowers. Compared afterwards:
 *  - the error code (or success) of every operation;
 *  - the merged trees (kernel mount walked with node:fs, view walked with the view's API);
 *  - the upper dirs: names, types, modes, owners, sizes, content hashes, link targets,
 *    whiteouts, nlink of regular files, xattrs (opaque included).
 *
 * Normalised, with reasons:
 *  - xattrs `trusted.overlay.origin`, `trusted.overlay.impure`, `trusted.overlay.uuid`: the
 *    kernel's own bookkeeping (file handles of the lower origin, "dir may hold entries with
 *    origin", per-fs uuid) used for inode-number and NFS-export consistency. They carry
 *    kernel-internal file handles, change no visible behaviour with index=off, and
 *    the kernel accepts an upper without them; the view neither reads nor writes them.
 *  - timestamps: lowers are stamped with a fixed mtime (EPOCH); we compare "mtime == EPOCH"
 *    for every non-directory (a copy-up must keep the lower times, a write must change them),
 *    not exact values, which depend on when each side ran. Directory mtimes are excluded:
 *    any entry created inside a directory sets its mtime to "now" on both sides.
 *  - nlink of whiteouts (the kernel shares one whiteout inode via hard links) and of
 *    directories (fs-specific); sizes of directories (fs-specific); inode numbers.
 *  - readdir order: compared sorted (the view sorts, the kernel returns hash order).
 */
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as path from 'node:path'
import * as os from 'node:os'
import { createHash } from 'node:crypto'
import { native } from '../../ts/native'
import { testing } from './testing'
import { rng } from './rng'
import { UnionView } from '../../ts/view'

export const EPOCH = 1_000_000_000
const NORMALISED_XATTRS = ['trusted.overlay.origin', 'trusted.overlay.impure', 'trusted.overlay.uuid']

export { rng }

/**
 * Mounts kernel overlayfs (`lowers` top first) as a container's rootfs is mounted: with the
 * options of the native core's container plan (`containerMountPlan`), so the view is compared
 * with the kernel under the options containers really use.
 */
export function mountOverlay(lowers: string[], upper: string, work: string, mnt: string): void {
  const plan = native.containerMountPlan(lowers, upper, work, mnt)
  testing.unionMountOverlay(plan.lowerdirs, plan.upperdir, plan.workdir, plan.options ?? [], plan.target)
}

/**
 * Unmounts. `lazy` detaches at once (MNT_DETACH): a synchronous umount followed by a new
 * overlay mount waits much longer on this kernel; the fuzzer does not touch the mount point
 * afterwards, only the upper dir, whose writes are already complete.
 */
export function umount(mnt: string, lazy = false): void {
  testing.unionUmount(mnt, lazy)
}

const NAMES = ['a', 'b', 'c', 'd']

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]
}

function randPath(r: () => number, maxDepth = 3): string {
  const depth = 1 + Math.floor(r() * maxDepth)
  const parts: string[] = []
  for (let i = 0; i < depth; i++) parts.push(pick(r, NAMES))
  return parts.join('/')
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p)
  } catch {
    return null
  }
}

/** Stamps every object under `dir` with EPOCH times (children before parents). */
function stamp(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) stamp(p)
    fs.lutimesSync(p, EPOCH, EPOCH)
  }
  fs.lutimesSync(dir, EPOCH, EPOCH)
}

const MODES = [0o644, 0o644, 0o755, 0o600, 0o640, 0o4755, 0o444]
const DIR_MODES = [0o755, 0o755, 0o700, 0o775, 0o1777]
const OWNERS = [0, 0, 1000, 1234]

/** Builds one random lower layer in `dir`; `below` lists paths that exist in layers under it. */
function buildLayer(r: () => number, dir: string, below: string[]): string[] {
  fs.mkdirSync(dir, { recursive: true })
  const made: string[] = []
  const n = 2 + Math.floor(r() * 8)
  const ensureParent = (p: string): boolean => {
    const parts = p.split('/')
    for (let i = 1; i < parts.length; i++) {
      const q = path.join(dir, ...parts.slice(0, i))
      const st = lstatOrNull(q)
      if (st && !st.isDirectory()) return false
      if (!st) {
        fs.mkdirSync(q, { mode: pick(r, DIR_MODES) })
        made.push(parts.slice(0, i).join('/'))
      }
    }
    return true
  }
  for (let i = 0; i < n; i++) {
    const useBelow = below.length > 0 && r() < 0.5
    const rel = useBelow ? pick(r, below) : randPath(r)
    const abs = path.join(dir, rel)
    if (lstatOrNull(abs) || !ensureParent(rel)) continue
    const k = r()
    if (k < 0.4) {
      fs.writeFileSync(abs, `${rel}:${Math.floor(r() * 1e6)}\n`.repeat(1 + Math.floor(r() * 3)))
      fs.chmodSync(abs, pick(r, MODES))
    } else if (k < 0.6) {
      fs.mkdirSync(abs, { mode: pick(r, DIR_MODES) })
      if (r() < 0.3) testing.unionSetOpaque(abs)
    } else if (k < 0.75) {
      testing.unionMakeWhiteout(abs)
    } else if (k < 0.88) {
      fs.symlinkSync(relTarget(r, rel), abs)
    } else {
      fs.writeFileSync(abs, '')
    }
    if (!useBelow || k >= 0.6) made.push(rel)
    const st = fs.lstatSync(abs)
    if (!st.isCharacterDevice() && r() < 0.3) fs.lchownSync(abs, pick(r, OWNERS), pick(r, OWNERS))
  }
  stamp(dir)
  return made
}

/**
 * Symlink targets are relative and never contain `..`: a link may later be renamed anywhere,
 * and a `..` that climbs above the root resolves on the host for a kernel mount but stays at
 * the root in the view (chroot semantics, by design) — not a comparable behaviour.
 */
function relTarget(r: () => number, _linkRel: string): string {
  if (r() < 0.15) return 'dangling'
  return randPath(r, 2)
}

export type Op =
  | { op: 'writeFile'; p: string; data: string }
  | { op: 'appendFile'; p: string; data: string }
  | { op: 'truncate'; p: string; len: number }
  | { op: 'unlink'; p: string }
  | { op: 'rmdir'; p: string }
  | { op: 'mkdir'; p: string; mode: number }
  | { op: 'rename'; p: string; to: string }
  | { op: 'chmod'; p: string; mode: number }
  | { op: 'chown'; p: string; uid: number; gid: number }
  | { op: 'symlink'; p: string; target: string }
  | { op: 'link'; p: string; to: string }
  | { op: 'utimes'; p: string; t: number }

export function genOps(r: () => number, count: number): Op[] {
  const ops: Op[] = []
  for (let i = 0; i < count; i++) {
    const p = randPath(r)
    const k = Math.floor(r() * 14)
    switch (k) {
      case 0:
      case 1:
        ops.push({ op: 'writeFile', p, data: `w${i}:${Math.floor(r() * 1e6)}` })
        break
      case 2:
        ops.push({ op: 'appendFile', p, data: `+${i}` })
        break
      case 3:
        ops.push({ op: 'truncate', p, len: Math.floor(r() * 8) })
        break
      case 4:
        ops.push({ op: 'unlink', p })
        break
      case 5:
        ops.push({ op: 'rmdir', p })
        break
      case 6:
      case 7:
        ops.push({ op: 'mkdir', p, mode: pick(r, DIR_MODES) })
        break
      case 8:
      case 9:
        ops.push({ op: 'rename', p, to: randPath(r) })
        break
      case 10:
        ops.push({ op: 'chmod', p, mode: pick(r, MODES) })
        break
      case 11:
        ops.push({ op: 'symlink', p, target: relTarget(r, p) })
        break
      case 12:
        ops.push({ op: 'link', p, to: randPath(r) })
        break
      default:
        if (r() < 0.5) ops.push({ op: 'chown', p, uid: pick(r, OWNERS), gid: pick(r, OWNERS) })
        else ops.push({ op: 'utimes', p, t: EPOCH + 12345 })
    }
  }
  return ops
}

/** The subset of fs/promises both sides offer. */
interface FsLike {
  writeFile(p: string, d: string): Promise<void>
  appendFile(p: string, d: string): Promise<void>
  truncate(p: string, len: number): Promise<void>
  unlink(p: string): Promise<void>
  rmdir(p: string): Promise<void>
  mkdir(p: string, o: { mode: number }): Promise<unknown>
  rename(a: string, b: string): Promise<void>
  chmod(p: string, m: number): Promise<void>
  chown(p: string, u: number, g: number): Promise<void>
  symlink(t: string, p: string): Promise<void>
  link(a: string, b: string): Promise<void>
  utimes(p: string, a: number, m: number): Promise<void>
  lstat(p: string): Promise<{ mode: number; uid: number; gid: number; size: number; nlink: number; mtimeMs: number; isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }>
  readdir(p: string): Promise<string[]>
  readFile(p: string): Promise<Buffer>
  readlink(p: string): Promise<string>
}

function kernelFs(mnt: string): FsLike {
  const j = (p: string) => path.join(mnt, p)
  return {
    writeFile: (p, d) => fsp.writeFile(j(p), d),
    appendFile: (p, d) => fsp.appendFile(j(p), d),
    truncate: (p, l) => fsp.truncate(j(p), l),
    unlink: (p) => fsp.unlink(j(p)),
    rmdir: (p) => fsp.rmdir(j(p)),
    mkdir: (p, o) => fsp.mkdir(j(p), o),
    rename: (a, b) => fsp.rename(j(a), j(b)),
    chmod: (p, m) => fsp.chmod(j(p), m),
    chown: (p, u, g) => fsp.chown(j(p), u, g),
    symlink: (t, p) => fsp.symlink(t, j(p)),
    link: (a, b) => fsp.link(j(a), j(b)),
    utimes: (p, a, m) => fsp.utimes(j(p), a, m),
    lstat: (p) => fsp.lstat(j(p)),
    readdir: (p) => fsp.readdir(j(p)),
    readFile: (p) => fsp.readFile(j(p)),
    readlink: (p) => fsp.readlink(j(p)),
  }
}

function viewFs(v: UnionView): FsLike {
  return {
    writeFile: (p, d) => v.writeFile(p, d),
    appendFile: (p, d) => v.appendFile(p, d),
    truncate: (p, l) => v.truncate(p, l),
    unlink: (p) => v.unlink(p),
    rmdir: (p) => v.rmdir(p),
    mkdir: (p, o) => v.mkdir(p, o),
    rename: (a, b) => v.rename(a, b),
    chmod: (p, m) => v.chmod(p, m),
    chown: (p, u, g) => v.chown(p, u, g),
    symlink: (t, p) => v.symlink(t, p),
    link: (a, b) => v.link(a, b),
    utimes: (p, a, m) => v.utimes(p, a, m),
    lstat: (p) => v.lstat(p),
    readdir: (p) => v.readdir(p),
    readFile: (p) => v.readFile(p),
    readlink: (p) => v.readlink(p),
  }
}

async function apply(f: FsLike, o: Op): Promise<string> {
  try {
    switch (o.op) {
      case 'writeFile':
        await f.writeFile(o.p, o.data)
        break
      case 'appendFile':
        await f.appendFile(o.p, o.data)
        break
      case 'truncate':
        await f.truncate(o.p, o.len)
        break
      case 'unlink':
        await f.unlink(o.p)
        break
      case 'rmdir':
        await f.rmdir(o.p)
        break
      case 'mkdir':
        await f.mkdir(o.p, { mode: o.mode })
        break
      case 'rename':
        await f.rename(o.p, o.to)
        break
      case 'chmod':
        await f.chmod(o.p, o.mode)
        break
      case 'chown':
        await f.chown(o.p, o.uid, o.gid)
        break
      case 'symlink':
        await f.symlink(o.target, o.p)
        break
      case 'link':
        await f.link(o.p, o.to)
        break
      case 'utimes':
        await f.utimes(o.p, o.t, o.t)
        break
    }
    return 'ok'
  } catch (e) {
    return String((e as { code?: string }).code ?? e)
  }
}

/** Walks a merged tree into comparable lines. */
export async function walkMerged(f: FsLike): Promise<string[]> {
  const out: string[] = []
  const visit = async (rel: string) => {
    let st: Awaited<ReturnType<FsLike['lstat']>>
    try {
      st = await f.lstat(rel || '.')
    } catch (e) {
      // Listed by readdir but not found: whiteouts in an unmerged dir (kernel quirk, reproduced).
      out.push(`${rel} listed-but-${(e as { code?: string }).code}`)
      return
    }
    const type = st.isDirectory() ? 'd' : st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : `x${(st.mode >>> 12).toString(8)}`
    let line = `${rel || '/'} ${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`
    if (type !== 'd') line += ` n${st.nlink} s${st.size} ${Math.floor(st.mtimeMs / 1000) === EPOCH ? 'epoch' : 'new'}`
    if (type === 'f') line += ` ${createHash('sha256').update(await f.readFile(rel)).digest('hex').slice(0, 16)}`
    if (type === 'l') line += ` -> ${await f.readlink(rel)}`
    out.push(line)
    if (type === 'd') {
      const names = (await f.readdir(rel || '.')).sort()
      for (const n of names) await visit(rel ? `${rel}/${n}` : n)
    }
  }
  await visit('')
  return out
}

/** Snapshot of a real upper dir into comparable lines (see the normalisations above). */
export async function walkUpper(dir: string): Promise<string[]> {
  const ents = await testing.unionSnapshot(dir)
  return ents.map((e) => {
    const fmt = e.mode & 0o170000
    const type = fmt === 0o040000 ? 'd' : fmt === 0o100000 ? 'f' : fmt === 0o120000 ? 'l' : fmt === 0o020000 ? (e.rdev === 0 ? 'WH' : 'c') : `x${fmt.toString(8)}`
    let line = `${e.path || '/'} ${type} ${(e.mode & 0o7777).toString(8)} ${e.uid}:${e.gid}`
    if (type !== 'd') line += ` s${e.size} ${Number(e.mtimeNs / 1_000_000_000n) === EPOCH ? 'epoch' : 'new'}`
    if (type === 'f') line += ` n${e.nlink} ${e.hash?.slice(7, 23)}`
    if (e.target !== undefined && e.target !== null) line += ` -> ${e.target}`
    const xs = e.xattrs.filter((x) => !NORMALISED_XATTRS.includes(x.slice(0, x.indexOf('='))))
    if (xs.length) line += ` [${xs.join(',')}]`
    return line
  })
}

export interface SeqResult {
  seed: number
  ok: boolean
  detail?: string
  ops: Op[]
  layers: number
}

function firstDiff(a: string[], b: string[]): string | undefined {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `kernel: ${a[i] ?? '(none)'}\n  view: ${b[i] ?? '(none)'}`
  return undefined
}

/** Runs one seeded sequence on both sides and compares. Keeps the work dir on divergence. */
export async function runSequence(seed: number, root: string, opCount = 24): Promise<SeqResult> {
  const r = rng(seed)
  const base = path.join(root, `s${seed}`)
  fs.rmSync(base, { recursive: true, force: true })
  fs.mkdirSync(base, { recursive: true })
  const nLayers = 1 + Math.floor(r() * 10)
  const lowers: string[] = []
  let below: string[] = []
  for (let i = 0; i < nLayers; i++) {
    const d = path.join(base, `L${i}`)
    below = below.concat(buildLayer(r, d, below))
    lowers.unshift(d) // top first
  }
  const ops = genOps(r, opCount)
  const [uk, wk, uv, wv, mnt] = ['uk', 'wk', 'uv', 'wv', 'm'].map((n) => path.join(base, n))
  for (const d of [uk, wk, uv, wv, mnt]) fs.mkdirSync(d)
  fs.chmodSync(uk, 0o755)
  fs.chmodSync(uv, 0o755)

  mountOverlay(lowers, uk, wk, mnt)
  const kCodes: string[] = []
  let kTree: string[]
  try {
    const kf = kernelFs(mnt)
    for (const o of ops) kCodes.push(await apply(kf, o))
    kTree = await walkMerged(kf)
  } finally {
    umount(mnt, true)
  }
  const view = await UnionView.open({ lowers, upper: uv, work: seed % 2 ? wv : undefined })
  const vf = viewFs(view)
  const vCodes: string[] = []
  for (const o of ops) vCodes.push(await apply(vf, o))
  const vTree = await walkMerged(vf)

  const res: SeqResult = { seed, ok: true, ops, layers: nLayers }
  for (let i = 0; i < ops.length; i++) {
    if (kCodes[i] !== vCodes[i]) {
      res.ok = false
      res.detail = `op #${i} ${JSON.stringify(ops[i])}: kernel ${kCodes[i]}, view ${vCodes[i]}`
      break
    }
  }
  if (res.ok) {
    const d = firstDiff(kTree, vTree)
    if (d) Object.assign(res, { ok: false, detail: `merged tree differs:\n  ${d}` })
  }
  if (res.ok) {
    const d = firstDiff(await walkUpper(uk), await walkUpper(uv))
    if (d) Object.assign(res, { ok: false, detail: `upper dir differs:\n  ${d}` })
  }
  if (res.ok) fs.rmSync(base, { recursive: true, force: true })
  else res.detail += `\n  (kept ${base}; ops: ${JSON.stringify(ops)})`
  return res
}

export function fuzzRoot(): string {
  const d = fs.mkdtempSync(path.join(process.env.STRATA_FUZZ_DIR ?? os.tmpdir(), 'strata-ufz-'))
  process.umask(0o022)
  return d
}
