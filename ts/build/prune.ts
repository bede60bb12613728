/**
 * `builder prune`: removes build cache records and then the layers nothing needs any more.
 *
 * Without `all`, only records whose layer no image uses ("dangling" cache); with `all`, every
 * record. `keepStorage` keeps the most recently used records whose layers add up to at most
 * that many bytes (the least recently used go first). Layers go only when no image, container
 * or remaining record needs them (`StoreContext.usedLayers`), top first. A prune that removes
 * a record also drops the `COPY --from` memos (`builder/fromkeys/`, recomputed when needed).
 */
import * as fs from 'node:fs/promises'
import { StoreContext } from '../context'
import { chainIdsOf } from '../chain'
import { releaseBlobs } from '../content'

export interface PruneOptions {
  /** Every record, not only those no image uses. */
  all?: boolean
  /** Bytes of cached layers to keep (most recently used first). */
  keepStorage?: number
}

export interface PruneResult {
  /** Keys of the records removed. */
  deleted: string[]
  /** Bytes of layer content removed from disk. */
  reclaimed: number
}

export async function pruneBuildCache(ctx: StoreContext, opts: PruneOptions = {}): Promise<PruneResult> {
  return ctx.exclusive(async () => {
    const records = await ctx.buildCache.all()
    const inImages = new Set<string>()
    for (const img of await ctx.images.all()) for (const c of chainIdsOf(img.config.rootfs.diff_ids)) inImages.add(c)
    let candidates = records.filter((r) => opts.all || !inImages.has(r.chainId))
    candidates.sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime())
    if (opts.keepStorage !== undefined) {
      let total = records.reduce((n, r) => n + (r.diffId ? r.size : 0), 0)
      const chosen = []
      for (const r of candidates) {
        if (total <= opts.keepStorage) break
        chosen.push(r)
        if (r.diffId) total -= r.size
      }
      candidates = chosen
    }
    for (const r of candidates) await ctx.buildCache.remove(r.key)
    // The COPY --from memos (./fromkey.ts) are recomputable; they go with any pruned record.
    if (candidates.length > 0) await fs.rm(ctx.layout.fromKeys, { recursive: true, force: true })
    // Layers of the removed records (and below) that nothing else needs now.
    const used = await ctx.usedLayers()
    let reclaimed = 0
    const blobs: (string | undefined)[] = []
    for (const r of candidates) {
      let cur: string | undefined = r.chainId
      while (cur && !used.has(cur)) {
        const l = await ctx.layers.get(cur)
        if (!l) break
        await ctx.layers.remove(cur)
        blobs.push(l.compressedDigest)
        reclaimed += l.size
        used.add(cur)
        cur = l.parent
      }
    }
    await releaseBlobs(ctx, blobs)
    return { deleted: candidates.map((r) => r.key), reclaimed }
  })
}
