/**
 * Container skeletons: the directories and files every container gets, made in a staging dir
 * and renamed into place by `create` (./containers.ts).
 *
 * Every container needs some thirty-five new inodes: the init layer (dir, `diff/` with Docker's
 * init entries, `work/`, `link`, `lower`), the writable layer (dir, `diff/`, `work/`, `merged/`,
 * `link`, `lower`), its layer record, two `l/` short links and the container's own dir. Making
 * them is most of a create's time, more so on ext4 right after deletions (its inode allocator
 * steps over recently freed inodes one by one). Only a few files depend on the image and the
 * options, so a process that has created two containers keeps one skeleton ready, built in
 * the background; `create` fills in those files and renames the trees into place.
 * Other creates (a CLI `create`, the first ones of a process) build the skeleton in their own
 * batch, which then goes on to fill and place it: one code path either way.
 *
 * On disk, under a staging dir whose `.lock` this process holds (so another process's cleanup
 * leaves it alone; the next open removes it after a crash; `Store.close` removes it):
 *
 * ```
 * tmp/skeletons-<hex>/
 *   <id>.meta/    mount-id, init-id, parent (empty)          -> image/overlay2/layerdb/mounts/<id>
 *   <id>.init/    diff/<init entries>, work/, link, lower (empty)  -> overlay2/<mount-id>-init
 *   <id>.layer/   diff/, work/, merged/, link, lower (empty)       -> overlay2/<mount-id>
 *   <id>.l-init   symlink ../<mount-id>-init/diff            -> l/<init short>
 *   <id>.l-layer  symlink ../<mount-id>/diff                 -> l/<short>
 *   <id>.ct/      mounts/, hostname, mount.json (no refs), hosts, resolv.conf, hostconfig.json,
 *                 config.v2.json (the last four empty)       -> containers/<id>
 * ```
 *
 * A skeleton without an init layer (an image as deep as the kernel's limit) has no `.init` and
 * `.l-init`, and no `init-id`; such skeletons are only ever built inline.
 */
import path = require('node:path')
import { StoreContext, Staging } from '../context'
import { randomHex, randomBase32 } from '../fsx'
import { NativeFsOp, fsBatch } from '../native'
import { call } from '../errors'
import { LINK_FILE, LOWER_FILE, DIFF_DIR, WORK_DIR, MERGED_DIR, SHORT_LINK_LENGTH, MOUNT_FILE } from '../layout'
import { ContainerPaths, INIT_SUFFIX } from './layout'
import { INIT_ENTRIES } from './plan'
import { emptyRefsFile } from './mounts'

/** A layer of a skeleton: its cache ID and short link name, and where its dir and l/ link wait. */
export interface StagedLayer {
  cacheId: string
  short: string
  dir: string
  link: string
}

/** One skeleton: its chosen IDs and where its pieces wait. */
export interface Skeleton {
  id: string
  /** The layer record (-> layerdb/mounts/<id>). */
  meta: string
  /** The writable layer; its cache ID is the mount ID. */
  layer: StagedLayer
  /** The init layer (`<mount-id>-init`), absent for an image as deep as the kernel's limit. */
  init?: StagedLayer
  /** The container's dir (-> containers/<id>). */
  container: string
}

/** The files of a staged container dir (./layout.ts's ContainerPaths, rooted in the staging dir). */
export function stagedContainer(sk: Skeleton, layout: StoreContext['layout']): ContainerPaths {
  return new ContainerPaths(layout, sk.id, sk.container)
}

/** How long the store must have been quiet before a spare skeleton is built. */
const QUIET_MS = 10

export class Skeletons {
  #staging?: Promise<Staging>
  #ready: Skeleton[] = []
  #building?: Promise<void>
  #creates = 0
  #timer?: NodeJS.Timeout
  /**
   * Skeletons built in the staging dir and neither placed nor discarded yet (spares and those of
   * creates under way): the staging dir goes only when none is left, or a failed create would
   * take the pieces of concurrent ones with it.
   */
  readonly #outstanding = new Set<string>()

