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
import { StrataError } from './errors'
import { Containers } from './containers/containers'
import { pull, PullOptions, PullResult } from './registry/pull'
import { DockerConfig, configDir, keyForRegistry } from './registry/credentials'
import { RegistryAuth } from './registry/client'
import { parseNormalizedNamed } from './reference'
import { login, logout, search } from './registry/account'
import { LoginOptions, LoginResult, LogoutResult } from './registry/login'
import { SearchOptions, SearchResult } from './registry/search'
import { PushOptions, PushResult } from './registry/push'
import { pushImage, storePushDeps, registryAuth } from './registry/push-image'

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
  /** Hook the container layer sets so images know who uses them. */
  #users: ImageUsers = async () => []
  #dockerConfig?: string

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
      throw new StrataError('Io', `cannot create store at ${root}: ${(e as Error).message}`, { syscode: (e as NodeJS.ErrnoException).code, path: root })
    }
    const ctx = new StoreContext(layout)
    const recovered = await ctx.exclusive(() => cleanup(ctx))
    const store = new Store(ctx, recovered)
    if (opts.dockerConfig !== undefined) store.#dockerConfig = opts.dockerConfig
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

  /**
   * `docker pull`: a reference (`busybox`, `localhost:5000/x:1`, `x@sha256:...`) from its registry,
   * every layer streamed into the store at once; `platform` picks from a multi-platform index.
   */
  async pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
    // Credentials as `docker pull` finds them, unless the caller gave some.
    const auth = opts.auth ?? (await this.#storedAuth(parseNormalizedNamed(ref).domain))
    return pull(this.#ctx, ref, { ...opts, ...(auth ? { auth } : {}) })
  }

  async #storedAuth(domain: string): Promise<RegistryAuth | undefined> {
    const a = await this.credentials().get(keyForRegistry(domain))
    return a && registryAuth(a)
  }

  /** Docker's credentials store as this store uses it (`config.json` and its helpers). */
  credentials(): DockerConfig {
    return new DockerConfig(this.#dockerConfig ?? configDir())
  }

  /**
   * `docker login`: checks the credentials against the registry (`GET /v2/` through the auth
   * flow), then stores them where Docker keeps them. `server` defaults to Docker Hub. With no
   * username and password, the stored credentials are checked again.
   */
  login(server?: string, opts?: LoginOptions): Promise<LoginResult> {
    return login(this.#ctx.layout, this.credentials(), server, opts)
  }

  /** `docker logout`: removes the stored credentials of `server` (default Docker Hub). */
  logout(server?: string): Promise<LogoutResult> {
    return logout(this.credentials(), server)
  }

  /**
   * `docker search`: Docker Hub's search API where a registry has it, else the registry's
   * catalog (`localhost:5000/foo` searches that registry for repositories containing `foo`).
   */
  search(term: string, opts?: SearchOptions): Promise<SearchResult[]> {
    return search(this.#ctx.layout, this.credentials(), term, opts)
  }

  /**
   * `docker push`: an image (`NAME[:TAG]`, `latest` by default) or with `allTags` every tag of
   * NAME, to its registry; records the RepoDigest. Layers strata has a compressed blob for go
   * as they are; others are compressed while they upload, and that blob is kept.
   */
  push(ref: string, opts?: PushOptions): Promise<PushResult> {
    return pushImage(this.#ctx, storePushDeps(this.#ctx, this.credentials()), ref, opts)
  }

  /** `docker save`: images to a tar file, an OCI layout directory, or a stream. */
  save(images: string[], output: string | Writable, opts?: SaveOptions): Promise<void> {
    return save(this.#ctx, images, output, opts)
  }

  /** `docker import`: a rootfs tarball to a one-layer image; returns the image ID. */
  import(input: string | Readable, opts?: ImportOptions): Promise<string> {
    return importImage(this.#ctx, input, opts)
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
