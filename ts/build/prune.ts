/**
 * `builder prune`: removes build cache records and then the layers nothing needs any more.
 *
 * Without `all`, only records whose layer no image uses ("dangling" cache); with `all`, every
 * record. `keepStorage` keeps the most recently used records whose layers add up to at most
 * that many bytes (the least recently used go first). Layers go only when no image, container
 * or remaining record needs them (`StoreContext.usedLayers`), top first. A prune that removes
 * a record also drops the `COPY --from` memos (`builder/fromkeys/`, recomputed when needed).
 *
 * `filter` takes what Docker 20.10's `docker builder prune --filter` takes (the engine turns
 * them into BuildKit prune filters; strata checks them as the engine does, with its messages):
 *
 * - `until=DURATION` (or its older name `unused-for`): only records not used for that long
 *   (Go duration syntax: `90m`, `24h`, `1h30m`); both at once is a conflict;
 * - `id=REGEXP`: records whose ID (the key's hex, as `builder prune` prints its first 25
 *   characters) matches (BuildKit's `id~=`);
 * - `parent=ID`, `description=TEXT`, `type=TYPE`, `inuse=BOOL`, `shared=BOOL`,
 *   `private=BOOL`: equality (BuildKit's `==`) with the record's fields: `parent` is the
 *   parent ChainID (hex, with or without `sha256:`), `description` the step's progress name,
 *   `type` always `regular` (a strata record is a layer), `inuse` `false` (a prune holds the
 *   store lock, so no step is using a record), `shared` `true` when an image uses the record's
 *   layer, `private` the opposite;
 * - anything else is refused (`Invalid filter 'x'`), and each key takes one value.
 */
import { fsp as fs } from '../internal/lazy'
import { StoreContext } from '../internal/context'
import { chainIdsOf, type ChainId } from '../internal/chain'
import { StrataError } from '../errors'
import { parseGoDuration } from './instructions'
import type { CacheRecord } from './cache'
import { releaseBlobs } from '../internal/content'

export interface PruneOptions {
  /** Every record, not only those no image uses. */
  all?: boolean
  /** Bytes of cached layers to keep (most recently used first). */
  keepStorage?: number
  /** `key=value` filters as `docker builder prune --filter` takes them (see the module comment). */
  filter?: string[]
}

export interface PruneResult {
  /** Keys of the records removed. */
  deleted: string[]
  /** Bytes of layer content removed from disk. */
  reclaimed: number
}

/** The filter keys the engine passes on to BuildKit (moby's `cacheFields`, the exposed ones). */
const FIELDS = ['id', 'parent', 'type', 'description', 'inuse', 'shared', 'private'] as const
type Field = (typeof FIELDS)[number]

interface Filters {
  /** Records used more recently than this many ms ago are kept. */
  keepMs: number
  fields: Map<Field, string>
}

function refused(message: string): never {
  throw new StrataError('InvalidArgument', `failed to prune build cache: ${message}`)
}

/** Parses and checks `key=value` filters as the engine does (moby's toBuildkitPruneInfo). */
export function parsePruneFilters(list: readonly string[]): Filters {
  const byKey = new Map<string, string[]>()
  for (const f of list) {
    const eq = f.indexOf('=')
    if (eq < 0) throw new StrataError('InvalidArgument', `invalid argument "${f}" for "--filter" flag: bad format of filter (expected name=value)`)
    const k = f.slice(0, eq).trim().toLowerCase()
    const v = f.slice(eq + 1).trim()
    const vs = byKey.get(k) ?? []
    // docker's filters.Args holds a set of values per key.
    if (!vs.includes(v)) vs.push(v)
    byKey.set(k, vs)
  }
  for (const k of byKey.keys()) {
    if (k !== 'until' && k !== 'unused-for' && !(FIELDS as readonly string[]).includes(k)) refused(`Invalid filter '${k}'`)
  }
  const until = byKey.get('until') ?? []
  const unused = byKey.get('unused-for') ?? []
  if (until.length > 0 && unused.length > 0) refused('conflicting filters: "until" and "unused-for"')
  const durations = [...until, ...unused]
  if (durations.length > 1) refused('filters expect only one value')
  let keepMs = 0
  if (durations.length === 1) {
    try {
      keepMs = parseGoDuration(durations[0]) / 1e6
    } catch (e) {
      refused(`"${unused.length > 0 ? 'unused-for' : 'until'}" filter expects a duration (e.g., '24h'): ${(e as Error).message}`)
    }
  }
  const fields = new Map<Field, string>()
  for (const k of FIELDS) {
    const vs = byKey.get(k)
    if (!vs) continue
    if (vs.length > 1) refused('filters expect only one value')
    if (vs[0] === '') refused(`failed to parse prune filters [${k}==]: filters: parse error: [${k}==]: expected value or quoted: invalid argument`)
    if (k === 'id') {
      try {
        new RegExp(vs[0])
      } catch (e) {
        refused(`failed to parse prune filters [id~=${vs[0]}]: ${(e as Error).message}`)
      }
    }
    fields.set(k, vs[0])
  }
  return { keepMs, fields }
}

