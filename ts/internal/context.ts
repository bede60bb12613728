/**
 * What the store's modules share: the layout, the three dbs, the store lock and staging dirs.
 * Internal; the public surface is `Store` (ts/store.ts).
 */
import { statSync, rmSync, mkdirSync, renameSync } from 'node:fs'
import path = require('node:path')
import { Layout, MOUNT_FILE } from './layout'
import { LayerStore } from './layers'
import { ImageDb } from './imagedb'
import { Repositories } from './repositories'
import { native, fsBatch } from './native'
import { call, toStrataError, StrataError } from '../errors'
import { randomHex, listDir, readIfExists } from './fsx'
import { Writers } from './writers'
import { StoreLock, LockMode } from './lock'
import { asChainId, chainIdsOf, type ChainId } from './chain'
import { BuildCache } from '../build/cache'
import { leasedLayers } from './leases'

/** A staging dir under `<root>/tmp`, owned (locked) by this process until disposed. */
export interface Staging {
  dir: string
  dispose(): Promise<void>
  /**
   * Like `dispose`, but the files go in the background (`StoreContext.reclaim`): the dir is
   * renamed aside at once and the lock released; `drain()` waits for the deletion.
   */
  disposeLater(): Promise<void>
}

export class StoreContext {
  readonly layers: LayerStore
  readonly images: ImageDb
  readonly repos: Repositories
  /** Build cache records (ts/build/cache.ts): they keep the layers they name alive. */
  readonly buildCache: BuildCache
  /** This process's entry in `writers/`, made before the first change (./writers.ts). */
  readonly writers: Writers
  /**
   * Build steps this process is making now, by cache key: a concurrent build that needs the
   * same step waits for it and takes its record instead of making the layer a second time (as
   * BuildKit shares a vertex between the builds of one daemon), so both get the same image.
   */
  readonly buildStepsInFlight = new Map<string, Promise<void>>()

  constructor(readonly layout: Layout) {
    this.layers = new LayerStore(layout)
    this.images = new ImageDb(layout)
    this.repos = new Repositories(layout)
    this.buildCache = new BuildCache(layout)
    this.writers = new Writers(layout.writers)
  }

  /** After the last change: this context no longer counts as a writer (Store.close, the shim). */
  release(): void {
    this.writers.unregister()
  }

  /** Work that outlives the call that started it: deletions, operations unwinding after an abort. */
  readonly #background = new Set<Promise<void>>()

  /**
   * Deletes trees already moved out of the store's namespace (under `tmp/`) in the background:
   * what is removed is invisible at once, the disk space comes back a moment later (as
   * containerd's garbage collection does). `drain()` (Store.close) waits for it; a process that
   * exits first leaves the trees to the cleanup pass of the next open.
   */
  reclaim(trees: string[]): void {
    if (trees.length === 0) return
    this.background(call(() => fsBatch(trees.map((path) => ({ op: 'removeAll', path }))))
      .catch((e: Error) => { process.emitWarning(`strata: removing ${trees.join(', ')}: ${e.message}`) }))
  }

