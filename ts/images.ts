/**
 * `images`, `inspect`, `history`, `tag`, `rmi`: reading and changing what the image db and the
 * repositories file say, with Docker's rules (dangling/intermediate images, conflicts, pruning).
 */
import { StoreContext } from './context'
import { StrataError } from './errors'
import { resolveImage, setTag, refKey } from './tags'
import { chainIdsOf } from './chain'
import { StoredImage, ContainerConfig } from './imagedb'
import { refsIn } from './repositories'
import { parseNormalizedNamed, Reference } from './reference'
import { hex } from './layout'
import { LayerInfo } from './layers'
import { UnionView } from './view'
import { expose } from './boundary'
import { writeAll } from './metawrites'
import * as v from './validate'
import { pruneImages, ImagePruneOptions, ImagePruneResult } from './prune'

/** A row of `images`. */
export interface ImageSummary {
  id: string
  repoTags: string[]
  repoDigests: string[]
  parentId: string
  created?: Date
  size: number
  labels: Record<string, string>
  /** Number of containers using the image. */
  containers: number
}

export interface HistoryRow {
  /** Image ID for steps that are a local image, else `<missing>`. */
  id: string
  created?: Date
  createdBy: string
  size: number
  comment: string
  tags: string[]
}

export interface ImageFilters {
  dangling?: boolean
  reference?: string[]
  before?: string
  since?: string
  label?: string[]
}

export interface ListOptions {
  all?: boolean
  filters?: ImageFilters
  /** `REPO[:TAG]` positional argument of `images`. */
  match?: string
}

export interface RemoveOptions {
  force?: boolean
  noPrune?: boolean
}

/** One line of `rmi` output. */
export type RemoveEvent = { untagged: string } | { deleted: string }

/** Who uses an image: containers (filled in by the container layer). */
export interface ImageUser {
  id: string
  running: boolean
}

export type ImageUsers = (imageId: string) => Promise<ImageUser[]>

function shortId(id: string): string {
  return hex(id).slice(0, 12)
}

/** Glob as Go's path.Match (`*`, `?`, `[...]`; `*` does not cross `/`). */
function pathMatch(pattern: string, s: string): boolean {
  let re = '^'
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else if (c === '[') {
      const j = pattern.indexOf(']', i + 1)
      if (j < 0) return false
      let cls = pattern.slice(i + 1, j)
      if (cls.startsWith('^')) cls = '^' + cls.slice(1).replace(/\\/g, '\\\\')
      re += `[${cls}]`
      i = j
    } else if (c === '\\' && i + 1 < pattern.length) re += '\\' + pattern[++i]
    else re += c.replace(/[.+^${}()|\\]/g, '\\$&')
  }
  try {
    return new RegExp(re + '$').test(s)
  } catch {
    return false
  }
}

export class Images {
  constructor(private readonly ctx: StoreContext, private readonly users: ImageUsers) {}

