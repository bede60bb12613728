/**
 * What the store's modules share: the layout, the three dbs, the store lock and staging dirs.
 * Internal; the public surface is `Store` (ts/store.ts).
 */
import * as fs from 'node:fs/promises'
import { statSync } from 'node:fs'
import * as path from 'node:path'
import { Layout } from './layout'
import { LayerStore } from './layers'
import { ImageDb } from './imagedb'
import { Repositories } from './repositories'
import { native, fsBatch } from './native'
import { call, toStrataError, StrataError } from './errors'
import { randomHex, listDir, readIfExists } from './fsx'
import { StoreLock, LockMode } from './lock'

/** A staging dir under `<root>/tmp`, owned (locked) by this process until disposed. */
export interface Staging {
  dir: string
  dispose(): Promise<void>
}

export class StoreContext {
  readonly layers: LayerStore
  readonly images: ImageDb
  readonly repos: Repositories

  constructor(readonly layout: Layout) {
    this.layers = new LayerStore(layout)
    this.images = new ImageDb(layout)
    this.repos = new Repositories(layout)
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

  #lock?: StoreLock

  /** The store lock (ts/lock.ts): one queue per root, shared by every Store of this process. */
  get lock(): StoreLock {
    if (!this.#lock) {
      let st
      try {
        st = statSync(this.layout.root)
      } catch (e) {
        throw toStrataError(e)
      }
      this.#lock = new StoreLock(`${st.dev}:${st.ino}`, this.layout.lockFile, this.layout.lockWaitFile)
    }
    return this.#lock
  }

  /** Runs `fn` holding the store's exclusive lock (all metadata changes do). */
  exclusive<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
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
      this.#lastBusy = performance.now()
    }
  }

  /** Creates a staging dir; its `.lock` is held so cleanup in other processes leaves it alone. */
  async staging(kind: string): Promise<Staging> {
    const name = `${kind}-${randomHex(8)}`
    const dir = path.join(this.layout.tmp, name)
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
