/**
 * `container prune`, `image prune [-a]` and what `system prune` runs of them, as the daemon
 * decides (moby daemon/prune.go, daemon/images/image_prune.go):
 *
 * - containers: every container that is not running (a paused one is) and matches the filters
 *   is removed as `rm` would; the space reclaimed is their writable layers' size;
 * - images: dangling ones (no tag) only, or with `all` every image no container uses; an image
 *   with references has each of them removed as `rmi REF` would (so an image some container
 *   uses keeps its last reference: that `rmi` is a conflict, and a conflict is skipped, not an
 *   error); intermediate images (no reference, a child) are left to their children; the space
 *   reclaimed is the size of the layers that went.
 *
 * Filters: `until` (a duration, a date/time or a unix time, as Docker's GetTimestamp reads
 * it), `label` / `label!` (`KEY` or `KEY=VALUE`), for images also `dangling`.
 */
import { StoreContext } from './context'
import { StrataError } from './errors'
import { chainIdsOf } from './chain'
import { hex } from './layout'
import type { Images, RemoveEvent } from './images'
import type { Containers } from './containers/containers'
import { matchKVList, validateFilterKeys } from './containers/filters'

export type PruneFilters = Record<string, string[]>

export interface ContainerPruneResult {
  /** IDs of the removed containers, newest first. */
  deleted: string[]
  spaceReclaimed: number
}

export interface ImagePruneOptions {
  /** `-a`: every image without a container, not only dangling ones. */
  all?: boolean
  filters?: PruneFilters
}

export interface ImagePruneResult {
  /** Docker's `untagged:` / `deleted:` lines, in order. */
  deleted: RemoveEvent[]
  spaceReclaimed: number
}

/** Go's `time.ParseDuration`: `1h30m`, `10s`, `1.5h`, `-2m`; undefined when it is not one. */
function parseDuration(s: string): number | undefined {
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s)
  if (!m) return s === '0' ? 0 : undefined
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  let ms = 0
  for (const part of s.replace(/^[+-]/, '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) ms += Number(part[1]) * unit[part[2]]
  return m[1] === '-' ? -ms : ms
}

/**
 * Docker's `until` value (`GetTimestamp` then `ParseTimestamps`) → milliseconds since the epoch.
 * Dates without a zone are the local time, as the daemon reads them.
 */
export function parseUntil(value: string, now = Date.now()): number {
  const d = value !== '0' ? parseDuration(value) : undefined
  if (d !== undefined) return Math.floor((now - d) / 1000) * 1000
  const zoned = /[zZ+]/.test(value) || (value.match(/-/g)?.length ?? 0) === 3
  const iso = /^\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d{1,9})?)?)?)?([zZ]|[+-]\d{2}:\d{2})?$/.exec(value)
  if (iso) {
    let v = value
    if (!iso[1]) v += 'T00:00:00'
    else if (!iso[2]) v = v.replace(/(T\d{2})/, '$1:00:00')
    else if (!iso[3]) v = v.replace(/(T\d{2}:\d{2})/, '$1:00')
    const t = Date.parse(zoned ? v : v.replace(/([zZ]|[+-]\d{2}:\d{2})$/, ''))
    if (!Number.isNaN(t)) return t
  }
  if (value.includes('-')) throw new StrataError('InvalidArgument', `parsing time ${JSON.stringify(value)}: cannot parse ${JSON.stringify(value)} as a date`)
  if (!/^-?\d+(\.\d+)?$/.test(value)) throw new StrataError('InvalidArgument', `failed to parse value as time or duration: ${JSON.stringify(value)}`)
  const [s, frac = ''] = value.split('.')
  return Number(s) * 1000 + Math.floor(Number((frac + '000').slice(0, 3)))
}

function untilOf(filters: PruneFilters): number | undefined {
  const u = filters.until
  if (!u || u.length === 0) return undefined
  if (u.length > 1) throw new StrataError('InvalidArgument', 'more than one until filter specified')
  return parseUntil(u[0])
}

