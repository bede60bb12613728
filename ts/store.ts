/**
 * `Store`: the public, promise-based entry point. Every blocking step runs off the event loop
 * (in the native addon's thread pool); long operations take `onProgress` and `signal`.
 *
 * ```ts
 * const store = await Store.open({ root: '/var/lib/strata' })
 * const { images } = await store.load('busybox.tar')
 * await store.images.tag(images[0].id, 'bb:latest')
 * console.log(await store.images.list())
 * ```
 */
import * as fs from 'node:fs/promises'
import type { Readable, Writable } from 'node:stream'
import { Layout } from './layout'
import { StoreContext } from './context'
import { cleanup, CleanupReport } from './cleanup'
import { load, LoadInput, LoadOptions, LoadResult } from './archive/load'
import { save, SaveOptions } from './archive/save'
import { importImage, ImportOptions } from './archive/import'
import { Images, ImageUsers } from './images'
import { ioError } from './errors'
import { Containers } from './containers/containers'
import { expose } from './boundary'
import * as v from './validate'
import { diskUsage, DiskUsage } from './system'
import type { ImagePruneOptions, ImagePruneResult, ContainerPruneResult } from './prune'

export const DEFAULT_ROOT = '/var/lib/strata'

export interface StoreOptions {
  /** Store root; default `$STRATA_ROOT` or `/var/lib/strata`. */
  root?: string
}

export class Store {
  readonly #ctx: StoreContext
  readonly images: Images
  /** Containers: create / get / list / remove; run, mount, diff, commit, export one. */
  readonly containers: Containers
  /** What the cleanup pass on open removed. */
  readonly recovered: CleanupReport
  /** Hook the container layer sets so images know who uses them. */
  #users: ImageUsers = async () => []

  private constructor(ctx: StoreContext, recovered: CleanupReport) {
    this.#ctx = ctx
    this.recovered = recovered
    this.images = new Images(ctx, (id) => this.#users(id))
    this.containers = new Containers(ctx)
    this.#users = (id) => this.containers.users(id)
  }

  static async open(opts: StoreOptions = {}): Promise<Store> {
    const root = opts.root ?? process.env.STRATA_ROOT ?? DEFAULT_ROOT
    const layout = new Layout(root)
    try {
      for (const d of layout.dirs) await fs.mkdir(d, { recursive: true, mode: 0o711 })
    } catch (e) {
      throw ioError(e as NodeJS.ErrnoException, `cannot create store at ${root}: ${(e as Error).message}`)
    }
    const ctx = new StoreContext(layout)
    const recovered = await ctx.exclusive(() => cleanup(ctx))
    const store = new Store(ctx, recovered)
    // Stale mounts and states a crashed process left (after cleanup, which keeps container layers).
    await ctx.exclusive(() => store.containers.repair())
    // What the repair removed is gone before the store is handed out.
    await ctx.drain()
    return store
  }

  get root(): string {
    return this.#ctx.layout.root
  }

  /** `docker load`: a docker-archive or OCI layout (path to tar/dir, or a stream). */
  load(input: LoadInput, opts?: LoadOptions): Promise<LoadResult> {
    return load(this.#ctx, input, opts)
  }

  /** `docker save`: images (one name or a list) to a tar file, an OCI layout directory, or a stream. */
  save(images: string | string[], output: string | Writable, opts?: SaveOptions): Promise<void> {
    return save(this.#ctx, typeof images === 'string' ? [images] : images, output, opts)
  }

  /** `docker import`: a rootfs tarball to a one-layer image; returns the image ID. */
  import(input: string | Readable, opts?: ImportOptions): Promise<string> {
    return importImage(this.#ctx, input, opts)
  }

  /** `docker system df`: the images' layers (shared ones counted once), containers, caches. */
  diskUsage(): Promise<DiskUsage> {
    return diskUsage(this.#ctx, this.images, this.containers)
  }

  /**
   * `docker system prune [-a]`: stopped containers, then dangling images (every image without a
   * container with `all`), with the same filters.
   */
  async prune(opts: ImagePruneOptions = {}): Promise<{ containers: ContainerPruneResult; images: ImagePruneResult; spaceReclaimed: number }> {
    const containers = await this.containers.prune(opts.filters ?? {})
    const images = await this.images.prune(opts)
    return { containers, images, spaceReclaimed: containers.spaceReclaimed + images.spaceReclaimed }
  }

  /** @internal used by the container layer. */
  setImageUsers(users: ImageUsers): void {
    this.#users = users
  }

  /** @internal */
  get context(): StoreContext {
    return this.#ctx
  }

  /**
   * Waits for background work (deletions of removed containers, a container skeleton being
   * built) and removes this process's staged skeletons. Nothing else is held between calls.
   */
  async close(): Promise<void> {
    await this.containers.dispose()
    await this.#ctx.drain()
  }
}

const signal = v.optional(v.signal)

expose(Store, {
  load: [['input', v.either(v.nonEmptyString, v.readable)], ['opts', v.optional(v.options({ onProgress: v.optional(v.func), signal }))]],
  save: [
    ['images', v.either(v.nonEmptyString, v.arrayOf(v.nonEmptyString))],
    ['output', v.either(v.nonEmptyString, v.writable)],
    ['opts', v.optional(v.options({ format: v.optional(v.oneOf('docker', 'oci')), signal }))],
  ],
  import: [
    ['input', v.either(v.nonEmptyString, v.readable)],
    ['opts', v.optional(v.options({
      ref: v.optional(v.string), message: v.optional(v.string), changes: v.optional(v.arrayOf(v.string)),
      sourceName: v.optional(v.string), platform: v.optional(v.options({ os: v.optional(v.string), architecture: v.optional(v.string) })),
      onProgress: v.optional(v.func), signal,
    }))],
  ],
  close: [],
  diskUsage: [],
  prune: [['opts', v.optional(v.options({ all: v.optional(v.boolean), filters: v.optional(v.recordOf(v.arrayOf(v.string))) }))]],
}, {
  open: [['opts', v.optional(v.options({ root: v.optional(v.nonEmptyString) }))]],
})
