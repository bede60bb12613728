/**
 * `ps --filter`, `-n`, `-l` as the daemon applies them (moby daemon/list.go): filters are
 * validated first (unknown keys, bad `status`/`health`/`is-task`/`exited` values, `before` and
 * `since` naming no container are errors worded as docker's), then containers are walked newest
 * first — `before` skips everything up to and including its container, `since` stops at its
 * container, the limit stops after N rows — and each is kept when every filter matches:
 * `name` and `id` are regular expressions (or exact), `label` is `KEY` or `KEY=VALUE`, `ancestor`
 * is an image and every image built on it, `exited` a code of a container that ran and stopped.
 */
import { StrataError } from '../errors'
import { splitFilter } from '../internal/filter-arg'
import type { ContainerRecord } from './record'

/** The filters the daemon accepts (`docker ps --filter KEY=VALUE`). */
export const PS_FILTER_KEYS = ['ancestor', 'before', 'expose', 'exited', 'health', 'id', 'isolation', 'is-task', 'label', 'name', 'network', 'publish', 'since', 'status', 'volume'] as const
export type PsFilterKey = (typeof PS_FILTER_KEYS)[number]
/** Each filter key → its values (a key given twice matches either value). */
export type PsFilters = Partial<Record<PsFilterKey, string[]>>

const STATES = new Set(['paused', 'restarting', 'removing', 'running', 'dead', 'created', 'exited'])
const HEALTH = new Set(['starting', 'healthy', 'unhealthy', 'none'])

/** Parses docker's `KEY=VALUE` filter arguments (the CLI's FilterOpt). */
export function parseFilterArgs(args: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const a of args) {
    const [k, v] = splitFilter(a)
    ;(out[k.trim()] ??= []).push(v.trim())
  }
  return out
}

/** Rejects keys outside `accepted` with the daemon's `Invalid filter 'KEY'`. */
export function validateFilterKeys(filters: Record<string, unknown>, accepted: readonly string[]): void {
  for (const k of Object.keys(filters)) if (!accepted.includes(k)) throw new StrataError('InvalidArgument', `Invalid filter '${k}'`)
}

/** filters.Args.Match: an exact value, or a value that is a regular expression matching. */
export function filterMatch(values: readonly string[] | undefined, source: string): boolean {
  if (!values || values.length === 0) return true
  if (values.includes(source)) return true
  return values.some((v) => {
    try {
      return new RegExp(v).test(source)
    } catch {
      return false
    }
  })
}

/** filters.Args.MatchKVList: every `KEY` or `KEY=VALUE` holds in `labels`. */
export function matchKVList(values: readonly string[] | undefined, labels: Record<string, string> | null | undefined): boolean {
  if (!values || values.length === 0) return true
  if (!labels || Object.keys(labels).length === 0) return false
  return values.every((v) => {
    const eq = v.indexOf('=')
    const k = eq < 0 ? v : v.slice(0, eq)
    if (!(k in labels)) return false
    return eq < 0 || labels[k] === v.slice(eq + 1)
  })
}

/** What the filtering needs from the store. */
export interface PsLookup {
  /** Image ID for a reference or ID prefix; undefined when there is no such image. */
  imageId(ref: string): Promise<string | undefined>
  /** IDs of the images whose parent is `id`. */
  children(id: string): Promise<string[]>
  /** The network a container is on (its network mode). */
  network(r: ContainerRecord): Promise<string>
}

export interface PsSelection {
  all?: boolean
  /** `-n N` (`-l` is 1): the N newest of any state. */
  limit?: number
  filters?: PsFilters
}

function zeroTime(t: string): boolean {
  return t.startsWith('0001')
}

/**
 * The records `ps` shows, newest first. `records` are all containers of the store.
 */