  /** Tracks work that goes on after its caller got an answer (`drain` waits for it); `p` must not reject. */
  background(p: Promise<void>): void {
    const tracked: Promise<void> = p.finally(() => { this.#background.delete(tracked) })
    this.#background.add(tracked)
  }

  /** Waits for every piece of background work under way (`reclaim`, unwinding operations). */
  async drain(): Promise<void> {
    while (this.#background.size > 0) await Promise.all([...this.#background])
  }

  /** ChainIDs of the image layers containers sit on (`layerdb/mounts/<id>/parent`). */
  async containerLayerParents(): Promise<ChainId[]> {
    const out: ChainId[] = []
    for (const cid of await listDir(this.layout.layerdbMounts)) {
      const p = await readIfExists(path.join(this.layout.mountMeta(cid), MOUNT_FILE.parent))
      if (p?.trim()) out.push(asChainId(p.trim()))
    }
    return out
  }

  /**
   * Every layer something still needs: the layers of each image (but `exceptImage`), the layers
   * live leases pin (open views, saves under way: ./leases.ts), and the layers below what
   * containers sit on and what build cache records name, transitively. The one answer cleanup,
   * `rmi`, container removal and lease release (./gc.ts) ask before deleting a layer; the caller
   * holds the exclusive lock.
   */
  async usedLayers(exceptImage?: string): Promise<Set<ChainId>> {
    const used = leasedLayers(this)
    for (const img of await this.images.all()) {
      if (img.id === exceptImage) continue
      for (const c of chainIdsOf(img.config.rootfs.diff_ids)) used.add(c)
    }
    for (const top of [...(await this.containerLayerParents()), ...(await this.buildCache.chainIds())]) {
      let cur: ChainId | undefined = top
      while (cur && !used.has(cur)) {
        used.add(cur)
        cur = (await this.layers.get(cur))?.parent
      }
    }
    return used
  }

  #busy = 0
  // Process start, as performance.now()'s zero was.
  #lastBusy = nowMs() - process.uptime() * 1000

  /**
   * Milliseconds since this process last held the store lock (0 while it holds it): background
   * work that would slow the store's own operations waits for a quiet moment.
   */
  quietFor(): number {
    return this.#busy > 0 ? 0 : nowMs() - this.#lastBusy
  }

  #lock?: StoreLock

  /** The store lock (ts/internal/lock.ts): one queue per root, shared by every Store of this process. */
  get lock(): StoreLock {
    if (!this.#lock) {
      let st
      try {
        st = statSync(this.layout.root)
      } catch (e) {
        throw toStrataError(e)
      }
      this.#lock = new StoreLock(`${st.dev}:${st.ino}`, this.layout.lockFile, this.layout.lockWaitFile, this.layout.lockGenFile)
    }
    return this.#lock
  }

  /**
   * Shared sections run first without the `flock`, checked against the write generation
   * (`StoreLock.optimistic`, ./lock.ts): for the CLI's read-only commands, whose sections only
   * read, so that they need not load the native addon the `flock` takes.
   */
  set optimisticReads(on: boolean) {
    this.lock.optimistic = on
  }

  /** Runs `fn` holding the store's exclusive lock (all metadata changes do). */
  exclusive<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    // Before the first change: a crash from here on leaves something for the next open to repair.
    this.writers.register()
    return this.#locked('exclusive', fn, signal)
  }

  /** Runs `fn` holding the store's lock shared (reads that must see one consistent store). */
  shared<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.#locked('shared', fn, signal)
  }

  async #locked<T>(mode: LockMode, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.#busy++
    try {
      return await this.lock.run(mode, fn, signal)
    } finally {
      this.#busy--
      this.#lastBusy = nowMs()
    }
  }

  /**
   * Creates a staging dir; its `.lock` is held so cleanup in other processes leaves it alone.
   * When `op` (the operation it stages for) has failed by the time the dir is disposed of, it
   * goes at once on this thread (by then it holds little: native tasks remove their own partial
   * output), so a failed call answers promptly with nothing left, however busy the pool is.
   */
  async staging(kind: string, op?: { readonly failed: boolean }): Promise<Staging> {
    const name = `${kind}-${randomHex(8)}`
    const dir = path.join(this.layout.tmp, name)
    this.writers.register()
    const lock = native.tryLock(`${dir}.lock`, true)
    if (!lock) throw new StrataError('Locked', `staging ${name} is locked`)
    // One mkdir in the store's own tmp dir, on the calling thread (a few microseconds; a trip
    // through the libuv pool, busy with a build's native tasks, took milliseconds).
    mkdirSync(dir, { mode: 0o700 })
    return {
      dir,
      // One native task removes the tree and the lock file (fs.rm walks a tree in many pool trips).
      dispose: async () => {
        if (op?.failed) {
          rmSync(dir, { recursive: true, force: true })
          rmSync(`${dir}.lock`, { force: true })
        } else {
          await call(() => fsBatch([{ op: 'removeAll', path: dir }, { op: 'removeAll', path: `${dir}.lock` }]))
        }
        lock.release()
      },
      // A rename and an unlink in the store's tmp dir, on the calling thread, as the mkdir above
      // (two trips through the pool took a millisecond or more of a build's end).
      disposeLater: async () => {
        const aside = path.join(this.layout.tmp, `rm-${name}`)
        try {
          renameSync(dir, aside)
          this.reclaim([aside])
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
        }
        rmSync(`${dir}.lock`, { force: true })
        lock.release()
      },
    }
  }
}

/** Throws `Aborted` if `signal` has fired (a check between steps of work not run as an Operation). */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('Aborted', 'operation aborted')
}

/** A monotonic clock in ms (`performance.now()` would load perf_hooks into every CLI command). */
function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}