/** moby `matchLabels`: `label` all match, `label!` none does. */
export function matchPruneLabels(filters: PruneFilters, labels: Record<string, string> | null | undefined): boolean {
  if (!matchKVList(filters.label, labels)) return false
  if (filters['label!']?.length && matchKVList(filters['label!'], labels)) return false
  return true
}

/** `docker container prune`. */
export async function pruneContainers(ctx: StoreContext, containers: Containers, filters: PruneFilters = {}): Promise<ContainerPruneResult> {
  validateFilterKeys(filters, ['label', 'label!', 'until'])
  const until = untilOf(filters)
  const out: ContainerPruneResult = { deleted: [], spaceReclaimed: 0 }
  const stopped = (await containers.records())
    .filter((r) => !r.State.Running)
    .filter((r) => until === undefined || Date.parse(r.Created) <= until)
    .filter((r) => matchPruneLabels(filters, r.Config.Labels))
    .sort((a, b) => Date.parse(b.Created) - Date.parse(a.Created))
  if (stopped.length === 0) return out
  const sizes = await containers.sizes(stopped.map((r) => r.ID))
  for (const [i, r] of stopped.entries()) {
    try {
      await containers.remove(r.ID)
    } catch (e) {
      if (e instanceof StrataError) continue // moby logs it and goes on
      throw e
    }
    out.deleted.push(r.ID)
    out.spaceReclaimed += sizes[i].sizeRw
  }
  return out
}

/** `docker image prune [-a]`. */
export async function pruneImages(ctx: StoreContext, images: Images, opts: ImagePruneOptions = {}): Promise<ImagePruneResult> {
  const filters = opts.filters ?? {}
  validateFilterKeys(filters, ['dangling', 'label', 'label!', 'until'])
  let danglingOnly = !opts.all
  const dangling = filters.dangling
  if (dangling?.length) {
    if (dangling.some((v) => v === 'false' || v === '0')) danglingOnly = false
    else if (!dangling.some((v) => v === 'true' || v === '1')) throw new StrataError('InvalidArgument', `Invalid filter 'dangling=[${dangling.join(' ')}]'`)
  }
  const until = untilOf(filters)
  return ctx.exclusive(async () => {
    const all = await ctx.images.all()
    const parents = new Map<string, string | undefined>()
    for (const img of all) parents.set(img.id, await ctx.images.parent(img.id))
    const hasChildren = (id: string) => [...parents.values()].includes(id)
    const layerSizes = new Map<string, number>()
    for (const img of all) {
      for (const c of chainIdsOf(img.config.rootfs.diff_ids)) {
        if (!layerSizes.has(c)) layerSizes.set(c, (await ctx.layers.get(c))?.size ?? 0)
      }
    }
    const candidates = all
      .filter((img) => !danglingOnly || !hasChildren(img.id))
      .sort((a, b) => (Date.parse(b.config.created ?? '') || 0) - (Date.parse(a.config.created ?? '') || 0))
    const out: ImagePruneResult = { deleted: [], spaceReclaimed: 0 }
    for (const img of candidates) {
      const refs = await ctx.repos.refsFor(img.id)
      const names = [...refs.tags, ...refs.digests]
      if (names.length === 0 && hasChildren(img.id)) continue
      if (until !== undefined && (Date.parse(img.config.created ?? '') || 0) > until) continue
      if (!matchPruneLabels(filters, img.config.config?.Labels as Record<string, string> | undefined)) continue
      if (!(await ctx.images.has(img.id))) continue // went with an image pruned before it
      const targets = names.length > 0 ? (danglingOnly && refs.tags.length > 0 ? [] : names) : [hex(img.id)]
      for (const t of targets) {
        try {
          out.deleted.push(...(await images.remove(t)))
        } catch (e) {
          if (e instanceof StrataError) continue // a conflict (or a vanished ref) is skipped, as moby does
          throw e
        }
      }
    }
    for (const ev of out.deleted) if ('deleted' in ev) out.spaceReclaimed += layerSizes.get(ev.deleted) ?? 0
    return out
  })
}
