/**
 * `docker system df [-v]`: what the store's images, containers and caches take, with the seeds'
 * point made in numbers — a layer is stored once however many images use it, so an image's
 * SIZE splits into SHARED SIZE (its layers that other images use too) and UNIQUE SIZE, and the
 * images' total is the size of the distinct layers, not the sum of the images' sizes.
 *
 * As the daemon of Docker 20.10 computes it (daemon/disk_usage.go, images.Images with extra
 * attributes): the images are those `images` lists (intermediate ones left out), their layers
 * counted among those images; the containers are all of them with their writable layers' sizes.
 * Volumes: none here. Build cache: the build's cache records (ts/build/cache.ts), each the size of
 * its layer; what images use too is "shared" and not counted again in the builder's size.
 */
import { StoreContext } from './context'
import { chainIdsOf } from './chain'
import type { Images } from './images'
import type { Containers, ContainerSummary } from './containers/containers'

export interface ImageDiskUsage {
  id: string
  repoTags: string[]
  repoDigests: string[]
  created?: Date
  /** The image's size: all its layers. */
  size: number
  /** Of that, the layers at least one other image uses too. */
  sharedSize: number
  /** Containers using it. */
  containers: number
  labels: Record<string, string>
}

/** A build cache record. */
export interface BuildCacheUsage {
  id: string
  type: string
  size: number
  createdAt: Date
  lastUsedAt?: Date
  usageCount: number
  inUse: boolean
  shared: boolean
}

export interface DiskUsage {
  /** The distinct layers of the images: what they take on disk. */
  layersSize: number
  images: ImageDiskUsage[]
  /** Every container, newest first, with `sizeRw` and `sizeRootFs`. */
  containers: ContainerSummary[]
  volumes: never[]
  buildCache: BuildCacheUsage[]
  builderSize: number
}

export async function diskUsage(ctx: StoreContext, images: Images, containers: Containers): Promise<DiskUsage> {
  return ctx.shared(async () => {
    const rows = await images.list()
    const chains = new Map<string, string[]>()
    const refs = new Map<string, number>()
    const sizes = new Map<string, number>()
    for (const row of rows) {
      const img = await ctx.images.get(row.id)
      const ids = img ? chainIdsOf(img.config.rootfs.diff_ids) : []
      chains.set(row.id, ids)
      for (const c of ids) {
        refs.set(c, (refs.get(c) ?? 0) + 1)
        if (!sizes.has(c)) sizes.set(c, (await ctx.layers.get(c))?.size ?? 0)
      }
    }
    const out: ImageDiskUsage[] = rows.map((row) => ({
      id: row.id, repoTags: row.repoTags, repoDigests: row.repoDigests, ...(row.created ? { created: row.created } : {}),
      size: row.size, containers: row.containers, labels: row.labels,
      sharedSize: (chains.get(row.id) ?? []).filter((c) => (refs.get(c) ?? 0) > 1).reduce((n, c) => n + (sizes.get(c) ?? 0), 0),
    }))
    const layersSize = [...sizes.values()].reduce((n, s) => n + s, 0)
    const inImages = new Set<string>()
    for (const img of await ctx.images.all()) for (const c of chainIdsOf(img.config.rootfs.diff_ids)) inImages.add(c)
    const buildCache: BuildCacheUsage[] = (await ctx.buildCache.all())
      .map((r) => ({
        id: r.key.slice(7, 32), type: 'regular', size: r.diffId ? r.size : 0, createdAt: new Date(r.created), lastUsedAt: r.lastUsed,
        usageCount: 1, inUse: false, shared: inImages.has(r.chainId),
      }))
      .sort((a, b) => b.lastUsedAt.getTime() - a.lastUsedAt.getTime())
    const builderSize = buildCache.filter((b) => !b.shared).reduce((n, b) => n + b.size, 0)
    return { layersSize, images: out, containers: await containers.list({ all: true, size: true }), volumes: [], buildCache, builderSize }
  })
}
