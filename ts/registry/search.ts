/**
 * `search`: Docker Hub's search API where a registry has it, the registry's catalog where not.
 *
 * - Docker Hub (and any registry serving its v1 search API): `GET /v1/search?q=TERM&n=LIMIT`
 *   answers `{"results": [{"name", "description", "star_count", "is_official", "is_automated"}]}`;
 *   the results are kept in the order the registry gave them, at most LIMIT, then filtered
 *   (Docker's daemon filters after the limit too).
 * - A plain OCI registry has no search (`/v1/search` is 404 there): strata walks its
 *   `/v2/_catalog` page by page (`?n=PAGE&last=NAME`, following the `Link: <...>; rel="next"`
 *   header when the registry sends one) and keeps the repositories whose name contains TERM, as
 *   `host/repository` so that `strata pull NAME` works on what it prints. `docker search`
 *   cannot search such registries at all.
 *
 * The term names the registry the way `docker search` reads it: `localhost:5000/foo` searches
 * `localhost:5000` for `foo`; a term without a registry part searches Docker Hub (or
 * `opts.registry`). HTTP is the transport's (Rust); this module decides what to ask.
 */
import { StrataError } from '../errors'
import { splitFilter } from '../internal/filter-arg'
import { DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN } from '../reference'

/** Docker Hub's search API host (`IndexServer`). */
export const HUB_INDEX_HOST = 'index.docker.io'
export const DEFAULT_LIMIT = 25
export const MAX_LIMIT = 100
/** Repositories asked for per catalog page. */
export const CATALOG_PAGE = 100
/** A registry that keeps answering "next" is stopped after this many pages. */
const MAX_CATALOG_PAGES = 10_000

export interface SearchResult {
  name: string
  description: string
  starCount: number
  isOfficial: boolean
  isAutomated: boolean
}

export interface SearchFilters {
  /** At least this many stars. */
  stars?: number
  isOfficial?: boolean
  isAutomated?: boolean
}

export interface SearchOptions {
  /** Results asked for (1–100, default 25). */
  limit?: number
  /** Registry to search when the term names none (default Docker Hub). */
  registry?: string
  filters?: SearchFilters
  /** Repositories asked for per catalog page (default {@link CATALOG_PAGE}). */
  pageSize?: number
  signal?: AbortSignal
}

/** An HTTP answer from the transport. */
export interface HttpAnswer {
  status: number
  /** A header's value (case-insensitive), if sent. */
  header(name: string): string | undefined
  body: Buffer
}

/**
 * GET `path` (with query) on `host` through the transport (auth flow included; `scope` is the
 * token scope the request needs, e.g. `registry:catalog:*`). A 4xx/5xx is an answer, not a throw.
 */
export type RegistryGet = (host: string, path: string, scope: string | undefined, signal?: AbortSignal) => Promise<HttpAnswer>

/** `splitReposSearchTerm`: `host:5000/foo` → [`host:5000`, `foo`]; `foo/bar` → [docker.io, `foo/bar`]. */
export function splitSearchTerm(term: string, defaultRegistry = DEFAULT_DOMAIN): [string, string] {
  const i = term.indexOf('/')
  if (i > 0) {
    const first = term.slice(0, i)
    if (/[.:]/.test(first) || first === 'localhost') return [first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first, term.slice(i + 1)]
  }
  return [defaultRegistry, term]
}

/** Parses `-f` values the way Docker's daemon does (`stars=N`, `is-official=BOOL`, `is-automated=BOOL`). */
export function parseSearchFilters(list: readonly string[]): SearchFilters {
  const f: SearchFilters = {}
  const bool = (k: string, v: string): boolean => {
    const l = v.toLowerCase()
    if (['true', '1', 't'].includes(l)) return true
    if (['false', '0', 'f'].includes(l)) return false
    throw new StrataError('InvalidArgument', `Invalid filter '${k}=${v}'`)
  }
  for (const item of list) {
    const [k, v] = splitFilter(item)
    switch (k) {
      case 'stars': {
        if (!/^-?\d+$/.test(v)) throw new StrataError('InvalidArgument', `Invalid filter 'stars=${v}'`)
        f.stars = Math.max(f.stars ?? -Infinity, Number(v))
        break
      }
      case 'is-official': f.isOfficial = bool(k, v); break
      case 'is-automated': f.isAutomated = bool(k, v); break
      default: throw new StrataError('InvalidArgument', `Invalid filter '${k}'`)
    }
  }
  return f
}

function matches(r: SearchResult, f: SearchFilters): boolean {
  if (f.stars !== undefined && r.starCount < f.stars) return false
  if (f.isOfficial !== undefined && r.isOfficial !== f.isOfficial) return false
  if (f.isAutomated !== undefined && r.isAutomated !== f.isAutomated) return false
  return true
}

