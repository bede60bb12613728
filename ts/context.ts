/**
 * What the store's modules share: the layout, the three dbs, the store lock and staging dirs.
 * Internal; the public surface is `Store` (ts/store.ts).
 */
import { fsp as fs } from './lazy'
import path = require('node:path')
import { Layout } from './layout'
import { LayerStore } from './layers'
import { ImageDb } from './imagedb'
import { Repositories } from './repositories'
import { native, fsBatch } from './native'
import { call, StrataError } from './errors'
import { randomHex, listDir, readIfExists } from './fsx'
import { Writers } from './writers'

/** A staging dir under `<root>/tmp`, owned (locked) by this process until disposed. */
export interface Staging {
  dir: string
  dispose(): Promise<void>
}

export class StoreContext {
  readonly layers: LayerStore
  readonly images: ImageDb
  readonly repos: Repositories
  /** This process's entry in `writers/`, made before the first change (./writers.ts). */
  readonly writers: Writers

  constructor(readonly layout: Layout) {
    this.layers = new LayerStore(layout)
    this.images = new ImageDb(layout)
    this.repos = new Repositories(layout)
    this.writers = new Writers(layout.writers)
  }

  /** After the last change: this context no longer counts as a writer (Store.close, the shim). */
  release(): void {
    this.writers.unregister()
  }

  readonly #reclaiming = new Set<Promise<void>>()

  /**
   * Deletes trees already moved out of the store's namespace (under `tmp/`) in the background:
   * what is removed is invisible at once, the disk space comes back a moment later (as
   * containerd's garbage collection does). `drain()` (Store.close) waits for it; a process that
   * exits first leaves the trees to the cleanup pass of the next open.
   */
  reclaim(trees: string[]): void {
    if (trees.length === 0) return
    const p: Promise<void> = call(() => fsBatch(trees.map((path) => ({ op: 'removeAll', path }))))
      .catch((e: Error) => { process.emitWarning(`strata: removing ${trees.join(', ')}: ${e.message}`) })
      .finally(() => { this.#reclaiming.delete(p) })
    this.#reclaiming.add(p)
  }

  /** Waits for every `reclaim` under way. */
  async drain(): Promise<void> {
    while (this.#reclaiming.size > 0) await Promise.all([...this.#reclaiming])
  }

  /** ChainIDs of the image layers containers sit on (`layerdb/mounts/<id>/parent`). */
  async containerLayerParents(): Promise<string[]> {
    const out: string[] = []
    for (const cid of await listDir(this.layout.layerdbMounts)) {
      const p = await readIfExists(path.join(this.layout.mountMeta(cid), 'parent'))
      if (p?.trim()) out.push(p.trim())
    }
    return out
  }

  #busy = 0
  #lastBusy = 0

  /**
   * Milliseconds since this process last held the store lock (0 while it holds it): background
   * work that would slow the store's own operations waits for a quiet moment.
   */
  quietFor(): number {
    return this.#busy > 0 ? 0 : performance.now() - this.#lastBusy
  }

  /** Runs `fn` holding the store's exclusive lock (all metadata changes do). */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.writers.register()
    this.#busy++
    try {
      // Uncontended, the lock is taken on this thread (one flock); only a wait goes to the pool.
      const lock = (await call(() => native.tryLock(this.layout.lockFile, true))) ?? (await call(() => native.acquireLock(this.layout.lockFile, true)))
      try {
        return await fn()
      } finally {
        lock.release()
      }
    } finally {
      this.#busy--
      this.#lastBusy = performance.now()
    }
  }

  /** Creates a staging dir; its `.lock` is held so cleanup in other processes leaves it alone. */
  async staging(kind: string): Promise<Staging> {
    const name = `${kind}-${randomHex(8)}`
    const dir = path.join(this.layout.tmp, name)
    this.writers.register()
    const lock = native.tryLock(`${dir}.lock`, true)
    if (!lock) throw new StrataError('Locked', `staging ${name} is locked`)
    await fs.mkdir(dir, { mode: 0o700 })
    return {
      dir,
      dispose: async () => {
        await fs.rm(dir, { recursive: true, force: true })
        await fs.rm(`${dir}.lock`, { force: true })
        lock.release()
      },
    }
  }
}

/** Converts an AbortSignal into a NativeCancel (and throws at once if already aborted). */
export function cancelFor(signal?: AbortSignal): InstanceType<typeof native.NativeCancel> | undefined {
  if (!signal) return undefined
  if (signal.aborted) throw new StrataError('Aborted', 'operation aborted')
  const c = new native.NativeCancel()
  signal.addEventListener('abort', () => c.cancel(), { once: true })
  return c
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('Aborted', 'operation aborted')
}