  constructor(private readonly ctx: StoreContext) {}

  /** A ready skeleton (always with an init layer), or undefined. */
  take(withInit: boolean): Skeleton | undefined {
    return withInit ? this.#ready.pop() : undefined
  }

  /** Appends the steps that build a new skeleton to `ops`. */
  async build(ops: NativeFsOp[], withInit: boolean): Promise<Skeleton> {
    const dir = (await this.staging()).dir
    const id = randomHex(32)
    const mountId = randomHex(32)
    const at = (suffix: string) => path.join(dir, `${id}.${suffix}`)
    const staged = (cacheId: string, name: string): StagedLayer =>
      ({ cacheId, short: randomBase32(SHORT_LINK_LENGTH), dir: at(name), link: at(`l-${name}`) })
    const sk: Skeleton = {
      id, meta: at('meta'), layer: staged(mountId, 'layer'), container: at('ct'),
      ...(withInit ? { init: staged(`${mountId}${INIT_SUFFIX}`, 'init') } : {}),
    }
    this.#outstanding.add(id)
    ops.push({ op: 'mkdir', path: sk.meta, mode: 0o755 })
    ops.push({ op: 'writeNew', path: path.join(sk.meta, MOUNT_FILE.mountId), data: mountId })
    if (sk.init) ops.push({ op: 'writeNew', path: path.join(sk.meta, MOUNT_FILE.initId), data: sk.init.cacheId })
    ops.push({ op: 'writeNew', path: path.join(sk.meta, MOUNT_FILE.parent), data: '' })

    if (sk.init) {
      layerDirOps(ops, sk.init)
      const diff = path.join(sk.init.dir, DIFF_DIR)
      const made = new Set<string>([''])
      for (const e of INIT_ENTRIES) {
        // Parents first (0755), each once.
        const parts = e.path.split('/')
        for (let i = 1; i < parts.length; i++) {
          const d = parts.slice(0, i).join('/')
          if (!made.has(d)) ops.push({ op: 'mkdir', path: path.join(diff, d), mode: 0o755 })
          made.add(d)
        }
        const p = path.join(diff, e.path)
        if (e.type === 'dir') {
          if (!made.has(e.path)) ops.push({ op: 'mkdir', path: p, mode: 0o755 })
          made.add(e.path)
        } else if (e.type === 'file') ops.push({ op: 'writeNew', path: p, data: '', mode: 0o755 })
        else ops.push({ op: 'symlink', path: p, target: e.target })
      }
    }
    layerDirOps(ops, sk.layer)
    ops.push({ op: 'mkdir', path: path.join(sk.layer.dir, MERGED_DIR), mode: 0o700 })

    const ct = stagedContainer(sk, this.ctx.layout)
    ops.push({ op: 'mkdir', path: ct.dir, mode: 0o710 })
    ops.push({ op: 'mkdir', path: ct.mounts, mode: 0o700 })
    ops.push({ op: 'writeNew', path: ct.hostname, data: `${id.slice(0, 12)}\n` })
    ops.push({ op: 'writeNew', path: ct.mountRefs, data: emptyRefsFile() })
    for (const f of [ct.hosts, ct.resolvConf, ct.hostConfig, ct.config]) ops.push({ op: 'writeNew', path: f, data: '' })
    return sk
  }

