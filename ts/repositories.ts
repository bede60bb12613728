/**
 * Tags and digests: `image/overlay2/repositories.json`, Docker's reference store format:
 * `{"Repositories": {"busybox": {"busybox:latest": "sha256:<id>", "busybox@sha256:<d>": "sha256:<id>"}}}`
 * keyed by familiar names. Replaced atomically on every change (caller holds the store lock).
 */
import { Layout } from './layout'
import { readIfExists, writeAtomic } from './fsx'
import { StrataError } from './errors'

type RepoMap = Record<string, Record<string, string>>

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

  async write(repos: RepoMap): Promise<void> {
    const sorted: RepoMap = {}
    for (const r of Object.keys(repos).sort()) {
      if (Object.keys(repos[r]).length === 0) continue
      sorted[r] = {}
      for (const k of Object.keys(repos[r]).sort()) sorted[r][k] = repos[r][k]
    }
    await writeAtomic(this.layout.repositories, JSON.stringify({ Repositories: sorted }))
  }

  /** The image a familiar ref (`repo:tag` / `repo@digest`) points at. */
  async resolve(familiarRepo: string, key: string): Promise<string | undefined> {
    return (await this.read())[familiarRepo]?.[key]
  }

  /** All refs pointing at `id`. */
  async refsFor(id: string): Promise<{ tags: string[]; digests: string[] }> {
    return refsIn(await this.read(), id)
  }

  async set(familiarRepo: string, key: string, id: string): Promise<void> {
    const repos = await this.read()
    ;(repos[familiarRepo] ??= {})[key] = id
    await this.write(repos)
  }

  /** Removes one ref; returns the image it pointed at. */
  async remove(familiarRepo: string, key: string): Promise<string | undefined> {
    const repos = await this.read()
    const id = repos[familiarRepo]?.[key]
    if (id === undefined) return undefined
    delete repos[familiarRepo][key]
    await this.write(repos)
    return id
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
