/**
 * `images`, `inspect`, `history`, `tag`, `rmi`: reading and changing what the image db and the
 * repositories file say, with Docker's rules (dangling/intermediate images, conflicts, pruning).
 */
import { StoreContext } from './context'
import { StrataError } from './errors'
import { resolveImage, setTag, refKey } from './tags'
import { chainIdsOf, type ChainId } from './chain'
import { StoredImage, ContainerConfig } from './imagedb'
import { refsIn } from './repositories'
import { parseNormalizedNamed, Reference } from './reference'
import { hex } from './layout'
import { leaseIfRoom } from './leases'
import { UnionView, onViewClose } from './view'
import { releaseBlobs } from './content'
import { goPathMatch } from './gomatch'
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

/** The repository of a `repo:tag` or `repo@digest` key. */
function repoOf(key: string): string {
  return key.includes('@') ? key.slice(0, key.indexOf('@')) : key.slice(0, key.lastIndexOf(':'))
}

/**
 * moby's `isSingleReference`: the references all name one repository and at most one of them is
 * a tag — removing the one the user named leaves the image nameless.
 */
function isSingleReference(refs: string[]): boolean {
  if (refs.length <= 1) return refs.length === 1
  return refs.filter((k) => !k.includes('@')).length <= 1 && new Set(refs.map(repoOf)).size === 1
}

/** Conflicts moby checks before deleting an image (`conflictType`), as bits of a mask. */
const CHILD = 1
const RUNNING = 2
const REFERENCED = 4
const STOPPED = 8
/** Never overridden by `-f`. */
const HARD = CHILD | RUNNING
/** Overridden by `-f`. */
const SOFT = REFERENCED | STOPPED

/** A reason an image cannot be deleted now; `used`: a container holds it. */
interface DeleteConflict {
  used: boolean
  /** No references and no child images. */
  dangling: boolean
  error: StrataError
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
          return goPathMatch(p, repo) || goPathMatch(p, tag)
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