  async #sizeOf(img: StoredImage): Promise<number> {
    let size = 0
    for (const c of chainIdsOf(img.config.rootfs.diff_ids)) size += (await this.ctx.layers.get(c))?.size ?? 0
    return size
  }

  /** Map of image ID → IDs of images whose parent it is. */
  async #children(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    for (const id of await this.ctx.images.ids()) {
      const p = await this.ctx.images.parent(id)
      if (p) out.set(p, [...(out.get(p) ?? []), id])
    }
    return out
  }

  /** `images`: under the shared lock, so an rmi of another process is not seen half-done. */
  list(opts: ListOptions = {}): Promise<ImageSummary[]> {
    return this.ctx.shared(() => this.#list(opts))
  }

  async #list(opts: ListOptions): Promise<ImageSummary[]> {
    const repos = await this.ctx.repos.read()
    const all = await this.ctx.images.all()
    const kids = await this.#children()
    const f = opts.filters ?? {}
    const createdOf = async (s: string): Promise<number> => {
      const img = await this.ctx.images.get((await resolveImage(this.ctx, s)).id)
      return Date.parse(img?.config.created ?? '') || 0
    }
    const before = f.before ? await createdOf(f.before) : undefined
    const since = f.since ? await createdOf(f.since) : undefined
    let match: Reference | undefined
    if (opts.match) match = parseNormalizedNamed(opts.match)

    const rows: ImageSummary[] = []
    for (const img of all) {
      const { tags, digests } = refsIn(repos, img.id)
      const created = img.config.created ? new Date(img.config.created) : undefined
      const t = created?.getTime() ?? 0
      const labels = (img.config.config?.Labels ?? {}) as Record<string, string>
      if (f.dangling !== undefined && (tags.length === 0) !== f.dangling) continue
      if (before !== undefined && !(t < before)) continue
      if (since !== undefined && !(t > since)) continue
      if (f.label && !f.label.every((l) => {
        const eq = l.indexOf('=')
        return eq < 0 ? l in labels : labels[l.slice(0, eq)] === l.slice(eq + 1)
      })) continue
      let shownTags = tags
      if (f.reference?.length) {
        shownTags = tags.filter((tag) => f.reference!.some((p) => {
          const repo = tag.slice(0, tag.lastIndexOf(':'))
          return pathMatch(p, repo) || pathMatch(p, tag)
        }))
        if (shownTags.length === 0) continue
      }
      if (match) {
        shownTags = shownTags.filter((tag) => {
          const r = parseNormalizedNamed(tag)
          return r.familiarName === match!.familiarName && (match!.tag === undefined || r.tag === match!.tag)
        })
        if (shownTags.length === 0) continue
      }
      if (!opts.all && tags.length === 0 && (kids.get(img.id)?.length ?? 0) > 0 && f.dangling === undefined) continue
      rows.push({
        id: img.id, repoTags: shownTags, repoDigests: digests, parentId: (await this.ctx.images.parent(img.id)) ?? '',
        ...(created ? { created } : {}), size: await this.#sizeOf(img), labels, containers: (await this.users(img.id)).length,
      })
    }
    rows.sort((a, b) => (b.created?.getTime() ?? 0) - (a.created?.getTime() ?? 0) || a.id.localeCompare(b.id))
    return rows
  }

  /** Docker's `image inspect` JSON object for one image. */
  inspect(name: string): Promise<Record<string, unknown>> {
    return this.ctx.shared(() => this.#inspect(name))
  }

  async #inspect(name: string): Promise<Record<string, unknown>> {
    const { id } = await resolveImage(this.ctx, name)
    const img = await this.ctx.images.get(id)
    if (!img) throw new StrataError('ImageNotFound', `No such image: ${name}`)
    const c = img.config
    const { tags, digests } = await this.ctx.repos.refsFor(id)
    const chain = chainIdsOf(c.rootfs.diff_ids)
    const size = await this.#sizeOf(img)
    const graph: Record<string, string> = {}
    if (chain.length > 0) {
      const stack = await this.ctx.layers.stack(chain[chain.length - 1])
      const [top, ...below] = stack
      if (below.length) graph.LowerDir = below.map((l) => this.ctx.layout.diffDir(l.cacheId)).join(':')
      graph.MergedDir = this.ctx.layout.mergedDir(top.cacheId)
      graph.UpperDir = this.ctx.layout.diffDir(top.cacheId)
      graph.WorkDir = this.ctx.layout.workDir(top.cacheId)
    }
    const out: Record<string, unknown> = {
      Id: id,
      RepoTags: tags,
      RepoDigests: digests,
      Parent: (await this.ctx.images.parent(id)) ?? '',
      Comment: c.comment ?? '',
      Created: c.created ?? '0001-01-01T00:00:00Z',
      Container: c.container ?? '',
      ContainerConfig: dockerConfig(c.container_config ?? null),
      DockerVersion: c.docker_version ?? '',
      Author: c.author ?? '',
      Config: dockerConfig(c.config ?? null),
      Architecture: c.architecture ?? '',
    }
    if (c.variant) out.Variant = c.variant
    Object.assign(out, {
      Os: c.os ?? '',
      Size: size,
      VirtualSize: size,
      GraphDriver: { Data: graph, Name: 'overlay2' },
      RootFS: { Type: c.rootfs.type ?? 'layers', Layers: c.rootfs.diff_ids },
      Metadata: { LastTagTime: (await this.ctx.images.lastUpdated(id)) ?? '0001-01-01T00:00:00Z' },
    })
    return out
  }

  /** The image's filesystem as a read-only userspace union view (no mount, no privileges needed). */
  view(name: string): Promise<UnionView> {
    return this.ctx.shared(() => this.#view(name))
  }

  async #view(name: string): Promise<UnionView> {
    const { id } = await resolveImage(this.ctx, name)
    const img = await this.ctx.images.get(id)
    if (!img) throw new StrataError('ImageNotFound', `No such image: ${name}`)
    const chain = chainIdsOf(img.config.rootfs.diff_ids)
    const lowers = chain.length ? (await this.ctx.layers.stack(chain[chain.length - 1])).map((l) => this.ctx.layout.diffDir(l.cacheId)) : []
    return UnionView.open({ lowers })
  }

  history(name: string): Promise<HistoryRow[]> {
    return this.ctx.shared(() => this.#history(name))
  }

  async #history(name: string): Promise<HistoryRow[]> {
    const { id } = await resolveImage(this.ctx, name)
    const img = await this.ctx.images.get(id)
    if (!img) throw new StrataError('ImageNotFound', `No such image: ${name}`)
    const repos = await this.ctx.repos.read()
    const diffIds = img.config.rootfs.diff_ids
    const chain = chainIdsOf(diffIds)
    const hist = img.config.history ?? []
    // Which history rows start a local image: this one, then its parents (by their history length).
    const owners = new Map<number, string>()
    let cur: string | undefined = id
    while (cur) {
      const ci = await this.ctx.images.get(cur)
      if (!ci) break
      owners.set((ci.config.history ?? []).length - 1, cur)
      cur = await this.ctx.images.parent(cur)
    }
    const rows: HistoryRow[] = []
    let layerIndex = 0
    const sizes: number[] = []
    for (const c of chain) sizes.push((await this.ctx.layers.get(c))?.size ?? 0)
    hist.forEach((h, i) => {
      let size = 0
      if (!h.empty_layer) size = sizes[layerIndex++] ?? 0
      const owner = owners.get(i)
      rows.push({
        id: owner ?? '<missing>',
        ...(h.created ? { created: new Date(h.created) } : {}),
        createdBy: h.created_by ?? '',
        size,
        comment: h.comment ?? '',
        tags: owner ? refsIn(repos, owner).tags : [],
      })
    })
    if (hist.length === 0) {
      rows.push({ id, ...(img.config.created ? { created: new Date(img.config.created) } : {}), createdBy: '', size: sizes.reduce((a, b) => a + b, 0), comment: '', tags: refsIn(repos, id).tags })
    }
    return rows.reverse()
  }

  async tag(source: string, target: string): Promise<void> {
    const { id } = await resolveImage(this.ctx, source)
    await this.ctx.exclusive(async () => {
      if (!(await this.ctx.images.has(id))) throw new StrataError('ImageNotFound', `No such image: ${source}`)
      await setTag(this.ctx, target, id)
    })
  }

  /** `rmi`: returns Docker's Untagged/Deleted events in order. */
  async remove(name: string, opts: RemoveOptions = {}): Promise<RemoveEvent[]> {
    return this.ctx.exclusive(async () => {
      const events: RemoveEvent[] = []
      const { id, ref } = await resolveImage(this.ctx, name)
      const repos = await this.ctx.repos.read()
      const { tags, digests } = refsIn(repos, id)
      const users = await this.users(id)
      // The refs to drop are worked out first and go in one write of repositories.json.
      const untag = (k: string): void => {
        const repo = k.slice(0, k.includes('@') ? k.indexOf('@') : k.lastIndexOf(':'))
        delete repos[repo]?.[k]
        events.push({ untagged: k })
      }
      if (ref) {
        if (!opts.force && users.length > 0) {
          throw new StrataError('Conflict', `conflict: unable to remove repository reference "${name}" (must force) - container ${shortId(users[0].id)} is using its referenced image ${shortId(id)}`)
        }
        const key = refKey(ref)
        untag(key)
        const remaining = [...tags, ...digests].filter((k) => k !== key)
        // A removed tag whose repository keeps only digest refs takes those digests along.
        const sameRepoTags = remaining.filter((k) => !k.includes('@') && k.startsWith(`${ref.familiarName}:`))
        if (sameRepoTags.length === 0) for (const d of remaining.filter((k) => k.startsWith(`${ref.familiarName}@`))) untag(d)
        await writeAll((w) => this.ctx.repos.stage(w, repos))
        const left = refsIn(repos, id)
        if (left.tags.length + left.digests.length > 0) return events
      } else {
        const all = [...tags, ...digests]
        const repoNames = new Set(all.map((k) => k.slice(0, k.includes('@') ? k.indexOf('@') : k.lastIndexOf(':'))))
        if (!opts.force && repoNames.size > 1) {
          throw new StrataError('Conflict', `conflict: unable to delete ${shortId(id)} (must be forced) - image is referenced in multiple repositories`)
        }
        this.#checkUsers(id, users, opts.force ?? false)
        for (const k of all) untag(k)
        if (all.length > 0) await writeAll((w) => this.ctx.repos.stage(w, repos))
      }
      await this.#deleteImage(id, opts, events, users)
      return events
    })
  }

  /**
   * `image prune [-a]`: dangling images (or, with `all`, every image no container uses), each
   * reference removed as `rmi` would; see ts/prune.ts.
   */
  prune(opts: ImagePruneOptions = {}): Promise<ImagePruneResult> {
    return pruneImages(this.ctx, this, opts)
  }

  #checkUsers(id: string, users: ImageUser[], force: boolean): void {
    const running = users.find((u) => u.running)
    if (running) {
      throw new StrataError('Conflict', `conflict: unable to delete ${shortId(id)} (cannot be forced) - image is being used by running container ${shortId(running.id)}`)
    }
    if (!force && users.length > 0) {
      throw new StrataError('Conflict', `conflict: unable to delete ${shortId(id)} (must be forced) - image is being used by stopped container ${shortId(users[0].id)}`)
    }
  }

  async #deleteImage(id: string, opts: RemoveOptions, events: RemoveEvent[], users: ImageUser[]): Promise<void> {
    const kids = (await this.#children()).get(id) ?? []
    if (kids.length > 0) {
      throw new StrataError('Conflict', `conflict: unable to delete ${shortId(id)} (cannot be forced) - image has dependent child images`)
    }
    this.#checkUsers(id, users, opts.force ?? false)
    const img = await this.ctx.images.get(id)
    if (!img) return
    const parent = await this.ctx.images.parent(id)
    await this.ctx.images.delete(id)
    events.push({ deleted: id })
    for (const chainId of await this.#releasableLayers(img)) {
      await this.ctx.layers.remove(chainId)
      events.push({ deleted: chainId })
    }
    if (!opts.noPrune && parent && (await this.ctx.images.has(parent))) {
      const refs = await this.ctx.repos.refsFor(parent)
      const pUsers = await this.users(parent)
      const pKids = (await this.#children()).get(parent) ?? []
      if (refs.tags.length + refs.digests.length === 0 && pUsers.length === 0 && pKids.length === 0) {
        await this.#deleteImage(parent, opts, events, [])
      }
    }
  }

  /** Layers of `img` (top first) that no other image and no container uses. */
  async #releasableLayers(img: StoredImage): Promise<string[]> {
    const used = new Set<string>()
    for (const other of await this.ctx.images.all()) {
      if (other.id === img.id) continue
      for (const c of chainIdsOf(other.config.rootfs.diff_ids)) used.add(c)
    }
    for (const c of await this.ctx.containerLayerParents()) {
      let cur: string | undefined = c
      while (cur && !used.has(cur)) {
        used.add(cur)
        const l: LayerInfo | undefined = await this.ctx.layers.get(cur)
        cur = l?.parent
      }
    }
    return chainIdsOf(img.config.rootfs.diff_ids).reverse().filter((c) => !used.has(c))
  }
}

