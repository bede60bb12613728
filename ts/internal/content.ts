/**
 * The content store: compressed layer blobs as a registry served them (`content/blobs/sha256/`),
 * kept so a pulled layer can be pushed again with its original compressed digest, and partial
 * downloads (`content/ingest/`) that the next pull resumes. A blob lives as long as some layer's
 * `compressed-digest` names it (containerd's content store, garbage-collected with the layers).
 */
import { fsp as fs } from './lazy'
import path = require('node:path')
import { StoreContext } from './context'
import { listDir, exists, fsyncDir } from './fsx'
import { native } from './native'

/** Partial downloads untouched this long are removed by the cleanup pass. */
export const PARTIAL_MAX_AGE_MS = 24 * 3600 * 1000

/**
 * Moves a verified blob into the content store (caller holds the store lock); false when the
 * store had it already (the file is then removed).
 */
export async function adoptBlob(ctx: StoreContext, digest: string, file: string): Promise<boolean> {
  const dest = ctx.layout.blob(digest)
  if (await exists(dest)) {
    await fs.rm(file, { force: true })
    return false
  }
  await fs.mkdir(ctx.layout.blobs, { recursive: true }) // a store made before the content store
  await fs.rename(file, dest)
  await fsyncDir(ctx.layout.blobs)
  return true
}

/**
 * Compressed digests of the layers the store still needs — `StoreContext.usedLayers`, the one
 * answer to "what is still needed" that rmi, container removal, build-cache pruning and cleanup
 * all ask: a blob lives exactly as long as a needed layer names it.
 */
async function neededDigests(ctx: StoreContext): Promise<Set<string>> {
  const out = new Set<string>()
  for (const chainId of await ctx.usedLayers()) {
    const d = (await ctx.layers.get(chainId))?.compressedDigest
    if (d) out.add(d)
  }
  return out
}

/**
 * Removes the blobs of `digests` (those of layers just removed) that no needed layer names any
 * more; every path that removes layers calls it (caller holds the store lock).
 */
export async function releaseBlobs(ctx: StoreContext, digests: Iterable<string | undefined>): Promise<void> {
  const wanted = [...digests].filter((d): d is string => Boolean(d))
  if (wanted.length === 0) return
  const needed = await neededDigests(ctx)
  for (const d of wanted) if (!needed.has(d)) await fs.rm(ctx.layout.blob(d), { force: true })
}

export interface ContentCleanup {
  removedBlobs: number
  removedPartials: number
}

/**
 * Cleanup on open (store lock held): blobs no needed layer names (a pull that died between
 * moving a blob in and registering its layer, a layer removal that died before its blobs went),
 * and partial downloads older than a day that no live pull holds.
 */
export async function cleanupContent(ctx: StoreContext, now = Date.now()): Promise<ContentCleanup> {
  const report: ContentCleanup = { removedBlobs: 0, removedPartials: 0 }
  const needed = await neededDigests(ctx)
  for (const name of await listDir(ctx.layout.blobs)) {
    if (needed.has(`sha256:${name}`)) continue
    await fs.rm(path.join(ctx.layout.blobs, name), { force: true })
    report.removedBlobs++
  }
  report.removedPartials = await cleanupPartials(ctx, now)
  return report
}

/** Removes partial downloads untouched for a day that no live pull holds; returns how many. */
export async function cleanupPartials(ctx: StoreContext, now = Date.now()): Promise<number> {
  let removed = 0
  for (const name of await listDir(ctx.layout.ingest)) {
    const p = path.join(ctx.layout.ingest, name)
    const st = await fs.stat(p).catch(() => undefined)
    if (!st || now - st.mtimeMs < PARTIAL_MAX_AGE_MS) continue
    // A pull holds a flock on the partial it writes (crates/strata-registry/src/pull.rs).
    const lock = native.tryLock(p, true)
    if (!lock) continue
    try {
      await fs.rm(p, { force: true })
      removed++
    } finally {
      lock.release()
    }
  }
  return removed
}