  /**
   * The image's filesystem as a read-only userspace union view (no mount, no privileges needed).
   * The view pins the image's layers until `view.close()`: an rmi meanwhile does not take them away.
   */
  view(name: string): Promise<UnionView> {
    return this.ctx.shared(() => this.#view(name))
  }

  async #view(name: string): Promise<UnionView> {
    const { id } = await resolveImage(this.ctx, name)
    const img = await this.ctx.images.get(id)
    if (!img) throw new StrataError('ImageNotFound', `No such image: ${name}`)
    const chain = chainIdsOf(img.config.rootfs.diff_ids)
    const lowers = chain.length ? (await this.ctx.layers.stack(chain[chain.length - 1])).map((l) => this.ctx.layout.diffDir(l.cacheId)) : []
    const view = await UnionView.open({ lowers })
    const lease = leaseIfRoom(this.ctx, [id], chain, view)
    if (lease) onViewClose(view, () => lease.release())
    else process.emitWarning(`strata: no room for a lease on the store's disk: an rmi of ${name} may take the files of this view away`)
    return view
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

  /**
   * `rmi`: returns Docker's Untagged/Deleted events in order. The rules are moby's
   * `ImageDelete`, as the engine shows them (the differential test in
   * __test__/cli-rmi-docker.spec.ts runs each case in both):
   * - by reference: the reference goes; a container on the image refuses it (without `-f`) only
   *   when it is the image's single reference (one repository, at most one tag). A tag whose
   *   repository keeps only digest references takes those along. If no reference is left the
   *   image itself is deleted, unless something holds it — then it stays, quietly, as
   *   `<none>` (a dangling image nobody uses is the exception: that conflict is reported);
   * - by ID: with a single reference, that reference goes first (a stopped container refuses it
   *   without `-f`, a running one even with it); then the image is deleted if nothing holds it:
   *   child images and running containers always hold it, references and stopped containers
   *   unless `-f`;
   * - after a deletion the parent image goes too when nothing references or uses it
   *   (not with `--no-prune`).
   * The references dropped go in one write of repositories.json, before any image is deleted.
   */
  async remove(name: string, opts: RemoveOptions = {}): Promise<RemoveEvent[]> {
    return this.ctx.exclusive(async () => {
      const events: RemoveEvent[] = []
      const force = opts.force ?? false
      const { id, ref } = await resolveImage(this.ctx, name)
      const repos = await this.ctx.repos.read()
      const refsOf = (img: string): string[] => { const r = refsIn(repos, img); return [...r.tags, ...r.digests].sort() }
      const untag = (k: string): void => {
        delete repos[repoOf(k)]?.[k]
        events.push({ untagged: k })
      }
      let quiet = false
      if (ref) {
        if (!force && isSingleReference(refsOf(id))) {
          const users = await this.users(id)
          if (users.length > 0) {
            throw new StrataError('Conflict', `conflict: unable to remove repository reference "${name}" (must force) - container ${shortId(users[0].id)} is using its referenced image ${shortId(id)}`)
          }
        }
        untag(refKey(ref))
        if (ref.digest === undefined && !refsOf(id).some((k) => !k.includes('@') && repoOf(k) === ref.familiarName)) {
          // The repository keeps only digests of this image: they go with its last tag.
          for (const d of refsOf(id).filter((k) => k.includes('@') && repoOf(k) === ref.familiarName)) untag(d)
        }
        if (refsOf(id).length > 0) {
          await writeAll((w) => this.ctx.repos.stage(w, repos))
          return events
        }
        quiet = true
      } else if (isSingleReference(refsOf(id))) {
        const conflict = await this.#conflict(id, force ? HARD : HARD | STOPPED, refsOf(id))
        if (conflict) throw conflict.error
        for (const k of refsOf(id)) untag(k)
      }
      // moby's removeAllReferencesToImageID, when the image is to go: decided before the write.
      const conflict = await this.#conflict(id, force ? HARD : HARD | SOFT, refsOf(id))
      if (!conflict) for (const k of refsOf(id)) untag(k)
      if (events.length > 0) await writeAll((w) => this.ctx.repos.stage(w, repos))
      await this.#deleteImage(id, events, conflict, !opts.noPrune, quiet)
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

  /** The first of moby's delete conflicts `mask` asks about, or undefined. */
  async #conflict(id: string, mask: number, refs: string[]): Promise<DeleteConflict | undefined> {
    const kids = ((await this.#children()).get(id) ?? []).length
    const make = (hard: boolean, used: boolean, why: string) => ({
      used, dangling: refs.length === 0 && kids === 0,
      error: new StrataError('Conflict', `conflict: unable to delete ${shortId(id)} (${hard ? 'cannot be forced' : 'must be forced'}) - ${why}`),
    })
    if (mask & CHILD && kids > 0) return make(true, false, 'image has dependent child images')
    const users = mask & (RUNNING | STOPPED) ? await this.users(id) : []
    const running = users.find((u) => u.running)
    if (mask & RUNNING && running) return make(true, true, `image is being used by running container ${shortId(running.id)}`)
    if (mask & REFERENCED && refs.length > 0) return make(false, false, 'image is referenced in multiple repositories')
    const stopped = users.find((u) => !u.running)
    if (mask & STOPPED && stopped) return make(false, true, `image is being used by stopped container ${shortId(stopped.id)}`)
    return undefined
  }

  /**
   * moby's `imageDeleteHelper` after its references are gone: the image goes unless `conflict`
   * holds it (`quiet`: then without a word, unless the image is dangling and unused), then its
   * parent is pruned quietly when nothing references or uses it.
   */
  async #deleteImage(id: string, events: RemoveEvent[], conflict: DeleteConflict | undefined, prune: boolean, quiet: boolean): Promise<void> {
    if (conflict) {
      if (quiet && (!conflict.dangling || conflict.used)) return
      throw conflict.error
    }
    const img = await this.ctx.images.get(id)
    if (!img) return
    const parent = await this.ctx.images.parent(id)
    await this.ctx.images.delete(id)
    events.push({ deleted: id })
    const released: string[] = []
    for (const chainId of await this.#releasableLayers(img)) {
      const blob = (await this.ctx.layers.get(chainId))?.compressedDigest
      if (blob) released.push(blob)
      await this.ctx.layers.remove(chainId)
      events.push({ deleted: chainId })
    }
    await releaseBlobs(this.ctx, released)
    if (!prune || !parent || !(await this.ctx.images.has(parent))) return
    const { tags, digests } = await this.ctx.repos.refsFor(parent)
    await this.#deleteImage(parent, events, await this.#conflict(parent, HARD | SOFT, [...tags, ...digests]), true, true)
  }

  /** Layers of `img` (top first) that no other image, container, build cache record or lease uses. */
  async #releasableLayers(img: StoredImage): Promise<ChainId[]> {
    const used = await this.ctx.usedLayers(img.id)
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
