/**
 * The daemon's half of `docker cp` (moby daemon/archive.go, container/archive.go): stat a path
 * in a container, archive it, extract an archive into a directory of it. Paths are resolved the
 * daemon's way — every symlink followed inside the container's root (`FollowSymlinkInScope`),
 * the last element kept as it is for archives and stats, followed for extraction points.
 *
 * The container's files are reached without mounting anything when it is not mounted (the
 * userspace union view over its layers: reads from the layer holding each file, writes copied
 * up as overlayfs would), and through its mounted rootfs when it is (running, or `strata
 * mount`ed: two writers must not share an upper dir, so writes go through the kernel's mount),
 * held by a mount reference while the copy runs.
 */
import { spawn } from 'node:child_process'
import { StrataError } from '../errors'
import { UnionView } from '../view'
import { TarEntry } from '../archive/tarstream'
import { OwnerNames, tarWithOptions, unpack } from '../archive/treetar'
import { base, clean, isAbs, join, preserveTrailingDotOrSeparator, split } from '../archive/gopath'

/** What `docker cp` learns of a path in a container (`ContainerPathStat`). */
export interface PathStat {
  name: string
  size: number
  /** Unix mode with file-type bits. */
  mode: number
  mtime: Date
  /** For a symlink: where it leads, fully resolved inside the container (absolute). */
  linkTarget: string
}

export function isDirMode(mode: number): boolean {
  return (mode & 0o170000) === 0o040000
}

export function isSymlinkMode(mode: number): boolean {
  return (mode & 0o170000) === 0o120000
}

/** A view of a container's files for one copy; `release()` drops what holds them. */
export interface ContainerFiles {
  view: UnionView
  release(): Promise<void>
}

/** How a container lends its files to a copy (implemented by `Container`). */
export interface CopyHost {
  files(write: boolean): Promise<ContainerFiles>
  /** The name users know it by (errors say it). */
  name(): Promise<string>
  /** `Config.User` (`-a` chowns to it). */
  configUser(): Promise<string>
}

function code(e: unknown): string | undefined {
  return (e as StrataError).syscode ?? (e as StrataError).code
}

/** moby `FollowSymlinkInScope`: `p` with every symlink resolved inside the view's root. */
export async function followSymlinkInScope(view: UnionView, p: string): Promise<string> {
  let rest = clean(`/${p}`)
  let done = ''
  for (let n = 0; rest !== ''; n++) {
    if (n > 255) throw new StrataError('ELOOP', `evalSymlinksInScope: too many links in ${p}`, { syscode: 'ELOOP' })
    const i = rest.indexOf('/')
    const part = i < 0 ? rest : rest.slice(0, i)
    rest = i < 0 ? '' : rest.slice(i + 1)
    if (part === '') continue
    const cleanP = clean(`/${done}${part}`)
    if (cleanP === '/') {
      done = ''
      continue
    }
    let st
    try {
      st = await view.lstat(cleanP)
    } catch (e) {
      if (code(e) === 'ENOENT') {
        done += `${part}/`
        continue
      }
      throw e
    }
    if (!st.isSymbolicLink()) {
      done += `${part}/`
      continue
    }
    const dest = await view.readlink(cleanP)
    if (isAbs(dest)) done = ''
    rest = `${dest}/${rest}`
  }
  return clean(`/${done}`)
}

/** moby `ResolvePath`: the dir part followed in scope, the last element appended as is. */
async function resolvePath(view: UnionView, p: string): Promise<{ resolved: string; absPath: string }> {
  const absPath = preserveTrailingDotOrSeparator(join('/', p), p)
  const [dirPath, basePath] = split(absPath)
  const resolvedDir = await followSymlinkInScope(view, dirPath)
  return { resolved: `${resolvedDir === '/' ? '' : resolvedDir}/${basePath}`, absPath }
}

async function statResolved(view: UnionView, resolved: string, absPath: string): Promise<PathStat> {
  const st = await view.lstat(resolved)
  const linkTarget = st.isSymbolicLink() ? await followSymlinkInScope(view, absPath) : ''
  return { name: base(absPath), size: st.size, mode: st.mode, mtime: st.mtime, linkTarget }
}

/** `Could not find the file X in container Y` for what does not exist. */
async function notFound<T>(host: CopyHost, p: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (e) {
    if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') {
      throw new StrataError('PathNotFound', `Could not find the file ${p} in container ${await host.name()}`, { cause: e })
    }
    throw e
  }
}

