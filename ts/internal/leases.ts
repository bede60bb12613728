/**
 * Leases: image layers pinned by a reader that outlives one locked section — an image view kept
 * open, a save writing its archive — so that an `rmi`, of this process or another, does not
 * delete them under it. The rmi still removes the image (tags, config) at once; the layers it
 * would have deleted stay until the last lease on them goes, and are then collected (./gc.ts).
 *
 * On disk (documented with the rest of the layout in ./layout.ts):
 *
 * ```
 * <root>/leases/<pid>-<hex>   {"images": [image IDs], "layers": [ChainIDs]}
 * ```
 *
 * The owner holds an exclusive `flock` on the file while the lease lives, so a lease whose owner
 * died (even by `kill -9`) is recognised — nobody holds its lock — and dropped by whoever reads
 * the leases next. A lease is taken under the store lock (shared is enough: readers take them),
 * and leases are read under the exclusive lock, so reading never races a lease being written.
 */
import fs = require('node:fs')
import path = require('node:path')
import { native } from './native'
import { toStrataError, StrataError } from '../errors'
import { randomHex } from './fsx'
import { collectLayers } from './gc'
import type { StoreContext } from './context'
import type { ChainId } from './chain'

type NativeLock = InstanceType<typeof native.NativeLock>

interface LeaseFile {
  images: string[]
  layers: ChainId[]
}

/** Releases leases whose holder was garbage-collected without `release()` (a view never closed). */
const forgotten = new FinalizationRegistry<{ file: string; lock: NativeLock }>((held) => dropFile(held.file, held.lock))

function dropFile(file: string, lock: NativeLock): void {
  try {
    fs.unlinkSync(file)
  } catch {
    /* already gone */
  }
  lock.release()
}

export class Lease {
  #held: { file: string; lock: NativeLock } | undefined

  /** @internal use `takeLease` */
  constructor(
    private readonly ctx: StoreContext,
    readonly images: readonly string[],
    file: string,
    lock: NativeLock,
    owner?: object,
  ) {
    this.#held = { file, lock }
    if (owner) forgotten.register(owner, this.#held, this)
  }

  /**
   * Gives the layers back; if an image of the lease was removed meanwhile, its layers that
   * nothing else uses are collected in the background (`Store.close()` waits for that).
   */
  release(): void {
    const held = this.#held
    if (!held) return
    this.#held = undefined
    forgotten.unregister(this)
    dropFile(held.file, held.lock)
    const ctx = this.ctx
    if (this.images.some((id) => !fs.existsSync(ctx.layout.imageConfig(id)))) {
      ctx.background(
        ctx.exclusive(() => collectLayers(ctx)).then(
          () => undefined,
          (e: Error) => { process.emitWarning(`strata: collecting layers after a lease: ${e.message}`) },
        ),
      )
    }
  }
}

/**
 * Pins `layers` (ChainIDs) of `images`; the caller holds the store lock. `owner` (a view), when
 * given, releases the lease if it is garbage-collected without `release()`.
 */
export function takeLease(ctx: StoreContext, images: string[], layers: ChainId[], owner?: object): Lease {
  const file = path.join(ctx.layout.leases, `${process.pid}-${randomHex(8)}`)
  let lock: NativeLock | null
  try {
    // A store made before leases existed has no leases/ dir (Store.open makes the dirs only for a new store).
    fs.mkdirSync(ctx.layout.leases, { recursive: true, mode: 0o711 })
    lock = native.tryLock(file, true)
    if (!lock) throw new Error(`lease ${file} is locked`)
    fs.writeFileSync(file, JSON.stringify({ images, layers } satisfies LeaseFile))
  } catch (e) {
    try {
      fs.unlinkSync(file)
    } catch {
      /* not made */
    }
    throw toStrataError(e)
  }
  return new Lease(ctx, images, file, lock, owner)
}

/**
 * `takeLease`, or `undefined` when the store's file system has no room for the lease file (a
 * full disk): the caller then reads under the store lock instead, as readers did before leases.
 */
export function leaseIfRoom(ctx: StoreContext, images: string[], layers: ChainId[], owner?: object): Lease | undefined {
  try {
    return takeLease(ctx, images, layers, owner)
  } catch (e) {
    if ((e as StrataError).syscode === 'ENOSPC' || (e as StrataError).syscode === 'EDQUOT') return undefined
    throw e
  }
}

/**
 * ChainIDs pinned by live leases (this process's and others'); drops leases whose owner died.
 * The caller holds the exclusive store lock.
 */
export function leasedLayers(ctx: StoreContext): Set<ChainId> {
  const out = new Set<ChainId>()
  for (const name of listDirSync(ctx.layout.leases)) {
    const file = path.join(ctx.layout.leases, name)
    let probe: NativeLock | null
    try {
      probe = native.tryLock(file, true)
    } catch {
      continue
    }
    if (probe) {
      // Nobody holds it: its owner is gone.
      dropFile(file, probe)
      continue
    }
    try {
      const lease = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LeaseFile>
      for (const c of lease.layers ?? []) out.add(c)
    } catch {
      /* being removed by its owner right now */
    }
  }
  return out
}

function listDirSync(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}
