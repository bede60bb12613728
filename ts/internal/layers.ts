/**
 * The read-only layer store: `layerdb/sha256/<chain id>` entries and their `overlay2/<cache-id>` dirs.
 * A layer is identified by its ChainID and stored once, however many images use it.
 */
import { fsp as fs } from './lazy'
import path = require('node:path')
import { Layout, hex, SHORT_LINK_LENGTH, LINK_DIR, COMMITTED_FILE, LINK_FILE, LOWER_FILE, DIFF_DIR, LAYER_FILE } from './layout'
import { exists, mustRead, readIfExists, writeAtomic, listDir, randomHex, randomBase32, removeTree } from './fsx'
import { fsBatch, type NativeFsOp } from './native'
import { call } from '../errors'
import { StrataError } from '../errors'
import { asBlobDigest, asChainId, asDiffId, type BlobDigest, type ChainId, type DiffId } from './chain'

/** A read-only layer as the layer db records it. */
export interface LayerInfo {
  chainId: ChainId
  diffId: DiffId
  /** Bytes of file content in the layer (Docker's layer size). */
  size: number
  cacheId: string
  /** ChainID of the layer below, if any. */
  parent?: ChainId
  /** sha256 of the compressed blob it came from, if it came compressed. */
  compressedDigest?: BlobDigest
}

/** A layer built in a staging directory, ready to be registered. */
export interface StagedLayer {
  /** Staging dir holding `diff/` (becomes overlay2/<cache-id>). */
  dir: string
  /** The tar-split file (moved into the layer db entry). */
  tarSplit: string
  diffId: DiffId
  size: number
  compressedDigest?: BlobDigest
}

export class LayerStore {
  constructor(private readonly layout: Layout) {}

  async get(chainId: ChainId): Promise<LayerInfo | undefined> {
    const dir = this.layout.layerMeta(chainId)
    const diffId = await readIfExists(path.join(dir, LAYER_FILE.diffId))
    if (diffId === undefined) return undefined
    const [size, cacheId, parent, compressed] = await Promise.all(
      [LAYER_FILE.size, LAYER_FILE.cacheId, LAYER_FILE.parent, LAYER_FILE.compressedDigest].map((f) => readIfExists(path.join(dir, f))),
    )
    if (cacheId === undefined) return undefined
    return {
      chainId, diffId: asDiffId(diffId.trim()), size: Number(size ?? 0), cacheId: cacheId.trim(),
      ...(parent ? { parent: asChainId(parent.trim()) } : {}),
      ...(compressed ? { compressedDigest: asBlobDigest(compressed.trim()) } : {}),
    }
  }

  async must(chainId: ChainId): Promise<LayerInfo> {
    const l = await this.get(chainId)
    if (!l) throw new StrataError('LayerNotFound', `layer ${chainId} does not exist`)
    return l
  }

  async has(chainId: ChainId): Promise<boolean> {
    return exists(path.join(this.layout.layerMeta(chainId), LAYER_FILE.diffId))
  }

