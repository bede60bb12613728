/**
 * Where layers came from: Docker's `image/overlay2/distribution/` records, in Docker's format,
 * so a push can skip (HEAD) or mount (`?mount=&from=`) a blob a registry already has.
 *
 * ```
 * distribution/diffid-by-digest/sha256/<blob digest hex>      the DiffID that blob unpacks to
 * distribution/v2metadata-by-diffid/sha256/<diff id hex>      [{"Digest": "sha256:...",
 *                                                               "SourceRepository": "docker.io/library/busybox",
 *                                                               "HMAC": ""}, ...]
 * ```
 * `SourceRepository` is the full repository name (domain included). Entries are added when a pull
 * (or, by the push side, a push) shows that a repository has a blob; the newest is last, as
 * Docker keeps them. Written under the store lock.
 */
import { fsp as fs } from './lazy'
import * as path from 'node:path'
import { Layout, hex } from './layout'
import { readIfExists, writeAtomic } from './fsx'

/** One place a layer's blob is known to be. */
export interface V2Metadata {
  /** The compressed blob digest. */
  Digest: string
  /** Full repository name: `docker.io/library/busybox`, `localhost:5000/x`. */
  SourceRepository: string
  /** Docker keys the entry with an HMAC of the credentials used; strata leaves it empty. */
  HMAC: string
}

/** Docker keeps at most this many entries per DiffID (oldest dropped first). */
const MAX_ENTRIES = 50

export class Distribution {
  constructor(private readonly layout: Layout) {}

  /** The DiffID a blob digest unpacks to, if recorded. */
  async diffIdOf(digest: string): Promise<string | undefined> {
    return (await readIfExists(path.join(this.layout.diffIdByDigest, hex(digest))))?.trim() || undefined
  }

  /** Where a layer's blobs are known to be, oldest first. */
  async metadataOf(diffId: string): Promise<V2Metadata[]> {
    const text = await readIfExists(path.join(this.layout.v2MetadataByDiffId, hex(diffId)))
    if (!text) return []
    try {
      const v = JSON.parse(text) as unknown
      return Array.isArray(v) ? (v as V2Metadata[]).filter((m) => typeof m?.Digest === 'string' && typeof m?.SourceRepository === 'string') : []
    } catch {
      return [] // a damaged record only costs an optimisation
    }
  }

  /** Records that `repository` has blob `digest` of layer `diffId` (caller holds the store lock). */
  async add(diffId: string, digest: string, repository: string): Promise<void> {
    await fs.mkdir(this.layout.diffIdByDigest, { recursive: true })
    await fs.mkdir(this.layout.v2MetadataByDiffId, { recursive: true })
    await writeAtomic(path.join(this.layout.diffIdByDigest, hex(digest)), diffId)
    const list = (await this.metadataOf(diffId)).filter((m) => !(m.Digest === digest && m.SourceRepository === repository))
    list.push({ Digest: digest, SourceRepository: repository, HMAC: '' })
    await writeAtomic(path.join(this.layout.v2MetadataByDiffId, hex(diffId)), JSON.stringify(list.slice(-MAX_ENTRIES)))
  }

}
