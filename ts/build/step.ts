/**
 * A filesystem step's working area, and commit by rename.
 *
 * Each RUN, COPY, ADD or WORKDIR step that misses the cache gets, under the build's staging
 * dir (`<root>/tmp/build-<hex>/`, locked by this process, so another process's cleanup leaves
 * it alone and the next open after a crash removes it):
 *
 * ```
 * step-<n>/layer/diff/   the overlay upper dir — and, unchanged, the new layer's diff/
 * step-<n>/work/         the overlay work dir
 * step-<n>/merged/       the mount point: the parent layers + the upper dir
 * step-<n>/tar-split.json.gz
 * step-<n>/bundle/ ...   (RUN) the OCI bundle, hosts, hostname, resolv.conf
 * ```
 *
 * The mount is the containers' (`native.containerMountPlan`: `index=off,redirect_dir=off,
 * metacopy=off`): every copy-up is a full copy and a
 * renamed directory is copied, so the upper dir is a self-contained layer. Under the parent
 * layers lies the build stub (`<root>/builder/stub`): empty `proc`, `sys`, `dev`, and
 * `etc/{hosts,hostname,resolv.conf}`, the mount points the runtime needs, so it never makes
 * them in the upper dir (the bind-mounted files never land in a layer).
 *
 * After the step, the upper dir is unmounted, described in one walk (`native.sealLayer`:
 * DiffID, tar-split, overlay bookkeeping xattrs dropped) and `layer/` is renamed into
 * `overlay2/<cache-id>` by the layer store. Nothing is copied.
 */
import { fsp as fs } from '../internal/lazy'
import * as path from 'node:path'
import { mkdirSync } from 'node:fs'
import { StoreContext } from '../internal/context'
import { native } from '../internal/native'
import { call } from '../errors'
import { exists, randomHex } from '../internal/fsx'
import { DIFF_DIR, LAYER_FILE } from '../internal/layout'
import { LayerInfo } from '../internal/layers'
import { asDiffId, chainIdsOf, type DiffId } from '../internal/chain'

/** sha256 of an empty tar: a step that changed nothing. */
export const EMPTY_LAYER = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef'

const STUB_DIRS = ['proc', 'sys', 'dev', 'etc']
const STUB_FILES = ['etc/hosts', 'etc/hostname', 'etc/resolv.conf']

/** Makes `<root>/builder/stub` once (built aside, renamed into place). */
export async function ensureStub(ctx: StoreContext): Promise<string> {
  const stub = ctx.layout.buildStub
  if (await exists(path.join(stub, 'etc', 'resolv.conf'))) return stub
  const tmp = ctx.layout.buildStubTemp(randomHex(6))
  await fs.mkdir(tmp, { recursive: true, mode: 0o755 })
  for (const d of STUB_DIRS) await fs.mkdir(path.join(tmp, d), { mode: 0o755 })
  for (const f of STUB_FILES) await fs.writeFile(path.join(tmp, f), '', { mode: 0o644 })
  await fs.rename(tmp, stub).catch(async (e: NodeJS.ErrnoException) => {
    await fs.rm(tmp, { recursive: true, force: true })
    // Another build made it first.
    if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e
  })
  return stub
}

export interface Sealed {
  diffId: DiffId
  size: number
  empty: boolean
}

export class StepSpace {
  readonly layerDir: string
  readonly diff: string
  readonly work: string
  readonly merged: string
  readonly tarSplit: string
  #mounted = false

  private constructor(readonly ctx: StoreContext, readonly dir: string) {
    this.layerDir = path.join(dir, 'layer')
    this.diff = path.join(this.layerDir, DIFF_DIR)
    this.work = path.join(dir, 'work')
    this.merged = path.join(dir, 'merged')
    this.tarSplit = path.join(dir, LAYER_FILE.tarSplit)
  }

  static async create(ctx: StoreContext, staging: string, name: string): Promise<StepSpace> {
    const s = new StepSpace(ctx, path.join(staging, name))
    // Five mkdirs in a dir of this process's own, on the calling thread: a few microseconds,
    // where five trips through the libuv pool (busy with the build's native tasks) took
    // milliseconds each on a rebuild.
    for (const d of [s.dir, s.layerDir, s.work, s.merged, s.diff]) mkdirSync(d, { mode: 0o755 })
    return s
  }

  /** Mounts the parent layers (`lowers`: diff dirs, top first) and the stub under the upper dir. */
  async mount(lowers: string[]): Promise<void> {
    const stub = await ensureStub(this.ctx)
    // The containers' plan (the native core owns it: index=off,redirect_dir=off,metacopy=off,
    // and the limit on lower dirs, refused as TooManyLayers before anything is mounted).
    const plan = await call(() => native.containerMountPlan([...lowers, stub], this.diff, this.work, this.merged))
    await call(() => native.mountOverlay(plan))
    this.#mounted = true
  }

  async unmount(): Promise<void> {
    if (!this.#mounted) return
    await call(() => native.unmount(this.merged, false)).catch(() => call(() => native.unmount(this.merged, true)))
    this.#mounted = false
  }

  /** Describes the (unmounted) upper dir as a layer: DiffID, size, tar-split. */
  async seal(cancel?: InstanceType<typeof native.NativeCancel>): Promise<Sealed> {
    await this.unmount()
    const r = await call(() => native.sealLayer(this.diff, this.tarSplit, cancel))
    return { diffId: asDiffId(r.diffId), size: r.size, empty: r.entries === 0 }
  }

  /**
   * Registers the sealed layer on top of `parent` (its ChainIDs' stack given by `parentDiffIds`);
   * returns the layer (an existing one when the same ChainID is already in the store). Caller
   * holds the store lock.
   */
  async register(sealed: Sealed, parentDiffIds: DiffId[]): Promise<LayerInfo> {
    const chain = chainIdsOf([...parentDiffIds, sealed.diffId])
    const chainId = chain[chain.length - 1]
    const parentChain = chain.length > 1 ? chain[chain.length - 2] : undefined
    const parent = parentChain ? await this.ctx.layers.must(parentChain) : undefined
    const existing = await this.ctx.layers.get(chainId)
    if (existing) return existing
    const made = await this.ctx.layers.register({ dir: this.layerDir, tarSplit: this.tarSplit, diffId: sealed.diffId, size: sealed.size }, chainId, parent)
    return made || (await this.ctx.layers.must(chainId))
  }

  async dispose(): Promise<void> {
    await this.unmount().catch(() => undefined)
    await fs.rm(this.dir, { recursive: true, force: true }).catch(() => undefined)
  }
}
