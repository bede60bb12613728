/**
 * `docker cp`, the client's half (docker/cli `container/cp.go` with moby's archive `copy.go`):
 * decide from the source and the destination what to archive, how to rename its entries and
 * where to unpack them — a trailing `/` or `/.` asserts a directory (`/.` copies its contents),
 * `-L` follows a final symlink of the source, a symlink destination is followed — then run the
 * daemon's half (./archive-path.ts) on the container side and the same archive code on the
 * host side. `-` streams a tar archive: to a Writable from a container, from a Readable into one.
 *
 * Errors read as docker's: the daemon's (`Could not find the file ...`) carry codes the CLI
 * prefixes with "Error response from daemon: "; the client's (`lstat /x: no such file or
 * directory`, `cannot copy directory`) do not.
 */
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { StrataError } from '../errors'
import { UnionView } from '../view'
import { TarEntry, TAR_TRAILER_SIZE, readTar, tarEntrySize, writeTar } from '../archive/tarstream'
import { tarWithOptions, unpack } from '../archive/treetar'
import {
  assertsDirectory, base, clean, dir, getRebaseName, hasTrailingSeparator, isAbs, join, preserveTrailingDotOrSeparator,
  split, splitPathDirEntry,
} from '../archive/gopath'
import { CopyHost, containerArchivePath, containerExtractToDir, containerStatPath, isDirMode, isSymlinkMode } from './archive-path'

export interface CopyFromOptions {
  /** `-L`: a symlink source is followed (its target copied under the link's name). */
  followLink?: boolean
  /** Bytes of the tar stream so far (called as entries go). */
  onProgress?: (bytes: number) => void
}

export interface CopyToOptions {
  /** `-L`: a symlink source is followed. */
  followLink?: boolean
  /** `-a`: owners become the container's configured user. */
  copyUIDGID?: boolean
  /** Bytes of the tar stream so far (called as entries go). */
  onProgress?: (bytes: number) => void
}

export interface CopyResult {
  /** Bytes of the tar stream that crossed between the two sides (what docker counts). */
  bytes: number
  /** Where it went, as docker prints it (`/abs/dest`, or `CONTAINER:path`). */
  destination: string
}

interface CopyInfo {
  path: string
  exists: boolean
  isDir: boolean
  rebaseName: string
}

/** Go's `*PathError` text: `op path: strerror`. */
function pathError(op: string, p: string, e: NodeJS.ErrnoException): StrataError {
  const text: Record<string, string> = {
    ENOENT: 'no such file or directory', ENOTDIR: 'not a directory', EACCES: 'permission denied', ELOOP: 'too many levels of symbolic links',
  }
  return new StrataError('Io', `${op} ${p}: ${text[e.code ?? ''] ?? e.message}`, { syscode: e.code, path: p, cause: e })
}

async function lstat(p: string): Promise<import('node:fs').Stats> {
  try {
    return await fs.lstat(p)
  } catch (e) {
    throw pathError('lstat', p, e as NodeJS.ErrnoException)
  }
}

/** Go `filepath.EvalSymlinks`: errors name the first component that is missing. */
async function evalSymlinks(p: string): Promise<string> {
  try {
    return await fs.realpath(p)
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') throw pathError('lstat', p, err)
    let cur = ''
    for (const part of clean(p).split('/').filter(Boolean)) {
      cur = `${cur}/${part}`
      await lstat(cur)
    }
    throw pathError('lstat', p, err)
  }
}

/** `resolveLocalPath`: absolute, keeping a trailing `/` or `/.`. */
function resolveLocalPath(p: string): string {
  return preserveTrailingDotOrSeparator(path.resolve(p), p)
}

/** moby `CopyInfoSourcePath` / `ResolveHostSourcePath`. */
async function copyInfoSourcePath(p: string, followLink: boolean): Promise<CopyInfo> {
  let resolved: string
  let rebaseName = ''
  if (followLink) {
    ;[resolved, rebaseName] = getRebaseName(p, await evalSymlinks(p))
  } else {
    const [dirPath, basePath] = split(p)
    const resolvedDir = await evalSymlinks(dirPath || '.')
    resolved = `${resolvedDir === '/' ? '' : resolvedDir}/${basePath}`
    if (hasTrailingSeparator(p) && base(p) !== base(resolved)) rebaseName = base(p)
  }
  const st = await lstat(resolved)
  return { path: resolved, exists: true, isDir: st.isDirectory(), rebaseName }
}

