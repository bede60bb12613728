/** Layer identities computed in TS: ChainIDs from DiffIDs (see GUIDE / strata-core digest.rs). */
import { createHash } from 'node:crypto'

/** ChainID of each prefix of `diffIds` (bottom layer first). */
export function chainIdsOf(diffIds: readonly string[]): string[] {
  const out: string[] = []
  for (const d of diffIds) {
    const parent = out[out.length - 1]
    out.push(parent === undefined ? d : `sha256:${createHash('sha256').update(`${parent} ${d}`).digest('hex')}`)
  }
  return out
}