export async function selectContainers(records: ContainerRecord[], sel: PsSelection, lookup: PsLookup): Promise<ContainerRecord[]> {
  const f: PsFilters = sel.filters ?? {}
  validateFilterKeys(f, PS_FILTER_KEYS)
  let all = Boolean(sel.all)
  const exited = (f.exited ?? []).map((v) => {
    if (!/^[+-]?\d+$/.test(v)) throw new StrataError('InvalidArgument', `strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`)
    return Number(v)
  })
  for (const s of f.status ?? []) {
    if (!STATES.has(s)) throw new StrataError('InvalidArgument', `Invalid filter 'status=${s}'`)
    all = true
  }
  if (f['is-task']?.length && !(f['is-task'].length === 1 && ['true', 'false'].includes(f['is-task'][0]))) {
    throw new StrataError('InvalidArgument', `Invalid filter 'is-task=${f['is-task'].join(',')}'`)
  }
  for (const h of f.health ?? []) if (!HEALTH.has(h)) throw new StrataError('InvalidArgument', `Unrecognised filter value for health: ${h}`)
  for (const key of ['publish', 'expose'] as const) {
    for (const v of f[key] ?? []) {
      if (v.includes(':')) throw new StrataError('InvalidArgument', `filter for '${key}' should not contain ':': ${v}`)
      if (!/^\d+(-\d+)?(\/\w+)?$/.test(v)) throw new StrataError('InvalidArgument', `error while looking up for ${key} ${v}: invalid port range`)
    }
  }
  const byIdOrName = (v: string): ContainerRecord => {
    const exact = records.find((r) => r.ID === v)
    if (exact) return exact
    const named = records.filter((r) => r.Name.replace(/^\//, '') === v.replace(/^\//, ''))
    if (named.length === 1) return named[0]
    throw new StrataError('ContainerNotFound', `no such container ${v}`)
  }
  let before = f.before?.length ? byIdOrName(f.before[f.before.length - 1]) : undefined
  const since = f.since?.length ? byIdOrName(f.since[f.since.length - 1]) : undefined
  const ancestors = new Set<string>()
  const ancestorFilter = Boolean(f.ancestor?.length)
  for (const a of f.ancestor ?? []) {
    const id = await lookup.imageId(a)
    if (!id) continue
    const stack = [id]
    while (stack.length) {
      const cur = stack.pop()!
      if (ancestors.has(cur)) continue
      ancestors.add(cur)
      stack.push(...(await lookup.children(cur)))
    }
  }

  // The daemon's candidates: every container, or those the id/name filters pick out.
  let candidates = [...records]
  if (f.id?.length || f.name?.length) {
    const picked = new Set<string>()
    for (const v of f.id ?? []) {
      const hits = records.filter((r) => r.ID.startsWith(v))
      if (v && hits.length === 1) picked.add(hits[0].ID)
    }
    if (f.name?.length) {
      for (const r of records) {
        if (f.id?.length && !picked.has(r.ID)) continue
        if (filterMatch(f.name, r.Name) || filterMatch(f.name, r.Name.slice(1))) picked.add(r.ID)
      }
    }
    candidates = records.filter((r) => picked.has(r.ID))
  }
  candidates.sort((a, b) => Date.parse(b.Created) - Date.parse(a.Created))
  const limit = sel.limit ?? -1
  const out: ContainerRecord[] = []
  for (const r of candidates) {
    if (before) {
      if (r.ID === before.ID) before = undefined
      continue
    }
    if (since && r.ID === since.ID) break
    if (!r.State.Running && !all && limit <= 0) continue
    if (!filterMatch(f.name, r.Name) && !filterMatch(f.name, r.Name.slice(1))) continue
    if (!filterMatch(f.id, r.ID)) continue
    if (f['is-task']?.length && f['is-task'][0] === 'true') continue
    if (!matchKVList(f.label, r.Config.Labels)) continue
    if (f.isolation?.length && !f.isolation.some((v) => v === 'default' || v === '')) continue
    if (limit > 0 && out.length === limit) break
    if (exited.length && !exited.some((c) => c === r.State.ExitCode && !r.State.Running && !zeroTime(r.State.StartedAt))) continue
    if (!filterMatch(f.status, r.State.Status)) continue
    if (f.health?.length && !f.health.includes('none')) continue
    if (f.volume?.length) continue // no container here has volumes
    if (f.network?.length) {
      const net = await lookup.network(r)
      if (!f.network.some((v) => filterMatch([v], net))) continue
    }
    if (f.publish?.length || f.expose?.length) continue // no published or exposed ports here
    if (ancestorFilter && !ancestors.has(r.Image)) continue
    out.push(r)
  }
  return out
}
