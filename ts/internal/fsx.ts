/** Small async filesystem helpers shared by the store modules. */
import { fsp as fs } from './lazy'
import { randomBytes } from './random'
import fsSync = require('node:fs')
import path = require('node:path')
import { native, nativeLoaded } from './native'
import { call } from '../errors'
import { writeAll, writeFileSynced } from './metawrites'

export { fsyncDir } from './metawrites'

/** Whether `p` exists (not following a final symlink); an lstat on the calling thread. */
export async function exists(p: string): Promise<boolean> {
  return fsSync.lstatSync(p, { throwIfNoEntry: false }) !== undefined
}

/**
 * Reads one of the store's metadata files (ids, links, records, image configs: bytes to a few
 * hundred KiB), or `undefined` if it does not exist. Read on the calling thread: from the page
 * cache that takes a few microseconds, while a trip to the thread pool and back takes 40-80, and
 * these reads are most of what create/mount/rm would otherwise wait for. Files that can be large
 * or that a container controls (logs, files inside a rootfs) go through `readFileIfExists`.
 */
export async function readIfExists(p: string): Promise<string | undefined> {
  return readBytesIfExists(p).then((b) => b?.toString('utf8'))
}

/**
 * The bytes of a metadata file, or `undefined` if it does not exist (see `readIfExists`). Through
 * the addon once it is loaded (a missing file is no exception there); before, Node's own read,
 * so a read-only CLI command need not load the addon for it (./native.ts).
 */
export async function readBytesIfExists(p: string): Promise<Buffer | undefined> {
  if (nativeLoaded()) return (await call(() => native.readSmallFileSync(p))) ?? undefined
  try {
    return fsSync.readFileSync(p)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

/** Reads any file off the JS thread (one native task), or `undefined` if it does not exist. */
export async function readFileIfExists(p: string): Promise<string | undefined> {
  return ((await call(() => native.readSmallFile(p))) ?? undefined)?.toString('utf8')
}

/** Reads a small UTF-8 file that must exist (a missing one is an ENOENT error, as fs.readFile gives). */
export async function mustRead(p: string): Promise<string> {
  const s = await readIfExists(p)
  if (s === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: 'ENOENT', errno: -2, syscall: 'open', path: p })
  return s
}

/**
 * Writes `data` atomically: temp file beside it, fsync, rename, fsync the directory. On any
 * failure (ENOSPC while writing) the file is as it was and no temp file is left.
 */
export async function writeAtomic(p: string, data: string | Uint8Array): Promise<void> {
  await writeAll((w) => w.put(p, data))
}

/** Writes a small file and fsyncs it (for files inside a staging dir that is renamed later). */
export async function writeDurable(p: string, data: string | Uint8Array): Promise<void> {
  await writeFileSynced(p, data)
}

/** Lists a directory of the store, or `[]` if it does not exist (on the calling thread, as `readIfExists`). */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return fsSync.readdirSync(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw e
  }
}

/** Random lowercase hex of `bytes` bytes. */
export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex')
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** Random uppercase base32 string, as Docker's overlay2 short link names. */
export function randomBase32(length: number): string {
  const bytes = randomBytes(length)
  let s = ''
  for (let i = 0; i < length; i++) s += BASE32[bytes[i] & 31]
  return s
}

/** Removes a tree; moves it aside first so a crash never leaves a half-deleted dir at its name. */
export async function removeTree(p: string, graveyard: string): Promise<void> {
  const aside = path.join(graveyard, `rm-${path.basename(p)}-${randomHex(4)}`)
  try {
    await fs.rename(p, aside)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
    throw e
  }
  await fs.rm(aside, { recursive: true, force: true })
}
