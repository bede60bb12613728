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
import { fsp as fs } from './internal/lazy'
import type { Readable, Writable } from 'node:stream'
import path = require('node:path')
import { Layout } from './internal/layout'
import { StoreContext } from './internal/context'
import { cleanup, CleanupReport, stagingLeftovers } from './internal/cleanup'
import type { LoadInput, LoadOptions, LoadResult } from './archive/load'
import type { SaveOptions } from './archive/save'
import type { ImportOptions } from './archive/import'
import { Images } from './images'
import { ioError } from './errors'
import { Containers } from './containers/containers'
import type { PullOptions, PullResult } from './registry/pull'
import { cleanupPartials } from './internal/content'
import type { DockerConfig } from './registry/credentials'
import type { RegistryAuth } from './registry/client'
import { parseNormalizedNamed } from './reference'
import type { LoginOptions, LoginResult, LogoutResult } from './registry/login'
import type { SearchOptions, SearchResult } from './registry/search'
import type { PushOptions, PushResult } from './registry/push'
// What only writing, pulling, pushing or building needs loads when it first runs (required in
// place, as the builder with dockerfile-ast, child processes and crypto): a read-only CLI command
// would otherwise compile and evaluate it on every start (bench/cli.js), and the CLI's read-only
// bundle (scripts/bundle-cli.js) leaves it out.
import type { BuildOptions, BuildResult } from './build/builder'
import type { PruneOptions, PruneResult } from './build/prune'
import { expose } from './internal/boundary'
import { noWriterMidChange } from './internal/lock'
import * as v from './internal/validate'
import { diskUsage, DiskUsage } from './system'
import type { ImagePruneOptions, ImagePruneResult, ContainerPruneResult } from './prune'

export const DEFAULT_ROOT = '/var/lib/strata'

export interface StoreOptions {
  /** Store root; default `$STRATA_ROOT` or `/var/lib/strata`. */
  root?: string
  /**
   * Docker's config dir, where registry credentials live (`config.json`, credential helpers);
   * default `$DOCKER_CONFIG`, else `~/.docker` (read when a registry operation runs).
   */
  dockerConfig?: string
}

export class Store {
  readonly #ctx: StoreContext
  readonly images: Images
  /** Containers: create / get / list / remove; run, mount, diff, commit, export one. */
  readonly containers: Containers
  /** What the cleanup pass on open removed. */
  readonly recovered: CleanupReport
  #dockerConfig?: string

  private constructor(ctx: StoreContext, recovered: CleanupReport) {
    this.#ctx = ctx
    this.recovered = recovered
    this.containers = new Containers(ctx)
    // Images ask the containers who uses an image (rmi's conflict rules).
    this.images = new Images(ctx, (id) => this.containers.users(id))
  }