/** moby `CopyInfoDestinationPath`: a symlink destination is followed (10 links at most). */
async function copyInfoDestinationPath(p: string): Promise<CopyInfo> {
  let cur = p
  let st = await fs.lstat(cur).catch((e: NodeJS.ErrnoException) => e)
  for (let n = 0; !(st instanceof Error) && st.isSymbolicLink(); n++) {
    if (n > 10) throw new StrataError('Io', `too many symlinks in ${p}`)
    let target = await fs.readlink(cur)
    if (!isAbs(target)) target = join(splitPathDirEntry(cur)[0], target)
    cur = target
    st = await fs.lstat(cur).catch((e: NodeJS.ErrnoException) => e)
  }
  if (st instanceof Error) {
    if (st.code !== 'ENOENT') throw pathError('lstat', cur, st)
    const parent = splitPathDirEntry(cur)[0]
    let pst
    try {
      pst = await fs.stat(parent)
    } catch (e) {
      throw pathError('stat', parent, e as NodeJS.ErrnoException)
    }
    if (!pst.isDirectory()) throw new StrataError('NotADirectory', 'not a directory')
    return { path: cur, exists: false, isDir: false, rebaseName: '' }
  }
  return { path: cur, exists: true, isDir: st.isDirectory(), rebaseName: '' }
}

/** moby `RebaseArchiveEntries`: the first `oldBase` in each name (and hard link target) → `newBase`. */
async function* rebased(entries: AsyncIterable<TarEntry>, oldBase: string, newBase: string): AsyncGenerator<TarEntry> {
  const from = oldBase === '/' ? '' : oldBase
  for await (const e of entries) {
    const name = e.name.replace(from, () => newBase)
    yield { ...e, name, linkname: e.type === 'link' ? e.linkname.replace(from, () => newBase) : e.linkname }
  }
}

/**
 * moby `PrepareArchiveCopy`: the directory to unpack into, and the entries renamed so that
 * what lands there has the destination's name.
 */
function prepareArchiveCopy(entries: AsyncIterable<TarEntry>, src: CopyInfo, dst: CopyInfo): { dstDir: string; entries: AsyncIterable<TarEntry> } {
  const [dstDir, dstBase] = splitPathDirEntry(dst.path)
  let srcBase = splitPathDirEntry(src.path)[1]
  if (dst.exists && dst.isDir) return { dstDir: dst.path, entries }
  if (dst.exists && src.isDir) throw new StrataError('InvalidArgument', 'cannot copy directory')
  if (!dst.exists && !src.isDir && assertsDirectory(dst.path)) throw new StrataError('InvalidArgument', 'no such directory')
  if (src.rebaseName) srcBase = src.rebaseName
  return { dstDir, entries: rebased(entries, srcBase, dstBase) }
}

/** Counts what the entries would take as a tar stream (docker's "Successfully copied" size). */
async function* counted(entries: AsyncIterable<TarEntry>, total: { bytes: number }, onProgress?: (bytes: number) => void): AsyncGenerator<TarEntry> {
  for await (const e of entries) {
    yield e
    total.bytes += tarEntrySize(e)
    try { onProgress?.(total.bytes) } catch { /* a progress display must not fail the copy */ }
  }
  total.bytes += TAR_TRAILER_SIZE
  try { onProgress?.(total.bytes) } catch { /* as above */ }
}

/** Docker's `ValidateOutputPath` for a host destination. */
async function validateOutputPath(p: string): Promise<void> {
  const d = dir(clean(p))
  if (d !== '' && d !== '.') {
    const ok = await fs.stat(d).then(() => true, (e: NodeJS.ErrnoException) => e.code !== 'ENOENT')
    if (!ok) throw new StrataError('InvalidArgument', `invalid output path: directory ${JSON.stringify(d)} does not exist`)
  }
  const st = await fs.stat(p).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(pathError('stat', p, e))))
  if (st && !st.isDirectory() && !st.isFile() && (st.isCharacterDevice() || st.isBlockDevice())) {
    throw new StrataError('InvalidArgument', `invalid output path: ${JSON.stringify(p)} must be a directory or a regular file: got a device`)
  }
}

