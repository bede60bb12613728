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
import * as path from 'node:path'
import { StoreContext, Staging } from '../context'
import { randomHex, randomBase32 } from '../fsx'
import { NativeFsOp, fsBatch } from '../native'
import { call } from '../errors'
import { LINK_FILE, LOWER_FILE, DIFF_DIR, WORK_DIR, MERGED_DIR, SHORT_LINK_LENGTH } from '../layout'
import { ContainerPaths, INIT_SUFFIX } from './layout'
import { INIT_ENTRIES } from './plan'
import { emptyRefsFile } from './mounts'

/** One skeleton: its chosen IDs and where its pieces wait. */
export interface Skeleton {
  id: string
  mountId: string
  /** `<mountId>-init`, or undefined without an init layer. */
  initId?: string
  short: string
  initShort?: string
  /** Staged trees, by what they become. */
  staged: { meta: string; init?: string; layer: string; linkInit?: string; link: string; container: string }
}

/** The files of a staged container dir (./layout.ts's ContainerPaths, rooted in the staging dir). */
export function stagedContainer(sk: Skeleton, layout: StoreContext['layout']): ContainerPaths {
  return new ContainerPaths(layout, sk.id, sk.staged.container)
}

/** How long the store must have been quiet before a spare skeleton is built. */
const QUIET_MS = 10

export class Skeletons {
  #staging?: Promise<Staging>
  #ready: Skeleton[] = []
  #building?: Promise<void>
  #creates = 0
  #timer?: NodeJS.Timeout

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
    const sk: Skeleton = {
      id, mountId, short: randomBase32(SHORT_LINK_LENGTH),
      ...(withInit ? { initId: `${mountId}${INIT_SUFFIX}`, initShort: randomBase32(SHORT_LINK_LENGTH) } : {}),
      staged: {
        meta: at('meta'), layer: at('layer'), link: at('l-layer'), container: at('ct'),
        ...(withInit ? { init: at('init'), linkInit: at('l-init') } : {}),
      },
    }
    const s = sk.staged
    ops.push({ op: 'mkdir', path: s.meta, mode: 0o755 })
    ops.push({ op: 'writeNew', path: path.join(s.meta, 'mount-id'), data: mountId })
    if (sk.initId) ops.push({ op: 'writeNew', path: path.join(s.meta, 'init-id'), data: sk.initId })
    ops.push({ op: 'writeNew', path: path.join(s.meta, 'parent'), data: '' })

    if (s.init && s.linkInit && sk.initId && sk.initShort) {
      layerDirOps(ops, s.init, sk.initShort)
      const diff = path.join(s.init, DIFF_DIR)
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
      ops.push({ op: 'symlink', path: s.linkInit, target: path.join('..', sk.initId, DIFF_DIR) })
    }
    layerDirOps(ops, s.layer, sk.short)
    ops.push({ op: 'mkdir', path: path.join(s.layer, MERGED_DIR), mode: 0o700 })
    ops.push({ op: 'symlink', path: s.link, target: path.join('..', mountId, DIFF_DIR) })

    const ct = stagedContainer(sk, this.ctx.layout)
    ops.push({ op: 'mkdir', path: ct.dir, mode: 0o710 })
    ops.push({ op: 'mkdir', path: ct.mounts, mode: 0o700 })
    ops.push({ op: 'writeNew', path: ct.hostname, data: `${id.slice(0, 12)}\n` })
    ops.push({ op: 'writeNew', path: ct.mountRefs, data: emptyRefsFile() })
    for (const f of [ct.hosts, ct.resolvConf, ct.hostConfig, ct.config]) ops.push({ op: 'writeNew', path: f, data: '' })
    return sk
  }

  /**
   * The steps that put a filled skeleton in place: the layer record first (what keeps the layer
   * dirs alive through cleanup and repair), the layer dirs and short links, one syncfs, then the
   * container's dir (the moment the container exists) and a second syncfs. A crash in between
   * leaves a layer record without a container, which the repair pass removes.
   */
  placeOps(ops: NativeFsOp[], sk: Skeleton): void {
    const layout = this.ctx.layout
    const s = sk.staged
    ops.push({ op: 'rename', path: s.meta, target: layout.mountMeta(sk.id) })
    if (s.init && s.linkInit && sk.initId && sk.initShort) {
      ops.push({ op: 'rename', path: s.init, target: layout.layerDir(sk.initId) })
      ops.push({ op: 'rename', path: s.linkInit, target: layout.shortLink(sk.initShort) })
    }
    ops.push({ op: 'rename', path: s.layer, target: layout.layerDir(sk.mountId) })
    ops.push({ op: 'rename', path: s.link, target: layout.shortLink(sk.short) })
    ops.push({ op: 'syncfs', path: layout.root })
    ops.push({ op: 'rename', path: s.container, target: layout.containerDir(sk.id) })
    ops.push({ op: 'syncfs', path: layout.root })
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

  /** Waits for a build under way and removes the staging dir (Store.close). */
  async dispose(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#building
    const staging = this.#staging
    this.#staging = undefined
    this.#ready = []
    if (staging) await (await staging).dispose()
  }

  private staging(): Promise<Staging> {
    this.#staging ??= this.ctx.staging('skeletons')
    this.#staging.catch(() => { this.#staging = undefined })
    return this.#staging
  }
}

/** Steps making a layer dir at `dir`: diff/, work/, its `link` (the short name) and an empty `lower`. */
function layerDirOps(ops: NativeFsOp[], dir: string, short: string): void {
  ops.push({ op: 'mkdir', path: dir, mode: 0o710 })
  ops.push({ op: 'mkdir', path: path.join(dir, DIFF_DIR), mode: 0o755 })
  ops.push({ op: 'mkdir', path: path.join(dir, WORK_DIR), mode: 0o700 })
  ops.push({ op: 'writeNew', path: path.join(dir, LINK_FILE), data: short })
  ops.push({ op: 'writeNew', path: path.join(dir, LOWER_FILE), data: '' })
}