/** `docker container stat` (the HEAD the CLI sends before a copy). */
export async function containerStatPath(host: CopyHost, p: string): Promise<PathStat> {
  const files = await host.files(false)
  try {
    return await notFound(host, p, async () => {
      const { resolved, absPath } = await resolvePath(files.view, p)
      return statResolved(files.view, resolved, absPath)
    })
  } finally {
    await files.release()
  }
}

/** uid/gid → names from the container's own passwd and group (moby reads them in a chroot). */
async function ownerNames(view: UnionView): Promise<OwnerNames> {
  const read = (f: string) => view.readFile(f, 'utf8').catch(() => undefined)
  return new OwnerNames(await read('/etc/passwd'), await read('/etc/group'))
}

/**
 * moby `containerArchivePath`: the stat of `p`, and its archive — entries named from the last
 * element of the requested path (a symlink's target is archived under the link's name).
 * The container's files stay held until the entries have been read to the end.
 */
export async function containerArchivePath(host: CopyHost, p: string): Promise<{ stat: PathStat; entries: AsyncIterable<TarEntry> }> {
  const files = await host.files(false)
  try {
    const { stat, sourceDir, sourceBase, absPath } = await notFound(host, p, async () => {
      const r = await resolvePath(files.view, p)
      const st = await statResolved(files.view, r.resolved, r.absPath)
      let resolved = clean(r.resolved)
      if (base(resolved) === '.') resolved += '/.'
      let dir = resolved
      let b = '.'
      if (!isDirMode(st.mode)) [dir, b] = split(resolved)
      return { stat: st, sourceDir: dir, sourceBase: b, absPath: r.absPath }
    })
    const names = await ownerNames(files.view)
    async function* entries(): AsyncGenerator<TarEntry> {
      try {
        yield* tarWithOptions(files.view, sourceDir, {
          includeFiles: [sourceBase], includeSourceDir: true, rebaseNames: { [sourceBase]: base(absPath) }, names,
        })
      } finally {
        await files.release()
      }
    }
    return { stat, entries: entries() }
  } catch (e) {
    await files.release()
    throw e
  }
}

export interface ExtractOptions {
  /** `-a`: owners become the container's user (Config.User), when it has one. */
  copyUIDGID?: boolean
  /** Refuse to replace a directory by a non-directory or the reverse. */
  noOverwriteDirNonDir?: boolean
}

/** `getent passwd NAME`: the daemon looks Config.User up on the host (idtools.LookupUser). */
function lookupHostUser(name: string): Promise<{ uid: number; gid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('getent', ['passwd', name], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.on('error', (e) => reject(new StrataError('Io', `getent: ${e.message}`)))
    child.on('close', () => {
      const f = out.trim().split(':')
      if (f.length < 4) reject(new StrataError('InvalidArgument', `getent unable to find entry "${name}" in passwd database`))
      else resolve({ uid: Number(f[2]), gid: Number(f[3]) })
    })
  })
}

/**
 * moby `containerExtractToDir`: `p` (every symlink followed, the last one too) must be a
 * directory; the entries are unpacked into it. Owners: the entries' own (Lchown), or with
 * `copyUIDGID` the container's configured user. Errors of the unpacking read as the daemon's
 * do (`Error processing tar file(exit status 1): ...`).
 */
export async function containerExtractToDir(host: CopyHost, p: string, entries: AsyncIterable<TarEntry>, opts: ExtractOptions = {}): Promise<void> {
  const user = opts.copyUIDGID ? await host.configUser() : ''
  const chown = user ? await lookupHostUser(user) : undefined
  const files = await host.files(true)
  try {
    const dest = await notFound(host, p, async () => {
      const absPath = preserveTrailingDotOrSeparator(join('/', p), p)
      const resolved = await followSymlinkInScope(files.view, absPath)
      const st = await files.view.lstat(resolved)
      if (!st.isDirectory()) throw new StrataError('NotADirectory', 'extraction point is not a directory')
      return resolved
    })
    try {
      await unpack(files.view, dest, entries, { lchown: true, ...(chown ? { chown } : {}), noOverwriteDirNonDir: Boolean(opts.noOverwriteDirNonDir), dirAtime: 'epoch' })
    } catch (e) {
      const se = e instanceof StrataError ? e : new StrataError('Io', (e as Error).message, { cause: e })
      throw new StrataError(se.code, `Error processing tar file(exit status 1): ${se.message}`, { cause: e, ...(se.syscode ? { syscode: se.syscode } : {}) })
    }
  } finally {
    await files.release()
  }
}
