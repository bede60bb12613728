/**
 * From what a user types to an image ID, and tagging — Docker's lookup rules:
 * a full 64-hex ID (with or without `sha256:`) is an ID; otherwise the string is parsed as a
 * normalised reference (`busybox` → `busybox:latest`) and looked up among the tags/digests;
 * failing that, a hex string is tried as an ID prefix (ambiguous prefixes are an error).
 */
import { StoreContext } from './context'
import { StrataError } from '../errors'
import { parseNormalizedNamed, parseReference, isFullId, isIdPrefix, Reference, withDefaultTag } from '../reference'
import type { RepoMap } from './repositories'
import { writeAll, type MetaWrites } from './metawrites'

/** Key of a reference in repositories.json: `repo:tag` or `repo@digest` (familiar). */
export function refKey(ref: Reference): string {
  return ref.digest !== undefined ? `${ref.familiarName}@${ref.digest}` : `${ref.familiarName}:${ref.tag ?? 'latest'}`
}

export interface Resolved {
  id: string
  /** The reference the user named, when they named one (not an ID). */
  ref?: Reference
}

export async function resolveImage(ctx: StoreContext, s: string): Promise<Resolved> {
  if (isFullId(s)) {
    const id = s.startsWith('sha256:') ? s : `sha256:${s}`
    if (await ctx.images.has(id)) return { id }
    throw new StrataError('ImageNotFound', `No such image: ${s}`)
  }
  let ref: Reference | undefined
  try {
    ref = withDefaultTag(parseNormalizedNamed(s))
  } catch (e) {
    if (!isIdPrefix(s)) throw e
  }
  if (ref) {
    const key = refKey(ref)
    const id = await ctx.repos.resolve(ref.familiarName, key)
    if (id && (await ctx.images.has(id))) return { id, ref }
  }
  if (isIdPrefix(s)) {
    const hits = await ctx.images.byPrefix(s)
    if (hits.length === 1) return { id: hits[0] }
    if (hits.length > 1) throw new StrataError('AmbiguousReference', `multiple IDs found with provided prefix: ${s}`)
  }
  throw new StrataError('ImageNotFound', `No such image: ${ref ? ref.familiarString() : s}`)
}

export interface TagResult {
  familiar: string
  /** The image the tag pointed at before, if it moved. */
  replaced?: string
}

/** Points `target` (a tag reference) at `id` in `repos` (in memory). */
export function tagIn(repos: RepoMap, target: string, id: string): TagResult {
  const ref = parseReference(target)
  if (ref.digest !== undefined) throw new StrataError('InvalidReference', 'refusing to create a tag with a digest reference')
  const key = refKey(ref)
  const before = repos[ref.familiarName]?.[key]
  ;(repos[ref.familiarName] ??= {})[key] = id
  return { familiar: key, ...(before && before !== id ? { replaced: before } : {}) }
}

/**
 * Points the tags `targets` at `id` in one write of repositories.json (with the image's
 * lastUpdated): all of them or, on any failure (a full disk), none. Caller holds the store lock.
 */
export async function setTags(ctx: StoreContext, tags: readonly { target: string; id: string }[]): Promise<TagResult[]> {
  if (tags.length === 0) return []
  let results: TagResult[] = []
  await writeAll(async (w) => { results = await stageTags(ctx, w, tags) })
  return results
}

/** `setTags`'s writes, staged into `w` (with other writes of the caller's). Caller holds the store lock. */
export async function stageTags(ctx: StoreContext, w: MetaWrites, tags: readonly { target: string; id: string }[]): Promise<TagResult[]> {
  const repos = await ctx.repos.read()
  const results = tags.map((t) => tagIn(repos, t.target, t.id))
  await ctx.repos.stage(w, repos)
  for (const id of new Set(tags.map((t) => t.id))) await ctx.images.touch(w, id)
  return results
}

/** Points `target` (a tag reference) at `id`. Caller holds the store lock. */
export async function setTag(ctx: StoreContext, target: string, id: string): Promise<TagResult> {
  return (await setTags(ctx, [{ target, id }]))[0]
}
