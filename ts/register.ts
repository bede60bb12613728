/**
 * Making staged layers visible (load, pull): each layer registered bottom-up on top of its parent
 * (found in the store or registered first), and its compressed blob, when one was kept, moved into
 * the content store with it. Caller holds the store's exclusive lock.
 */
import { fsp as fs } from './lazy'
import { StoreContext } from './context'
import { StrataError } from './errors'
import { LayerInfo, StagedLayer } from './layers'
import { adoptBlob } from './content'
import { Rollback } from './rollback'
import type { ChainId, DiffId } from './chain'

/** A layer an operation prepared: where it sits in its stack, and its staged files if extracted. */
export interface PlannedLayer {
  chainId: ChainId
  diffId: DiffId
  parentChainId?: ChainId
  /** `blob`: the compressed bytes it came from, kept for the content store. */
  staged?: Omit<StagedLayer, 'diffId'> & { blob?: string }
}

/**
 * Registers `chainId` and whatever it stands on that the store lacks, from `planned`. Returns the
 * layer; `fresh` collects the ChainIDs registered now. A staged layer found present meanwhile is
 * left to the caller's staging clean-up; its blob is removed. With `undo`, each registration (and
 * its blob) is taken back if the caller's operation fails later (ts/rollback.ts).
 */
export class LayerRegistrar {
  readonly #known = new Map<ChainId, LayerInfo>()
  readonly fresh: ChainId[] = []

  constructor(
    private readonly ctx: StoreContext,
    private readonly planned: (chainId: ChainId) => PlannedLayer | undefined,
    private readonly doing: string,
    private readonly undo?: Rollback,
  ) {}

  async layer(chainId: ChainId): Promise<LayerInfo> {
    const have = this.#known.get(chainId) ?? (await this.ctx.layers.get(chainId))
    if (have) {
      this.#known.set(chainId, have)
      return have
    }
    const p = this.planned(chainId)
    if (!p?.staged) throw new StrataError('LayerNotFound', `layer ${chainId} vanished while ${this.doing}`)
    const parent = p.parentChainId ? await this.layer(p.parentChainId) : undefined
    const { blob, ...staged } = p.staged
    const reg = await this.ctx.layers.register({ ...staged, diffId: p.diffId }, chainId, parent)
    if (reg) this.undo?.add(`layer ${chainId}`, () => this.ctx.layers.remove(chainId))
    if (blob) {
      const digest = staged.compressedDigest
      if (reg && digest) {
        const adopted = await adoptBlob(this.ctx, digest, blob)
        if (adopted) this.undo?.add(`blob ${digest}`, () => fs.rm(this.ctx.layout.blob(digest), { force: true }))
      } else {
        await fs.rm(blob, { force: true })
      }
      p.staged.blob = undefined
    }
    if (reg) this.fresh.push(chainId)
    const info = reg || (await this.ctx.layers.must(chainId))
    this.#known.set(chainId, info)
    return info
  }
}
