/**
 * The build cache: content-addressed step keys and the records that map them to layers.
 *
 * A filesystem step's key (`stepKey`) is the sha256 of a JSON array:
 *
 * ```
 * ["strata-build-cache-v1", <parent ChainID or "">, <platform "linux/amd64">, <step>]
 * ```
 *
 * where `<step>` is everything the step can see, after variable substitution: for RUN the
 * argv, the environment (ENV and the ARG values in scope), user, working directory and
 * network; for WORKDIR the path and user; for COPY/ADD the sources, destination, `--chown`,
 * `--chmod`, and for each source file the sorted list of (path relative to the source, type,
 * mode — left out under `--chmod` —, symlink target, sha256 of the content) of what
 * `.dockerignore` lets through; never mtimes, never the source's uid/gid. A COPY `--from`
 * (another stage or an image) has the same rows for the files it selects there, plus their
 * owners (it keeps them) unless `--chown` — the content, not the stage's ChainID, so a rebuilt
 * stage with the same files hits (./fromkey.ts). Keys depend only on content, so a step that
 * reproduces a layer lets the steps after it hit again, and a key means the same on every
 * machine.
 *
 * A record is `<root>/builder/cache/<key hex>.json`, written atomically once the step's
 * layer is registered:
 *
 * ```
 * {"v":1,"key":"sha256:…","parent":"sha256:…"|"","chainId":"sha256:…","diffId":"sha256:…"|null,
 *  "size":N,"created":"<RFC 3339>","createdBy":"RUN …","description":"[2/5] RUN …"}
 * ```
 *
 * `diffId` null means the step changed nothing (`chainId` is then the parent's; the image
 * gets an `empty_layer` history row). The record file's mtime is when it was last used
 * (`builder prune --keep-storage` removes the least recently used first). Records keep the
 * layers they name alive: cleanup and `rmi` never remove a layer a record names, or any
 * layer below it; `builder prune` removes records and then the layers nothing uses.
 */
import fs = require('node:fs')
import path = require('node:path')
import { sha256 } from '../internal/sha256'
import { Layout, hex } from '../internal/layout'
import { listDir, readIfExists } from '../internal/fsx'
import { writeAll, type MetaWrites } from '../internal/metawrites'
import type { ChainId, DiffId } from '../internal/chain'

export const CACHE_KEY_VERSION = 'strata-build-cache-v1'
const RECORD_VERSION = 1

export type CacheRecord = {
  v: number
  key: string
  /** ChainID of the layers the step ran on; '' for none (FROM scratch). */
  parent: ChainId | ''
  size: number
  created: string
  createdBy: string
  description: string
} & (
  /** The step made a layer. */
  | { chainId: ChainId; diffId: DiffId }
  /** The step changed nothing: `chainId` is the parent's. */
  | { chainId: ChainId | ''; diffId: null }
)

/** A step's cache key (see the module comment for what goes in). */
export function stepKey(parentChain: string, platform: string, step: unknown): string {
  return sha256(JSON.stringify([CACHE_KEY_VERSION, parentChain, platform, step]))
}

export class BuildCache {
  constructor(private readonly layout: Layout) {}

  file(key: string): string {
    return path.join(this.layout.buildCache, `${hex(key)}.json`)
  }

  /** The record of `key`, or undefined. Marks it used. */
  async get(key: string): Promise<CacheRecord | undefined> {
    const raw = await readIfExists(this.file(key))
    if (raw === undefined) return undefined
    try {
      const r = JSON.parse(raw) as CacheRecord
      if (r.v !== RECORD_VERSION || r.key !== key) return undefined
      const now = new Date()
      try { fs.utimesSync(this.file(key), now, now) } catch { /* removed meanwhile */ }
      return r
    } catch {
      return undefined
    }
  }

  /**
   * Writes a record (caller holds the store lock). The layer it names exists, or `makeLayer`
   * makes it: the record's file is written and synced under a temp name meanwhile, and renamed
   * into place only once the layer is there (a record never names a layer that is not yet).
   * `along` may stage more files into the same write set (a build's image and tags, after its
   * last step's record: Builder.#exportAlong), written and synced with the record and renamed
   * in the same commit, after it and in their own order (`MetaWrites.barrier`).
   */
  async put(r: Omit<CacheRecord, 'v'>, makeLayer?: () => Promise<void>, along?: (w: MetaWrites) => Promise<void>): Promise<void> {
    fs.mkdirSync(this.layout.buildCache, { recursive: true })
    await writeAll(async (w) => {
      const layer = makeLayer?.()
      await w.put(this.file(r.key), JSON.stringify({ v: RECORD_VERSION, ...r }))
      // The layer's first native task is under way before the files along are staged (their
      // JS would hold it back): they go in the event loop's next turn.
      const staged = (async () => {
        if (!along) return
        await new Promise((resolve) => setImmediate(resolve))
        await along(w)
      })()
      // The files are written and synced while the layer is made (their fsyncs share a barrier
      // with the layer's); all settle before a failure is thrown: the temp files are then there
      // to discard.
      const settled = await Promise.allSettled([layer, staged.then(() => w.flush())])
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected')
      if (failed) throw failed.reason
    })
  }

  async remove(key: string): Promise<void> {
    await fs.promises.rm(this.file(key), { force: true })
  }

  /** Every readable record with its last use. */
  async all(): Promise<(CacheRecord & { lastUsed: Date })[]> {
    const out: (CacheRecord & { lastUsed: Date })[] = []
    for (const name of await listDir(this.layout.buildCache)) {
      if (!/^[0-9a-f]{64}\.json$/.test(name)) continue
      const p = path.join(this.layout.buildCache, name)
      const raw = await readIfExists(p)
      if (raw === undefined) continue
      try {
        const r = JSON.parse(raw) as CacheRecord
        if (r.v !== RECORD_VERSION) continue
        out.push({ ...r, lastUsed: fs.statSync(p).mtime })
      } catch { /* a torn record is no record */ }
    }
    return out
  }

  /** ChainIDs the records name (their layers, and so every layer below, stay alive). */
  async chainIds(): Promise<ChainId[]> {
    return [...new Set((await this.all()).flatMap((r) => (r.chainId ? [r.chainId] : [])))]
  }
}