const CONFIG_FIELDS: [string, unknown][] = [
  ['Hostname', ''], ['Domainname', ''], ['User', ''], ['AttachStdin', false], ['AttachStdout', false],
  ['AttachStderr', false], ['ExposedPorts', undefined], ['Tty', false], ['OpenStdin', false], ['StdinOnce', false],
  ['Env', null], ['Cmd', null], ['Healthcheck', undefined], ['ArgsEscaped', undefined], ['Image', ''], ['Volumes', null],
  ['WorkingDir', ''], ['Entrypoint', null], ['NetworkDisabled', undefined], ['MacAddress', undefined], ['OnBuild', null],
  ['Labels', null], ['StopSignal', undefined], ['StopTimeout', undefined], ['Shell', undefined],
]

/** An image config's `config` in Docker's `container.Config` shape and field order. */
export function dockerConfig(c: ContainerConfig | null): Record<string, unknown> {
  const src = (c ?? {}) as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, def] of CONFIG_FIELDS) {
    const v = src[k]
    if (v !== undefined) out[k] = v
    else if (def !== undefined) out[k] = def
  }
  for (const [k, v] of Object.entries(src)) if (!(k in out)) out[k] = v
  return out
}

/** Docker's image filters; any other key is refused with the daemon's wording. */
const FILTERS: Record<keyof ImageFilters, v.Check> = {
  dangling: v.optional(v.boolean),
  reference: v.optional(v.arrayOf(v.string)),
  before: v.optional(v.string),
  since: v.optional(v.string),
  label: v.optional(v.arrayOf(v.string)),
}

const filters: v.Check = (value, name) => {
  if (value === undefined) return
  if (typeof value !== 'object' || value === null || Array.isArray(value)) v.options({})(value, name)
  for (const k of Object.keys(value as object)) {
    if (!Object.hasOwn(FILTERS, k)) throw new StrataError('InvalidArgument', `Invalid filter '${k}'`)
  }
  for (const [k, c] of Object.entries(FILTERS)) c((value as Record<string, unknown>)[k], `${name}.${k}`)
}

expose(Images, {
  list: [['opts', v.optional(v.options({ all: v.optional(v.boolean), filters, match: v.optional(v.string) }))]],
  inspect: [['name', v.string]],
  view: [['name', v.string]],
  history: [['name', v.string]],
  tag: [['source', v.string], ['target', v.string]],
  remove: [['name', v.string], ['opts', v.optional(v.options({ force: v.optional(v.boolean), noPrune: v.optional(v.boolean) }))]],
  prune: [['opts', v.optional(v.options({ all: v.optional(v.boolean), filters: v.optional(v.recordOf(v.arrayOf(v.string))) }))]],
})
