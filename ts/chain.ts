/** Layer identities computed in TS: ChainIDs from DiffIDs (see GUIDE / strata-core digest.rs). */
import { native } from './native'

/** ChainID of each prefix of `diffIds` (bottom layer first). */
export function chainIdsOf(diffIds: readonly string[]): string[] {
  const out: string[] = []
  for (const d of diffIds) {
    const parent = out[out.length - 1]
    // The core's sha256 (the addon is loaded anyway): node:crypto would cost every command its load.
    out.push(parent === undefined ? d : native.sha256Buffer(Buffer.from(`${parent} ${d}`)))
  }
  return out
}
