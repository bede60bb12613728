/**
 * Tags and digests: `image/overlay2/repositories.json`, Docker's reference store format:
 * `{"Repositories": {"busybox": {"busybox:latest": "sha256:<id>", "busybox@sha256:<d>": "sha256:<id>"}}}`
 * keyed by familiar names. Changed in memory, then replaced atomically in one write per operation
 * (`stage` into a MetaWrites; the caller holds the store lock).
 */
import { Layout } from './layout'
import { readIfExists } from './fsx'
import type { MetaWrites } from './metawrites'
import { StrataError } from '../errors'

/** repository (familiar name) → ref key (`repo:tag` / `repo@digest`) → image ID. */
export type RepoMap = Record<string, Record<string, string>>

export class Repositories {
  constructor(private readonly layout: Layout) {}

  async read(): Promise<RepoMap> {
    const text = await readIfExists(this.layout.repositories)
    if (!text) return {}
    try {
      return (JSON.parse(text) as { Repositories?: RepoMap }).Repositories ?? {}
    } catch (e) {
      throw new StrataError('CorruptMetadata', `repositories.json is corrupt: ${(e as Error).message}`)
    }
  }

  /** Stages the new repositories.json (all refs sorted, empty repositories left out) into `w`. */
  async stage(w: MetaWrites, repos: RepoMap): Promise<void> {
    const sorted: RepoMap = {}
    for (const r of Object.keys(repos).sort()) {
      if (Object.keys(repos[r]).length === 0) continue
      sorted[r] = {}
      for (const k of Object.keys(repos[r]).sort()) sorted[r][k] = repos[r][k]
    }
    await w.put(this.layout.repositories, JSON.stringify({ Repositories: sorted }))
  }

  /** The image a familiar ref (`repo:tag` / `repo@digest`) points at. */
  async resolve(familiarRepo: string, key: string): Promise<string | undefined> {
    return (await this.read())[familiarRepo]?.[key]
  }

  /** All refs pointing at `id`. */
  async refsFor(id: string): Promise<{ tags: string[]; digests: string[] }> {
    return refsIn(await this.read(), id)
  }
}

export function refsIn(repos: RepoMap, id: string): { tags: string[]; digests: string[] } {
  const tags: string[] = []
  const digests: string[] = []
  for (const r of Object.keys(repos)) {
    for (const [k, v] of Object.entries(repos[r])) {
      if (v !== id) continue
      if (k.includes('@')) digests.push(k)
      else tags.push(k)
    }
  }
  return { tags: tags.sort(), digests: digests.sort() }
}
