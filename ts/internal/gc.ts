/**
 * Collecting image layers nothing uses any more (`StoreContext.usedLayers` says what is in use:
 * images, containers, build cache records, live leases). Run by the cleanup pass on open and
 * when a lease goes after its image was removed (./leases.ts). The caller holds the exclusive
 * store lock. The compressed blobs of the layers that go, if no needed layer names them any
 * more, go with them (./content.ts).
 */
import type { StoreContext } from './context'
import { releaseBlobs } from './content'

/** Removes every layer not in use; returns how many went. */
export async function collectLayers(ctx: StoreContext): Promise<number> {
  const used = await ctx.usedLayers()
  const blobs: (string | undefined)[] = []
  for (const chainId of await ctx.layers.list()) {
    if (used.has(chainId)) continue
    blobs.push((await ctx.layers.get(chainId))?.compressedDigest)
    await ctx.layers.remove(chainId)
  }
  await releaseBlobs(ctx, blobs)
  return blobs.length
}