function registryError(host: string, what: string, a: HttpAnswer): StrataError {
  let code = ''
  try {
    const j = JSON.parse(a.body.toString('utf8')) as { errors?: { code?: string }[] }
    code = j.errors?.[0]?.code ?? ''
  } catch { /* not the registry's JSON */ }
  const errCode = a.status === 401 || a.status === 403 ? 'Unauthorized' : a.status === 404 ? 'NotFound' : 'RegistryError'
  return new StrataError(errCode, `${what} on ${host}: unexpected status ${a.status}${code ? ` (${code})` : ''}`, { status: a.status, ...(code ? { registryCode: code } : {}) })
}

function parseHubResults(body: Buffer): SearchResult[] | undefined {
  let j: unknown
  try {
    j = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  const results = (j as { results?: unknown })?.results
  if (!Array.isArray(results)) return undefined
  return results.filter((r) => r && typeof r === 'object' && typeof (r as { name?: unknown }).name === 'string').map((r) => {
    const o = r as { name: string; description?: unknown; star_count?: unknown; is_official?: unknown; is_automated?: unknown }
    return {
      name: o.name,
      description: typeof o.description === 'string' ? o.description : '',
      starCount: typeof o.star_count === 'number' ? o.star_count : 0,
      isOfficial: o.is_official === true,
      isAutomated: o.is_automated === true,
    }
  })
}

/** The path of the next catalog page: from `Link` when given, else `?last=` the page's last name. */
function nextCatalogPage(a: HttpAnswer, repos: string[], pageSize: number): string | undefined {
  const link = a.header('link')
  if (link) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)
    if (!m) return undefined
    const u = m[1]
    if (u.startsWith('/')) return u
    try {
      const url = new URL(u)
      return url.pathname + url.search
    } catch {
      return undefined
    }
  }
  // No Link header: a full page may have more after it.
  if (repos.length < pageSize) return undefined
  return `/v2/_catalog?n=${pageSize}&last=${encodeURIComponent(repos[repos.length - 1])}`
}

/** Searches a registry. */
export async function search(get: RegistryGet, term: string, opts: SearchOptions = {}): Promise<SearchResult[]> {
  const limit = opts.limit ?? DEFAULT_LIMIT
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new StrataError('InvalidArgument', `Limit ${limit} is outside the range of [1, ${MAX_LIMIT}]`)
  const [registry, remote] = splitSearchTerm(term, opts.registry ?? DEFAULT_DOMAIN)
  if (remote === '') throw new StrataError('InvalidArgument', 'search needs a term')
  const filters = opts.filters ?? {}
  const isHub = registry === DEFAULT_DOMAIN
  const host = isHub ? HUB_INDEX_HOST : registry
  // Docker Hub stores official images as `foo`, not `library/foo`.
  const q = isHub && remote.startsWith('library/') ? remote.slice('library/'.length) : remote
  const v1 = await get(host, `/v1/search?q=${encodeURIComponent(q)}&n=${limit}`, undefined, opts.signal)
  if (v1.status === 200) {
    const results = parseHubResults(v1.body)
    if (results) return results.slice(0, limit).filter((r) => matches(r, filters))
    if (isHub) throw new StrataError('RegistryError', `search on ${host}: the answer is not Docker Hub's search JSON`)
  } else if (isHub || (v1.status !== 404 && v1.status !== 405 && v1.status !== 401 && v1.status !== 403)) {
    // 401/403 on /v1 of a registry with token auth for /v2 only is "no v1 here" as well.
    throw registryError(host, 'search', v1)
  }
  // A registry without search: its catalog.
  const out: SearchResult[] = []
  const pageSize = opts.pageSize ?? CATALOG_PAGE
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new StrataError('InvalidArgument', `invalid catalog page size ${pageSize}`)
  let path: string | undefined = `/v2/_catalog?n=${pageSize}`
  for (let page = 0; path && out.length < limit; page++) {
    if (page >= MAX_CATALOG_PAGES) throw new StrataError('RegistryError', `catalog of ${host}: more than ${MAX_CATALOG_PAGES} pages`)
    const a = await get(host, path, 'registry:catalog:*', opts.signal)
    if (a.status !== 200) throw registryError(host, 'catalog', a)
    let repos: string[]
    try {
      const j = JSON.parse(a.body.toString('utf8')) as { repositories?: unknown }
      if (!Array.isArray(j.repositories) || !j.repositories.every((r) => typeof r === 'string')) throw new Error('no "repositories" list')
      repos = j.repositories as string[]
    } catch (e) {
      throw new StrataError('RegistryError', `catalog of ${host}: ${(e as Error).message}`)
    }
    for (const r of repos) {
      if (!r.includes(remote)) continue
      const result: SearchResult = { name: `${registry}/${r}`, description: '', starCount: 0, isOfficial: false, isAutomated: false }
      if (matches(result, filters)) out.push(result)
      if (out.length >= limit) break
    }
    const next = nextCatalogPage(a, repos, pageSize)
    path = next === path ? undefined : next
  }
  return out
}