/** A host directory as a view: the archive code resolves paths inside it, as inside a container. */
async function hostView(dirPath: string, writable: boolean): Promise<UnionView> {
  return writable ? UnionView.open({ lowers: [], upper: dirPath }) : UnionView.open({ lowers: [dirPath] })
}

/** `docker cp CONTAINER:SRC DEST|-`. */
export async function copyFromContainer(host: CopyHost, srcPath: string, dest: string | Writable, opts: CopyFromOptions = {}): Promise<CopyResult> {
  let dstPath = ''
  if (typeof dest === 'string') {
    dstPath = resolveLocalPath(dest)
    await validateOutputPath(dstPath)
  }
  let src = srcPath
  let rebaseName = ''
  if (opts.followLink) {
    const st = await containerStatPath(host, src).catch(() => undefined)
    if (st && isSymlinkMode(st.mode)) {
      let target = st.linkTarget
      if (!isAbs(target)) target = join(splitPathDirEntry(src)[0], target)
      ;[target, rebaseName] = getRebaseName(src, target)
      src = target
    }
  }
  const { stat, entries } = await containerArchivePath(host, src)
  const total = { bytes: 0 }
  if (typeof dest !== 'string') {
    total.bytes = await writeTar(entries, dest)
    return { bytes: total.bytes, destination: '-' }
  }
  const srcInfo: CopyInfo = { path: src, exists: true, isDir: isDirMode(stat.mode), rebaseName }
  let content: AsyncIterable<TarEntry> = counted(entries, total, opts.onProgress)
  if (rebaseName) content = rebased(content, splitPathDirEntry(srcInfo.path)[1], rebaseName)
  const dstInfo = await copyInfoDestinationPath(dstPath)
  const prepared = prepareArchiveCopy(content, srcInfo, dstInfo)
  const view = await hostView(prepared.dstDir, true)
  await unpack(view, '/', prepared.entries, { lchown: false, noOverwriteDirNonDir: true, dirAtime: 'mtime' })
  return { bytes: total.bytes, destination: dstPath }
}

/** `docker cp SRC|- CONTAINER:DEST`. */
export async function copyToContainer(host: CopyHost, src: string | Readable, dstPath: string, opts: CopyToOptions = {}): Promise<CopyResult> {
  const srcPath = typeof src === 'string' ? resolveLocalPath(src) : ''
  const name = await host.name()
  const dstInfo: CopyInfo = { path: dstPath, exists: false, isDir: false, rebaseName: '' }
  let dstStat = await containerStatPath(host, dstPath).catch(() => undefined)
  if (dstStat && isSymlinkMode(dstStat.mode)) {
    let target = dstStat.linkTarget
    if (!isAbs(target)) target = join(splitPathDirEntry(dstPath)[0], target)
    dstInfo.path = target
    dstStat = await containerStatPath(host, target).catch(() => undefined)
  }
  if (dstStat && ((dstStat.mode & 0o170000) === 0o020000 || (dstStat.mode & 0o170000) === 0o060000)) {
    throw new StrataError('InvalidArgument', `destination "${name}:${dstPath}" must be a directory or a regular file: got a device`)
  }
  if (dstStat) {
    dstInfo.exists = true
    dstInfo.isDir = isDirMode(dstStat.mode)
  }
  const total = { bytes: 0 }
  let content: AsyncIterable<TarEntry>
  let dstDir: string
  if (typeof src !== 'string') {
    if (!dstInfo.isDir) throw new StrataError('InvalidArgument', `destination "${name}:${dstPath}" must be a directory`)
    content = readTar(src)
    dstDir = dstInfo.path
  } else {
    const srcInfo = await copyInfoSourcePath(srcPath, Boolean(opts.followLink))
    await lstat(srcInfo.path)
    const [sourceDir, sourceBase] = splitPathDirEntry(srcInfo.path)
    const view = await hostView(sourceDir, false)
    const archived = tarWithOptions(view, '/', {
      includeFiles: [sourceBase], includeSourceDir: true, rebaseNames: { [sourceBase]: srcInfo.rebaseName },
    })
    const prepared = prepareArchiveCopy(archived, srcInfo, dstInfo)
    content = counted(prepared.entries, total, opts.onProgress)
    dstDir = prepared.dstDir
  }
  await containerExtractToDir(host, dstDir, content, { copyUIDGID: Boolean(opts.copyUIDGID), noOverwriteDirNonDir: true })
  return { bytes: total.bytes, destination: `${name}:${dstInfo.path}` }
}
