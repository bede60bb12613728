/**
 * Collecting image layers nothing uses any more (`StoreContext.usedLayers` says what is in use:
 * images, containers, build cache records, live leases). Run by the cleanup pass on open and
 * when a lease goes after its image was removed (./leases.ts). The caller holds the exclusive
 * store lock.
 */
import type { StoreContext } from './context'

/** Removes every layer not in use; returns how many went. */
export async function collectLayers(ctx: StoreContext): Promise<number> {
  const used = await ctx.usedLayers()
  let removed = 0
  for (const chainId of await ctx.layers.list()) {
    if (used.has(chainId)) continue
    await ctx.layers.remove(chainId)
    removed++
  }
  return removed
}