  /** ChainIDs of every registered layer. */
  async list(): Promise<ChainId[]> {
    return (await listDir(this.layout.layerdb)).filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => asChainId(`sha256:${n}`))
  }

  /** The layer and every layer below it, top first. */
  async stack(chainId: ChainId): Promise<LayerInfo[]> {
    const out: LayerInfo[] = []
    let cur: ChainId | undefined = chainId
    while (cur) {
      const l = await this.must(cur)
      out.push(l)
      cur = l.parent
    }
    return out
  }

  async shortLink(cacheId: string): Promise<string> {
    return (await mustRead(path.join(this.layout.layerDir(cacheId), LINK_FILE))).trim()
  }

  /** The `lower` value for a layer placed directly on top of `parent`: `l/<parent>:<parent's lower>`. */
  async lowerFor(parent: LayerInfo | undefined): Promise<string | undefined> {
    if (!parent) return undefined
    const link = `${LINK_DIR}/${await this.shortLink(parent.cacheId)}`
    const below = await readIfExists(path.join(this.layout.layerDir(parent.cacheId), LOWER_FILE))
    return below ? `${link}:${below.trim()}` : link
  }

  newCacheId(): string {
    return randomHex(32)
  }

  /**
   * Makes a staged layer visible as `chainId` on top of `parent`. Caller holds the store lock.
   * Returns false (and leaves the staged files for the caller to discard) when the layer exists already.
   *
   * One native task (`fsBatch`), not a trip through libuv's pool per open, write, fsync and close,
   * in two rounds, each ending in one barrier (a run of `fsync` steps runs concurrently):
   *
   * 1. Everything new, and the moves that need no order: the staged dir's `link`, `lower`,
   *    `committed`; a layerdb write-set with the tar-split moved in; the staged dir renamed to
   *    `overlay2/<cache-id>` and its `l/` short link made — then the fsyncs of all of it: the
   *    files (a build step's seal leaves the tar-split unsynced for this barrier; the other
   *    makers synced it already), the overlay2 dir and the write-set dir, `overlay2/` and `l/`.
   *    An overlay2 dir and a link that no layer db entry names are nothing yet: a crash before
   *    round 2 leaves what the cleanup pass removes (unreferenced overlay2 dirs, dangling links).
   * 2. The write-set renamed to `layerdb/sha256/<chain id>` — the moment the layer exists, once
   *    everything it names is on disk — and `layerdb/` synced: the entry itself is on disk before
   *    a cache record or an image names the layer.
   *
   * The fsyncs order what a power loss can leave behind; a kill -9 needs none of them (the page
   * cache outlives the process), only the order of the renames. Two barriers, where the overlay2
   * dir's rename had one of its own between them.
   */
  async register(staged: StagedLayer, chainId: ChainId, parent: LayerInfo | undefined): Promise<LayerInfo | false> {
    if (await this.has(chainId)) return false
    const cacheId = this.newCacheId()
    const short = randomBase32(SHORT_LINK_LENGTH)
    const lower = await this.lowerFor(parent)
    const ws = path.join(this.layout.layerdbTmp, `write-set-${randomHex(8)}`)
    const stagedFiles: [string, string][] = [[LINK_FILE, short], ...(lower ? [[LOWER_FILE, lower] as [string, string]] : []), [COMMITTED_FILE, '']]
    const wsFiles: [string, string][] = [[LAYER_FILE.diffId, staged.diffId], [LAYER_FILE.size, String(staged.size)], [LAYER_FILE.cacheId, cacheId]]
    if (parent) wsFiles.push([LAYER_FILE.parent, parent.chainId])
    if (staged.compressedDigest) wsFiles.push([LAYER_FILE.compressedDigest, staged.compressedDigest])
    const movedSplit = path.join(ws, LAYER_FILE.tarSplit)
    const final = this.layout.layerDir(cacheId)
    const link = this.layout.shortLink(short)
    const meta = this.layout.layerMeta(chainId)
    try {
      await call(() => fsBatch([
        ...stagedFiles.map(([name, data]): NativeFsOp => ({ op: 'write', path: path.join(staged.dir, name), data })),
        { op: 'mkdir', path: ws, mode: 0o755 },
        ...wsFiles.map(([name, data]): NativeFsOp => ({ op: 'writeNew', path: path.join(ws, name), data })),
        { op: 'rename', path: staged.tarSplit, target: movedSplit },
        { op: 'rename', path: staged.dir, target: final },
        { op: 'symlink', path: link, target: path.join('..', cacheId, DIFF_DIR) },
        ...stagedFiles.map(([name]): NativeFsOp => ({ op: 'fsync', path: path.join(final, name) })),
        ...wsFiles.map(([name]): NativeFsOp => ({ op: 'fsync', path: path.join(ws, name) })),
        { op: 'fsync', path: movedSplit },
        { op: 'fsync', path: final },
        { op: 'fsync', path: ws },
        { op: 'fsync', path: this.layout.overlay },
        { op: 'fsync', path: this.layout.links },
        { op: 'rename', path: ws, target: meta },
        { op: 'fsync', path: this.layout.layerdb },
      ]))
    } catch (e) {
      // Past the entry's rename only its dir's fsync failed: the layer exists (as before, when
      // that fsync came after the renames' clean-up could still run).
      if (!(await exists(ws)) && (await exists(path.join(meta, LAYER_FILE.diffId)))) throw e
      // Else everything goes back where the caller left it (the staged dir, the tar-split: either
      // may have been moved already), and what was made goes.
      await fs.rm(link, { force: true })
      if (await exists(final)) await fs.rename(final, staged.dir).catch(() => removeTree(final, this.layout.tmp))
      await fs.rename(movedSplit, staged.tarSplit).catch(() => undefined)
      await fs.rm(ws, { recursive: true, force: true })
      throw e
    }
    return {
      chainId, diffId: staged.diffId, size: staged.size, cacheId,
      ...(parent ? { parent: parent.chainId } : {}),
      ...(staged.compressedDigest ? { compressedDigest: staged.compressedDigest } : {}),
    }
  }

  /**
   * Names the compressed blob now kept for a layer (a push compressed it; the blob is in the
   * content store). Caller holds the store lock.
   */
  async setCompressedDigest(chainId: ChainId, digest: BlobDigest): Promise<void> {
    await writeAtomic(path.join(this.layout.layerMeta(chainId), LAYER_FILE.compressedDigest), digest)
  }

  /** Removes a layer: its layer db entry first, then its files. Caller holds the store lock. */
  async remove(chainId: ChainId): Promise<void> {
    const l = await this.get(chainId)
    if (!l) return
    await removeTree(this.layout.layerMeta(chainId), this.layout.tmp)
    await this.removeFiles(l.cacheId)
  }

  /** Removes an overlay2 dir and its short link. */
  async removeFiles(cacheId: string): Promise<void> {
    const short = await readIfExists(path.join(this.layout.layerDir(cacheId), LINK_FILE))
    if (short) await fs.rm(this.layout.shortLink(short.trim()), { force: true })
    await removeTree(this.layout.layerDir(cacheId), this.layout.tmp)
  }

  tarSplitPath(chainId: ChainId): string {
    return path.join(this.layout.layerMeta(chainId), LAYER_FILE.tarSplit)
  }

  diffDir(l: LayerInfo): string {
    return this.layout.diffDir(l.cacheId)
  }

  /** Is `name` a layer db entry name? */
  static isChainHex(name: string): boolean {
    return /^[0-9a-f]{64}$/.test(name)
  }

  /** ChainID `hex` form for paths. */
  static hex = hex
}