function matches(f: Filters, r: CacheRecord & { lastUsed: Date }, shared: boolean, now: number): boolean {
  if (f.keepMs > 0 && now - r.lastUsed.getTime() < f.keepMs) return false
  for (const [k, want] of f.fields) {
    const hexOf = (d: string): string => d.replace(/^sha256:/, '')
    switch (k) {
      case 'id': if (!new RegExp(want).test(hexOf(r.key))) return false; break
      case 'parent': if (hexOf(r.parent) !== hexOf(want)) return false; break
      case 'type': if (want !== 'regular') return false; break
      case 'description': if (r.description !== want) return false; break
      case 'inuse': if (want !== 'false') return false; break
      case 'shared': if (want !== String(shared)) return false; break
      case 'private': if (want !== String(!shared)) return false; break
    }
  }
  return true
}

export async function pruneBuildCache(ctx: StoreContext, opts: PruneOptions = {}): Promise<PruneResult> {
  // Bad filters are refused before anything is touched.
  const filters = parsePruneFilters(opts.filter ?? [])
  return ctx.exclusive(async () => {
    const records = await ctx.buildCache.all()
    const inImages = new Set<string>()
    for (const img of await ctx.images.all()) for (const c of chainIdsOf(img.config.rootfs.diff_ids)) inImages.add(c)
    const now = Date.now()
    let candidates = records.filter((r) => (opts.all || !inImages.has(r.chainId)) && matches(filters, r, inImages.has(r.chainId), now))
    candidates.sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime())
    if (opts.keepStorage !== undefined) {
      let total = records.reduce((n, r) => n + (r.diffId ? r.size : 0), 0)
      const chosen = []
      for (const r of candidates) {
        if (total <= opts.keepStorage) break
        chosen.push(r)
        if (r.diffId) total -= r.size
      }
      candidates = chosen
    }
    for (const r of candidates) await ctx.buildCache.remove(r.key)
    // The COPY --from memos (./fromkey.ts) are recomputable; they go with any pruned record.
    if (candidates.length > 0) await fs.rm(ctx.layout.fromKeys, { recursive: true, force: true })
    // So do the incremental COPY hints (./reuse.ts), which may name a layer about to go.
    if (candidates.length > 0) await fs.rm(ctx.layout.lastCopies, { recursive: true, force: true })
    // And the parsed Dockerfiles (./parse-memo.ts).
    if (candidates.length > 0) await fs.rm(ctx.layout.parsedDockerfiles, { recursive: true, force: true })
    // Layers of the removed records (and below) that nothing else needs now.
    const used = await ctx.usedLayers()
    let reclaimed = 0
    const blobs: (string | undefined)[] = []
    for (const r of candidates) {
      let cur: ChainId | '' | undefined = r.chainId
      while (cur && !used.has(cur)) {
        const l = await ctx.layers.get(cur)
        if (!l) break
        await ctx.layers.remove(cur)
        blobs.push(l.compressedDigest)
        reclaimed += l.size
        used.add(cur)
        cur = l.parent
      }
    }
    await releaseBlobs(ctx, blobs)
    return { deleted: candidates.map((r) => r.key), reclaimed }
  })
}
