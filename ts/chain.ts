/**
 * Layer identities (strata-core's `digest.rs` names the same three): a DiffID is the sha256 of a
 * layer's uncompressed tar (`rootfs.diff_ids`), a ChainID the identity of a stack of layers (the
 * layer store's key), a blob digest the sha256 of a layer as stored or sent (a manifest's layer
 * digest, compressed or not). At run time each is a `sha256:<hex>` string; the brands make the
 * compiler refuse one where another is meant. A string gets a brand only through the `as*`
 * functions below, where its origin says what it is (a config's `rootfs.diff_ids`, a layerdb
 * file, the addon's result), or through the ChainID rule here, its one owner.
 */
import { native } from './native'

declare const identity: unique symbol
/** sha256 of a layer's uncompressed tar. */
export type DiffId = string & { readonly [identity]: 'DiffId' }
/** Identity of a stack of layers: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
export type ChainId = string & { readonly [identity]: 'ChainId' }
/** sha256 of a layer blob as stored or sent. */
export type BlobDigest = string & { readonly [identity]: 'BlobDigest' }

/** Names `s` (a `sha256:<hex>` whose origin says so) a DiffID. */
export const asDiffId = (s: string): DiffId => s as DiffId
/** Names `s` (a `sha256:<hex>` whose origin says so) a ChainID. */
export const asChainId = (s: string): ChainId => s as ChainId
/** Names `s` (a `sha256:<hex>` whose origin says so) a blob digest. */
export const asBlobDigest = (s: string): BlobDigest => s as BlobDigest

/** ChainID of the layer `diffId` on top of the stack `parent` (none: the bottom layer). */
export function chainIdOf(parent: ChainId | undefined, diffId: DiffId): ChainId {
  // The core's sha256 (the addon is loaded anyway): node:crypto would cost every command its load.
  return (parent === undefined ? diffId : native.sha256Buffer(Buffer.from(`${parent} ${diffId}`))) as string as ChainId
}

/** ChainID of each prefix of `diffIds` (bottom layer first). */
export function chainIdsOf(diffIds: readonly DiffId[]): ChainId[] {
  const out: ChainId[] = []
  for (const d of diffIds) out.push(chainIdOf(out[out.length - 1], d))
  return out
}