  /**
   * The renames that put a filled (and synced) skeleton in place, under the store lock: the
   * layer record first (what keeps the layer dirs alive through cleanup and repair), the layer
   * dirs and short links, then the container's dir (the moment the container exists). The
   * caller syncs after the lock: a crash before that may keep any part of them, and the repair
   * pass removes a layer record without a container and a container without its layers.
   */
  placeOps(sk: Skeleton): NativeFsOp[] {
    const layout = this.ctx.layout
    const ops: NativeFsOp[] = [{ op: 'rename', path: sk.meta, target: layout.mountMeta(sk.id) }]
    for (const l of sk.init ? [sk.init, sk.layer] : [sk.layer]) {
      ops.push({ op: 'rename', path: l.dir, target: layout.layerDir(l.cacheId) })
      ops.push({ op: 'rename', path: l.link, target: layout.shortLink(l.short) })
    }
    ops.push({ op: 'rename', path: sk.container, target: layout.containerDir(sk.id) })
    return ops
  }

  /**
   * After a create: from a process's second create on, keep one skeleton ready, built in the
   * background once the store has been quiet for QUIET_MS (so the build does not compete with the
   * operations that follow a create: its mount, a run). A process that creates one container
   * (the CLI) never builds a spare.
   */
  refill(): void {
    this.#creates++
    if (this.#creates < 2) return
    this.#schedule()
  }

  #schedule(): void {
    if (this.#ready.length > 0 || this.#building || this.#timer) return
    const wait = QUIET_MS - this.ctx.quietFor()
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.ctx.quietFor() < QUIET_MS) this.#schedule()
      else this.#build()
    }, Math.max(1, wait))
    this.#timer.unref()
  }

  #build(): void {
    this.#building = (async () => {
      const ops: NativeFsOp[] = []
      // No syncfs: placing a skeleton syncs before its container appears (placeOps).
      const sk = await this.build(ops, true)
      await call(() => fsBatch(ops))
      this.#ready.push(sk)
    })()
      .catch((e: Error) => { process.emitWarning(`strata: building a container skeleton: ${e.message}`) })
      .finally(() => { this.#building = undefined })
  }

  /**
   * Removes what is left of a skeleton that a failed create did not put in place, and the
   * staging dir when it holds nothing else: a failed create leaves no trace under tmp/.
   */
  async discard(sk: Skeleton): Promise<void> {
    const pieces = [sk.meta, sk.layer.dir, sk.layer.link, sk.container, ...(sk.init ? [sk.init.dir, sk.init.link] : [])]
    try {
      await call(() => fsBatch(pieces.map((p) => ({ op: 'removeAll', path: p }))))
    } finally {
      this.#outstanding.delete(sk.id)
    }
    if (this.#outstanding.size === 0 && !this.#building) await this.dispose()
  }

  /** A skeleton's pieces are in place: it no longer holds the staging dir. */
  placed(sk: Skeleton): void {
    this.#outstanding.delete(sk.id)
  }

  /** Waits for a build under way and removes the staging dir (Store.close). */
  async dispose(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#building
    const staging = this.#staging
    this.#staging = undefined
    this.#ready = []
    this.#outstanding.clear()
    if (staging) await (await staging).dispose()
  }

  private staging(): Promise<Staging> {
    this.#staging ??= this.ctx.staging('skeletons')
    this.#staging.catch(() => { this.#staging = undefined })
    return this.#staging
  }
}

/**
 * Steps making a staged layer: its dir with diff/, work/, `link` (the short name) and an empty
 * `lower`, and its l/ link (`../<cache-id>/diff`, dangling until both are in place).
 */
function layerDirOps(ops: NativeFsOp[], l: StagedLayer): void {
  ops.push({ op: 'mkdir', path: l.dir, mode: 0o710 })
  ops.push({ op: 'mkdir', path: path.join(l.dir, DIFF_DIR), mode: 0o755 })
  ops.push({ op: 'mkdir', path: path.join(l.dir, WORK_DIR), mode: 0o700 })
  ops.push({ op: 'writeNew', path: path.join(l.dir, LINK_FILE), data: l.short })
  ops.push({ op: 'writeNew', path: path.join(l.dir, LOWER_FILE), data: '' })
  ops.push({ op: 'symlink', path: l.link, target: path.join('..', l.cacheId, DIFF_DIR) })
}