  /**
   * Opens (creating if needed) the store at `root`. The cleanup pass and the full container
   * repair run only when something can have been left half-done: a writer that died
   * (./internal/writers.ts), staging no live process holds, or a store that has never recorded its
   * writers. Otherwise an open is two or three readdirs, plus a look at each container's own
   * files for what only they can show (a supervisor gone, mounts that disagree with the kernel).
   */
  /** The store root `opts` name, as spelled there (else `STRATA_ROOT`, else the default). */
  static #rootOf(opts: StoreOptions): string {
    return opts.root ?? process.env.STRATA_ROOT ?? DEFAULT_ROOT
  }

  /** The layout of that root, made absolute: mount plans (overlay lowerdirs) and runc bundles need absolute paths. */
  static #layoutOf(opts: StoreOptions): Layout {
    return new Layout(path.resolve(Store.#rootOf(opts)))
  }

  static async open(opts: StoreOptions = {}): Promise<Store> {
    const root = Store.#rootOf(opts)
    const layout = Store.#layoutOf(opts)
    const ctx = new StoreContext(layout)
    const dead = ctx.writers.dead()
    if (dead === undefined) {
      try {
        for (const d of layout.dirs) await fs.mkdir(d, { recursive: true, mode: 0o711 })
      } catch (e) {
        throw ioError(e as NodeJS.ErrnoException, `cannot create store at ${root}: ${(e as Error).message}`)
      }
    }
    if (dead === undefined || dead.length > 0 || stagingLeftovers(layout)) {
      const recovered = await ctx.exclusive(() => cleanup(ctx))
      const store = new Store(ctx, recovered)
      store.#dockerConfig = opts.dockerConfig
      // Stale mounts and states a crashed process left (after cleanup, which keeps container layers).
      await ctx.exclusive(() => store.containers.repair())
      // What the repair removed is gone before the store is handed out.
      await ctx.drain()
      ctx.writers.forget(dead ?? [])
      return store
    }
    // Partial downloads age out even when no writer died (a pull that lost its registry ends cleanly).
    const store: Store = new Store(ctx, { removedStaging: 0, removedLayers: 0, removedDirs: 0, removedBlobs: 0, removedPartials: await cleanupPartials(ctx) })
    await store.containers.repairStale()
    store.#dockerConfig = opts.dockerConfig
    await ctx.drain()
    return store
  }

  /**
   * @internal For the CLI's read-only commands, whose sections only read: opens the store with
   * those sections run without the flock, checked against the write generation
   * (`StoreContext.optimisticReads`, ./internal/lock.ts). While the generation is even, no writer
   * died mid-change since the last one ended its changes, so nothing a read can see needs
   * repair: what `open`'s passes clear up (staging dirs, orphaned layers, old partial downloads,
   * records of writers that died between changes) is invisible to readers and is left to the
   * next writer's open. Only containers are looked at, with `containers` (a supervisor that
   * died changes what `ps` and `inspect` print: ./containers/containers.ts `repairStale`).
   * Otherwise (an odd, torn or missing generation) this is `open`.
   */
  static async openReader(opts: StoreOptions, { containers }: { containers: boolean }): Promise<Store> {
    const layout = Store.#layoutOf(opts)
    if (!noWriterMidChange(layout.lockGenFile)) {
      const store = await Store.open(opts)
      store.#ctx.optimisticReads = true
      return store
    }
    const ctx = new StoreContext(layout)
    ctx.optimisticReads = true
    const store = new Store(ctx, { removedStaging: 0, removedLayers: 0, removedDirs: 0, removedBlobs: 0, removedPartials: 0 })
    store.#dockerConfig = opts.dockerConfig
    if (containers) await store.containers.repairStale()
    return store
  }

  get root(): string {
    return this.#ctx.layout.root
  }

  /** `docker load`: a docker-archive or OCI layout (path to tar/dir, or a stream). */
  load(input: LoadInput, opts?: LoadOptions): Promise<LoadResult> {
    const { load } = require('./archive/load') as typeof import('./archive/load')
    return load(this.#ctx, input, opts)
  }

  /**
   * `docker pull`: a reference (`busybox`, `localhost:5000/x:1`, `x@sha256:...`) from its registry,
   * every layer streamed into the store at once; `platform` picks from a multi-platform index.
   */
  async pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
    // Credentials as `docker pull` finds them, unless the caller gave some.
    const auth = opts.auth ?? (await this.#storedAuth(parseNormalizedNamed(ref).domain))
    const { pull } = require('./registry/pull') as typeof import('./registry/pull')
    return pull(this.#ctx, ref, { ...opts, ...(auth ? { auth } : {}) })
  }

  async #storedAuth(domain: string): Promise<RegistryAuth | undefined> {
    const { keyForRegistry } = require('./registry/credentials') as typeof import('./registry/credentials')
    const { registryAuth } = require('./registry/push-image') as typeof import('./registry/push-image')
    const a = await this.credentials().get(keyForRegistry(domain))
    return a && registryAuth(a)
  }

  /** Docker's credentials store as this store uses it (`config.json` and its helpers). */
  credentials(): DockerConfig {
    const { DockerConfig, configDir } = require('./registry/credentials') as typeof import('./registry/credentials')
    return new DockerConfig(this.#dockerConfig ?? configDir())
  }

  /**
   * `docker login`: checks the credentials against the registry (`GET /v2/` through the auth
   * flow), then stores them where Docker keeps them. `server` defaults to Docker Hub. With no
   * username and password, the stored credentials are checked again.
   */
  login(server?: string, opts?: LoginOptions): Promise<LoginResult> {
    const { login } = require('./registry/account') as typeof import('./registry/account')
    return login(this.#ctx.layout, this.credentials(), server, opts)
  }

  /** `docker logout`: removes the stored credentials of `server` (default Docker Hub). */
  logout(server?: string): Promise<LogoutResult> {
    const { logout } = require('./registry/account') as typeof import('./registry/account')
    return logout(this.credentials(), server)
  }

  /**
   * `docker search`: Docker Hub's search API where a registry has it, else the registry's
   * catalog (`localhost:5000/foo` searches that registry for repositories containing `foo`).
   */
  search(term: string, opts?: SearchOptions): Promise<SearchResult[]> {
    const { search } = require('./registry/account') as typeof import('./registry/account')
    return search(this.#ctx.layout, this.credentials(), term, opts)
  }

  /**
   * `docker push`: an image (`NAME[:TAG]`, `latest` by default) or with `allTags` every tag of
   * NAME, to its registry; records the RepoDigest. Layers strata has a compressed blob for go
   * as they are; others are compressed while they upload, and that blob is kept.
   */
  push(ref: string, opts?: PushOptions): Promise<PushResult> {
    const { pushImage, storePushDeps } = require('./registry/push-image') as typeof import('./registry/push-image')
    return pushImage(this.#ctx, storePushDeps(this.#ctx, this.credentials()), ref, opts)
  }

  /** `docker save`: images (one name or a list) to a tar file, an OCI layout directory, or a stream. */
  save(images: string | string[], output: string | Writable, opts?: SaveOptions): Promise<void> {
    const { save } = require('./archive/save') as typeof import('./archive/save')
    return save(this.#ctx, typeof images === 'string' ? [images] : images, output, opts)
  }

  /** `docker import`: a rootfs tarball to a one-layer image; returns the image ID. */
  import(input: string | Readable, opts?: ImportOptions): Promise<string> {
    const { importImage } = require('./archive/import') as typeof import('./archive/import')
    return importImage(this.#ctx, input, opts)
  }

  /**
   * `docker build`: a Dockerfile and its context to an image, with a content-addressed layer
   * cache (see ts/build/builder.ts). Resolves with the image ID; `tags` move only on success.
   */
  async build(opts: BuildOptions): Promise<BuildResult> {
    const { build } = require('./build/builder') as typeof import('./build/builder')
    // Registries (a missing base image, a registry cache) are reached with the stored credentials.
    return build(this.#ctx, opts, this.credentials())
  }

  /** `docker builder prune`: removes build cache records and the layers only they kept. */
  async pruneBuildCache(opts?: PruneOptions): Promise<PruneResult> {
    const { pruneBuildCache } = require('./build/prune') as typeof import('./build/prune')
    return pruneBuildCache(this.#ctx, opts)
  }

  /** `docker system df`: the images' layers (shared ones counted once), containers, caches. */
  diskUsage(): Promise<DiskUsage> {
    return diskUsage(this.#ctx, this.images, this.containers)
  }

  /**
   * `docker system prune [-a]`: stopped containers, then dangling images (every image without a
   * container with `all`), with the same filters, then the build cache (unused records, all with
   * `all`).
   */
  async prune(opts: ImagePruneOptions = {}): Promise<{ containers: ContainerPruneResult; images: ImagePruneResult; buildCache: PruneResult; spaceReclaimed: number }> {
    const containers = await this.containers.prune(opts.filters ?? {})
    const images = await this.images.prune(opts)
    const buildCache = await this.pruneBuildCache({ all: Boolean(opts.all) })
    return { containers, images, buildCache, spaceReclaimed: containers.spaceReclaimed + images.spaceReclaimed + buildCache.reclaimed }
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
    this.#ctx.release()
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
  pull: [['ref', v.nonEmptyString], ['opts', v.optional(v.options({
    platform: v.optional(v.nonEmptyString), allTags: v.optional(v.boolean), onProgress: v.optional(v.func), signal,
    auth: v.optional(v.options({ username: v.optional(v.string), password: v.optional(v.string), identityToken: v.optional(v.string), registryToken: v.optional(v.string) })),
  }))]],
  push: [['ref', v.nonEmptyString], ['opts', v.optional(v.options({ allTags: v.optional(v.boolean), onProgress: v.optional(v.func), signal }))]],
  login: [['server', v.optional(v.string)], ['opts', v.optional(v.options({ username: v.optional(v.string), password: v.optional(v.string), signal }))]],
  logout: [['server', v.optional(v.string)]],
  search: [['term', v.nonEmptyString], ['opts', v.optional(v.options({
    limit: v.optional(v.count), registry: v.optional(v.nonEmptyString), pageSize: v.optional(v.count), signal,
    filters: v.optional(v.options({ stars: v.optional(v.nonNegative), isOfficial: v.optional(v.boolean), isAutomated: v.optional(v.boolean) })),
  }))]],
  credentials: { args: [], sync: true },
  build: [['opts', v.options({
    context: v.nonEmptyString, dockerfile: v.optional(v.nonEmptyString), dockerfileText: v.optional(v.string),
    tags: v.optional(v.arrayOf(v.nonEmptyString)), buildArgs: v.optional(v.recordOf(v.string)), target: v.optional(v.nonEmptyString),
    noCache: v.optional(v.boolean), noCacheFilter: v.optional(v.arrayOf(v.nonEmptyString)), network: v.optional(v.oneOf('host', 'none')),
    labels: v.optional(v.recordOf(v.string)),
    cacheFrom: v.optional(v.arrayOf(v.either(v.options({ type: v.oneOf('local'), dir: v.nonEmptyString }), v.options({ type: v.oneOf('registry'), ref: v.nonEmptyString })))),
    cacheTo: v.optional(v.arrayOf(v.either(v.options({ type: v.oneOf('local'), dir: v.nonEmptyString, mode: v.optional(v.oneOf('min', 'max')) }), v.options({ type: v.oneOf('registry'), ref: v.nonEmptyString, mode: v.optional(v.oneOf('min', 'max')) })))),
    contextLimits: v.optional(v.options({ maxEntries: v.optional(v.count), maxBytes: v.optional(v.nonNegative) })),
    onProgress: v.optional(v.func), signal,
  })]],
  pruneBuildCache: [['opts', v.optional(v.options({ all: v.optional(v.boolean), keepStorage: v.optional(v.nonNegative), filter: v.optional(v.arrayOf(v.string)) }))]],
  close: [],
  diskUsage: [],
  prune: [['opts', v.optional(v.options({ all: v.optional(v.boolean), filters: v.optional(v.recordOf(v.arrayOf(v.string))) }))]],
}, {
  open: [['opts', v.optional(v.options({ root: v.optional(v.nonEmptyString), dockerConfig: v.optional(v.nonEmptyString) }))]],
})
