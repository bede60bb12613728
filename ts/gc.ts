/**
 * Which image layers are in use, and collecting the rest. A layer is in use while an image lists
 * it, a container sits on it (or on a layer above it), or a lease pins it (./leases.ts). Every
 * removal of image layers — rmi, rm of a container whose image was force-removed, a lease
 * released after its image went, the cleanup pass on open — asks this one place.
 * The caller holds the exclusive store lock.
 */
import type { StoreContext } from './context'
import { chainIdsOf } from './chain'
import { leasedLayers } from './leases'

/** ChainIDs of every layer in use. */
export async function layersInUse(ctx: StoreContext): Promise<Set<string>> {
  const used = new Set<string>(leasedLayers(ctx))
  for (const img of await ctx.images.all()) for (const c of chainIdsOf(img.config.rootfs.diff_ids)) used.add(c)
  for (const top of await ctx.containerLayerParents()) {
    for (let cur: string | undefined = top; cur && !used.has(cur); cur = (await ctx.layers.get(cur))?.parent) used.add(cur)
  }
  return used
}

/** Removes every layer not in use; returns how many went. */
export async function collectLayers(ctx: StoreContext): Promise<number> {
  const used = await layersInUse(ctx)
  let removed = 0
  for (const chainId of await ctx.layers.list()) {
    if (used.has(chainId)) continue
    await ctx.layers.remove(chainId)
    removed++
  }
  return removed
}
