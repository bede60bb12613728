/**
 * `store.containers`: create / get / list / remove containers, and the repair pass run when a
 * store opens. A container is an init layer and a writable layer over an image's layers (see
 * ./layout.ts for the on-disk form) plus a record; `Container` (./container.ts) runs, mounts,
 * diffs, commits and exports one.
 *
 * ```ts
 * const c = await store.containers.create('busybox', { name: 'c1', cmd: ['sh', '-c', 'echo hi > /greeting'] })
 * const { exitCode } = await c.run()
 * const imageId = await c.commit({ ref: 'bb:hi', message: 'add greeting' })
 * ```
 */
import path = require('node:path')
import { StoreContext } from '../internal/context'
import { StrataError } from '../errors'
import { listDir, randomHex, readIfExists, exists } from '../internal/fsx'
import { resolveImage } from '../internal/tags'
import { asChainId, chainIdsOf, type ChainId } from '../internal/chain'
import { ContainerConfig } from '../internal/imagedb'
import { ImageUser } from '../images'
import { LINK_FILE, LOWER_FILE, MOUNT_FILE } from '../internal/layout'
import { ContainerPaths } from './layout'
import { Skeletons, stagedContainer } from './skeleton'
import { ContainerRecord, HostConfig, readRecord, writeRecord, initialState, NetworkMode, readHostConfig } from './record'
import { NativeFsOp, fsBatch, native } from '../internal/native'
import { selectContainers, PsFilters } from './filters'
import { pruneContainers, PruneFilters, ContainerPruneResult } from '../prune'
import { CAPS, withUserEnv } from './spec'
import { seccompFor } from './seccomp'
import { call } from '../errors'
import { canonicalName, randomName } from './names'
import { lowerChain, maxLowerDirs } from './plan'
import { MountManager, pidAlive, processLives, readRefs, liveRefs, mountedAt } from './mounts'
import { runtimeOf } from './supervisor'
import { Container } from './container'
import { humanDuration } from '../format/units'
import { expose, sync } from '../internal/boundary'
import { releaseBlobs } from '../internal/content'
import * as v from '../internal/validate'

export interface CreateOptions {
  /** `--name`; generated (`adjective_surname`) when absent. */
  name?: string
  /** `-e K=V` (a bare `K` takes the caller's environment value, as the docker CLI does). */
  env?: string[]
  /** `-w` */
  workdir?: string
  /** `-u USER[:GROUP]` */
  user?: string
  /** `--entrypoint`; `''` clears the image's entrypoint. */
  entrypoint?: string | string[]
  /** The command; default the image's Cmd. */
  cmd?: string[]
  /** `--network none|host` (default none: a network namespace with loopback only). */
  network?: NetworkMode
  /** `--rm` */
  autoRemove?: boolean
  /** `-i`: keep stdin open to the process. */
  openStdin?: boolean
  /** `-t`: the process gets a pseudo-terminal (stdout and stderr become one stream). */
  tty?: boolean
  /** `-l KEY=VALUE`: labels, added to (and overriding) the image's. */
  labels?: Record<string, string>
  /** Whether a caller attaches to the process's stdio (`run` without `-d`, `create`): recorded as Docker does. */
  attach?: boolean
  /** The OCI runtime binary (default `$STRATA_RUNTIME` or `runc`). */
  runtime?: string
  /**
   * `--security-opt`, in the form Docker's API takes: `seccomp=unconfined` (no seccomp filter),
   * or `seccomp=` followed by a profile's JSON text (Docker's format; the CLI reads the file).
   * Default: Docker's default seccomp profile.
   */
  securityOpt?: string[]
}

/** A row of `ps`. */
export interface ContainerSummary {
  id: string
  /** Names without the leading `/`. */
  names: string[]
  /** The image as the user named it (or its short ID once that name points elsewhere). */
  image: string
  imageId: string
  command: string
  created: Date
  state: ContainerRecord['State']['Status']
  /** Docker's status text (`Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`). */
  status: string
  exitCode: number
  startedAt?: Date
  finishedAt?: Date
  labels: Record<string, string>
  /** The network it is on (`none` or `host`). */
  network: string
  /** With `size`: bytes in its writable layer (Docker's SizeRw). */
  sizeRw?: number
  /** With `size`: those plus the image's layers (Docker's SizeRootFs, the "virtual" size). */
  sizeRootFs?: number
}

export interface ListContainersOptions {
  /** `-a`: stopped containers too. */
  all?: boolean
  /** `-n N` / `-l` (1): the N newest containers, whatever their state. */
  limit?: number
  /** `--filter`: docker's ps filters (./filters.ts), validated as the daemon does. */
  filters?: PsFilters
  /** `-s`: compute sizes (a walk of each writable layer). */
  size?: boolean
}

export interface RemoveContainerOptions {
  /** `-f`: kill a running container first. */
  force?: boolean
}

/** Docker's hosts file for a container with its own network namespace. */
const HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n'

export class Containers {
  readonly #mounts: MountManager
  readonly #skeletons: Skeletons

  constructor(private readonly ctx: StoreContext) {
    this.#mounts = new MountManager(ctx)
    this.#skeletons = new Skeletons(ctx)
  }

  /** Waits for work under way and removes this process's staged skeletons (Store.close). */
  async dispose(): Promise<void> {
    await this.#skeletons.dispose()
  }

  /** @internal */
  get mounts(): MountManager {
    return this.#mounts
  }

  paths(id: string): ContainerPaths {
    return new ContainerPaths(this.ctx.layout, id)
  }

  /** IDs of all containers that have a record. */
  async ids(): Promise<string[]> {
    const out: string[] = []
    for (const n of await listDir(this.ctx.layout.containers)) {
      if (/^[0-9a-f]{64}$/.test(n) && (await exists(this.paths(n).config))) out.push(n)
    }
    return out
  }

  /** Every container's record, read under the shared lock. */
  records(): Promise<ContainerRecord[]> {
    return this.ctx.shared(() => this.#records())
  }

  async #records(): Promise<ContainerRecord[]> {
    const out: ContainerRecord[] = []
    for (const id of await this.ids()) {
      const r = await readRecord(this.paths(id))
      if (r) out.push(r)
    }
    return out
  }

  /** By full ID, name (with or without `/`), or unique ID prefix — Docker's lookup order. */
  resolve(nameOrId: string): Promise<string> {
    return this.ctx.shared(() => this.#resolve(nameOrId))
  }

  async #resolve(nameOrId: string): Promise<string> {
    // A full ID needs no scan of every record.
    if (/^[0-9a-f]{64}$/.test(nameOrId) && (await exists(this.paths(nameOrId).config))) return nameOrId
    const all = await this.#records()
    const exact = all.find((r) => r.ID === nameOrId)
    if (exact) return exact.ID
    const byName = all.find((r) => r.Name === (nameOrId.startsWith('/') ? nameOrId : `/${nameOrId}`))
    if (byName) return byName.ID
    if (/^[0-9a-f]+$/.test(nameOrId)) {
      const hits = all.filter((r) => r.ID.startsWith(nameOrId))
      if (hits.length === 1) return hits[0].ID
      if (hits.length > 1) throw new StrataError('AmbiguousReference', `multiple IDs found with provided prefix: ${nameOrId}`)
    }
    throw new StrataError('ContainerNotFound', `No such container: ${nameOrId}`)
  }

  async get(nameOrId: string): Promise<Container> {
    return new Container(this.ctx, this, await this.resolve(nameOrId))
  }

  /** `docker create`. */
  async create(image: string, opts: CreateOptions = {}): Promise<Container> {
    const { id: imageId } = await resolveImage(this.ctx, image)
    const img = await this.ctx.images.get(imageId)
    if (!img) throw new StrataError('ImageNotFound', `No such image: ${image}`)
    const cfg = img.config.config ?? {}
    let entrypoint: string[] | null = cfg.Entrypoint ?? null
    let cmd: string[] | null = cfg.Cmd ?? null
    if (opts.entrypoint !== undefined) {
      const e = opts.entrypoint
      entrypoint = Array.isArray(e) ? (e.length ? e : null) : e === '' ? null : [e]
      cmd = null // docker: a new entrypoint resets the image's Cmd
    }
    if (opts.cmd && opts.cmd.length > 0) cmd = opts.cmd
    const args = [...(entrypoint ?? []), ...(cmd ?? [])]
    if (args.length === 0) throw new StrataError('InvalidArgument', 'No command specified')
    const env = withUserEnv(cfg.Env ?? [], opts.env ?? [])
    const network = opts.network ?? 'none'
    const attach = opts.attach ?? true
    if (network !== 'none' && network !== 'host') {
      throw new StrataError('InvalidArgument', `network ${network} not found (strata supports none and host)`)
    }
    const wanted = opts.name !== undefined ? canonicalName(opts.name) : undefined
    const workdir = opts.workdir ?? cfg.WorkingDir ?? ''
    if (workdir && !workdir.startsWith('/')) throw new StrataError('InvalidArgument', `the working directory '${workdir}' is invalid, it needs to be an absolute path`)
    const diffIds = img.config.rootfs.diff_ids
    const chain = chainIdsOf(diffIds)
    const topChain = chain[chain.length - 1]
    // An image as deep as the kernel's limit of lower dirs leaves no room for an init layer:
    // the container then sits right on the image, and runc makes whatever mount points the
    // image lacks in the writable layer (diff leaves those paths out, as it does the init files).
    const withInit = diffIds.length < maxLowerDirs()
    const hostHosts = network === 'host' ? await readIfExists('/etc/hosts') : undefined
    const resolvConf = (await readIfExists('/etc/resolv.conf')) ?? ''

    const securityOpt = [...(opts.securityOpt ?? [])]
    // A bad profile fails here, with InvalidArgument, rather than at every start.
    seccompFor(securityOpt, CAPS)
    const hostConfig: HostConfig = {
      NetworkMode: network, AutoRemove: Boolean(opts.autoRemove), Runtime: opts.runtime ?? 'runc',
      LogConfig: { Type: 'json-file', Config: {} }, ...(securityOpt.length ? { SecurityOpt: securityOpt } : {}),
    }
    const nameTaken = (records: ContainerRecord[], name: string): void => {
      const taken = records.find((r) => r.Name === name)
      if (taken) {
        throw new StrataError('NameInUse', `Conflict. The container name "${name}" is already in use by container "${taken.ID}". You have to remove (or rename) that container to be able to reuse that name.`)
      }
    }

    // Everything but the renames happens without the store lock: a skeleton (./skeleton.ts) is
    // taken or built, filled in with what depends on the image and the options, and synced.
    // Under the lock, what it was built on is checked again and its trees are renamed into
    // place; one syncfs after that makes the renames durable before create returns (a crash in
    // between leaves a part of them, which the repair pass removes: ./containers.ts repairOne).
    for (let attempt = 0; ; attempt++) {
      const records = await this.#records()
      let name = wanted
      if (name) nameTaken(records, name)
      else {
        const names = new Set(records.map((r) => r.Name))
        for (let retry = attempt; !name || names.has(name); retry++) name = `/${randomName(retry)}`
      }
      const top = topChain ? await this.ctx.layers.must(topChain) : undefined
      const imageLower = await this.ctx.layers.lowerFor(top)
      const ops: NativeFsOp[] = []
      const sk = this.#skeletons.take(withInit) ?? (await this.#skeletons.build(ops, withInit))
      const fill = (file: string, data: string | undefined): void => {
        ops.push(data === undefined ? { op: 'unlink', path: file } : { op: 'write', path: file, data })
      }
      fill(path.join(sk.meta, MOUNT_FILE.parent), top?.chainId)
      let containerLower = imageLower
      if (sk.init) {
        fill(path.join(sk.init.dir, LOWER_FILE), imageLower)
        containerLower = lowerChain(sk.init.short, imageLower)
      }
      fill(path.join(sk.layer.dir, LOWER_FILE), containerLower)
      const config: ContainerConfig = {
        Hostname: sk.id.slice(0, 12), Domainname: '', User: opts.user ?? cfg.User ?? '',
        AttachStdin: attach && Boolean(opts.openStdin), AttachStdout: attach, AttachStderr: attach,
        ...(cfg.ExposedPorts ? { ExposedPorts: cfg.ExposedPorts } : {}),
        Tty: Boolean(opts.tty), OpenStdin: Boolean(opts.openStdin), StdinOnce: attach && Boolean(opts.openStdin),
        Env: env, Cmd: cmd, Image: image, Volumes: cfg.Volumes ?? null, WorkingDir: workdir,
        Entrypoint: entrypoint, OnBuild: cfg.OnBuild ?? null, Labels: { ...(cfg.Labels ?? {}), ...(opts.labels ?? {}) },
        ...(cfg.StopSignal ? { StopSignal: cfg.StopSignal } : {}),
      }
      const p = this.paths(sk.id)
      const rec: ContainerRecord = {
        ID: sk.id, Created: new Date().toISOString(), Path: args[0], Args: args.slice(1), Config: config, Image: imageId,
        Name: name!, Driver: 'overlay2', State: initialState(), HostnamePath: p.hostname, HostsPath: p.hosts,
        ResolvConfPath: p.resolvConf, LogPath: p.log, RestartCount: 0, OpenStdin: Boolean(opts.openStdin),
      }
      const staged = stagedContainer(sk, this.ctx.layout)
      fill(staged.hosts, hostHosts ?? HOSTS)
      fill(staged.resolvConf, resolvConf)
      fill(staged.hostConfig, JSON.stringify(hostConfig))
      fill(staged.config, JSON.stringify(rec))
      ops.push({ op: 'syncfs', path: this.ctx.layout.root })
      try {
        await call(() => fsBatch(ops))
      } catch (e) {
        await this.#skeletons.discard(sk).catch(() => undefined)
        throw e
      }

      const placed = await this.ctx.exclusive(async () => {
        const now = await this.#records()
        if (wanted) nameTaken(now, wanted)
        else if (now.some((r) => r.Name === name)) return false
        if (!(await this.ctx.images.has(imageId))) throw new StrataError('ImageNotFound', `No such image: ${image}`)
        // The image was removed and loaded again meanwhile: its layers have new dirs and links.
        if (topChain && (await this.ctx.layers.get(topChain))?.cacheId !== top?.cacheId) return false
        try {
          await call(() => fsBatch(this.#skeletons.placeOps(sk)))
        } catch (e) {
          // Whatever got in place goes again; what is still staged goes below.
          await this.#destroy(sk.id).catch(() => undefined)
          throw e
        }
        return true
      }).catch(async (e: unknown) => {
        await this.#skeletons.discard(sk).catch(() => undefined)
        throw e
      })
      if (!placed) {
        await this.#skeletons.discard(sk).catch(() => undefined)
        if (attempt >= 20) throw new StrataError('Locked', 'create: the store keeps changing under it')
        continue
      }
      this.#skeletons.placed(sk)
      await call(() => fsBatch([{ op: 'syncfs', path: this.ctx.layout.root }]))
      this.#skeletons.refill()
      return new Container(this.ctx, this, sk.id)
    }
  }

  /** `ps`: newest first; running only unless `all`. */
  async list(opts: ListContainersOptions = {}): Promise<ContainerSummary[]> {
    await this.thawOrphans()
    return this.ctx.shared(() => this.#list(opts))
  }

  /**
   * Resumes a container that a `commit` paused (runc pause, the cgroup freezer) in a process
   * that died before resuming it. Every operation on a container does this first (the `before`
   * hook of `Container`'s API boundary, and `ps` for all of them), so a frozen container thaws
   * at the next touch from any process, not only at the next store open. Costs one record read
   * when nothing is frozen.
   */
  async thaw(id: string): Promise<void> {
    const p = this.paths(id)
    const rec = await readRecord(p)
    if (rec && pauserDied(rec)) await this.ctx.exclusive(() => this.#thaw(p))
  }

  /** `thaw` for every container. */
  async thawOrphans(): Promise<void> {
    for (const id of await this.ids()) await this.thaw(id)
  }

  /** Under the store lock: resumes the container if its pauser is (still) gone. */
  async #thaw(p: ContainerPaths): Promise<void> {
    const rec = await readRecord(p)
    if (!rec || !pauserDied(rec)) return
    await (await runtimeOf(this.ctx, p)).resume(p.id).catch(() => undefined)
    delete rec.PausedBy
    delete rec.PausedByStart
    await writeRecord(p, rec)
  }

  async #list(opts: ListContainersOptions): Promise<ContainerSummary[]> {
    const records = await this.#records()
    const networks = new Map<string, string>()
    const network = async (r: ContainerRecord): Promise<string> => {
      let n = networks.get(r.ID)
      if (n === undefined) networks.set(r.ID, (n = (await readHostConfig(this.paths(r.ID))).NetworkMode))
      return n
    }
    const selected = await selectContainers(records, opts, {
      imageId: async (ref) => (await resolveImage(this.ctx, ref).catch(() => undefined))?.id,
      children: async (id) => {
        const out: string[] = []
        for (const other of await this.ctx.images.ids()) if ((await this.ctx.images.parent(other)) === id) out.push(other)
        return out
      },
      network,
    })
    const sizes = opts.size ? await this.#sizes(selected.map((r) => r.ID)) : undefined
    const now = Date.now()
    const out: ContainerSummary[] = []
    for (const [i, r] of selected.entries()) {
      let image = String(r.Config.Image ?? '')
      try {
        if ((await resolveImage(this.ctx, image)).id !== r.Image) image = r.Image.slice(7, 19)
      } catch {
        image = r.Image.slice(7, 19)
      }
      out.push({
        id: r.ID, names: [r.Name.slice(1)], image, imageId: r.Image,
        command: commandLine(r.Path, r.Args), created: new Date(r.Created), state: r.State.Status,
        status: statusText(r, now), exitCode: r.State.ExitCode,
        ...(r.State.StartedAt.startsWith('0001') ? {} : { startedAt: new Date(r.State.StartedAt) }),
        ...(r.State.FinishedAt.startsWith('0001') ? {} : { finishedAt: new Date(r.State.FinishedAt) }),
        labels: { ...(r.Config.Labels ?? {}) }, network: await network(r),
        ...(sizes ? sizes[i] : {}),
      })
    }
    return out
  }

  /**
   * Docker's SizeRw (the writable layer, as `pkg/directory.Size` counts it) and SizeRootFs
   * (plus the image's layers) of each container (by full ID), the walks in one native task.
   */
  sizes(ids: string[]): Promise<{ sizeRw: number; sizeRootFs: number }[]> {
    return this.ctx.shared(() => this.#sizes(ids))
  }

  async #sizes(ids: string[]): Promise<{ sizeRw: number; sizeRootFs: number }[]> {
    const uppers = await Promise.all(ids.map(async (id) => {
      const mountId = (await readIfExists(path.join(this.paths(id).mountMeta, MOUNT_FILE.mountId)))?.trim()
      return mountId ? this.ctx.layout.diffDir(mountId) : ''
    }))
    const rw = await call(() => native.treeSizes(uppers.map((u) => u || '/nonexistent-strata-layer')))
    const out: { sizeRw: number; sizeRootFs: number }[] = []
    for (const [i, id] of ids.entries()) {
      const parent = (await readIfExists(path.join(this.paths(id).mountMeta, MOUNT_FILE.parent)))?.trim()
      let image = 0
      for (let cur = parent ? asChainId(parent) : undefined; cur;) {
        const l = await this.ctx.layers.get(cur)
        if (!l) break
        image += l.size
        cur = l.parent
      }
      out.push({ sizeRw: rw[i], sizeRootFs: image + rw[i] })
    }
    return out
  }

  /**
   * docker rename. Errors as the daemon words them: the same name, a name in use
   * (`NameInUse`), an invalid name (`InvalidArgument`).
   */
  async rename(nameOrId: string, newName: string): Promise<void> {
    const id = await this.resolve(nameOrId)
    if (!newName) throw new StrataError('InvalidArgument', 'Neither old nor new names may be empty')
    const wanted = newName.startsWith('/') ? newName : `/${newName}`
    await this.ctx.exclusive(async () => {
      const p = this.paths(id)
      const rec = await readRecord(p)
      if (!rec) throw new StrataError('ContainerNotFound', `No such container: ${nameOrId}`)
      if (rec.Name === wanted) throw new StrataError('InvalidArgument', 'Renaming a container with the same name as its current name')
      try {
        canonicalName(wanted)
      } catch {
        throw new StrataError('InvalidArgument', `Error when allocating new name: Invalid container name (${wanted}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`)
      }
      const taken = (await this.#records()).find((r) => r.Name === wanted)
      if (taken) {
        throw new StrataError('NameInUse', `Error when allocating new name: Conflict. The container name "${wanted}" is already in use by container "${taken.ID}". You have to remove (or rename) that container to be able to reuse that name.`)
      }
      rec.Name = wanted
      await writeRecord(p, rec)
    })
  }

  /** `container prune`: every stopped container the filters (`until`, `label`, `label!`) select; see ts/prune.ts. */
  prune(filters: PruneFilters = {}): Promise<ContainerPruneResult> {
    return pruneContainers(this.ctx, this, filters)
  }

  /** Containers using an image (the ImageUsers hook of `rmi`), under the caller's lock. */
  async users(imageId: string): Promise<ImageUser[]> {
    return (await this.#records()).filter((r) => r.Image === imageId).map((r) => ({ id: r.ID, running: r.State.Running }))
  }

  /** `docker rm`. */
  async remove(nameOrId: string, opts: RemoveContainerOptions = {}): Promise<void> {
    const id = await this.resolve(nameOrId)
    const p = this.paths(id)
    let rec = await readRecord(p)
    if (rec?.State.Running || rec?.PausedBy) {
      // A container recorded running whose supervisor died may have exited long ago: ask first.
      await this.ctx.exclusive(() => this.#repairOne(id, { removed: 0, exited: 0, unmounted: 0 }))
      rec = await readRecord(p)
    }
    if (!rec) throw new StrataError('ContainerNotFound', `No such container: ${nameOrId}`)
    if (rec.State.Running) {
      if (!opts.force) {
        throw new StrataError('Conflict', `cannot remove container "${rec.Name}": container is running: stop the container before removing or force remove`)
      }
      const c = new Container(this.ctx, this, id)
      // Forced: whatever kill says, the runtime's container goes (delete --force kills what is left).
      await c.kill('SIGKILL').catch(() => undefined)
      await c.wait({ timeoutMs: 10000 }).catch(async () => {
        await (await runtimeOf(this.ctx, p)).delete(id, true)
        await c.wait({ timeoutMs: 5000 })
      })
    }
    await this.ctx.exclusive(async () => {
      const r = await readRecord(p)
      if (r?.State.Running && pidAlive(r.Supervisor ?? 0)) {
        throw new StrataError('Conflict', `cannot remove container "${r.Name}": container is running: stop the container before removing or force remove`)
      }
      await this.#destroy(id, rec.Image)
    })
  }

  /**
   * Deletes a container: unmount, record, layer record, files, then the image layers nobody uses
   * any more (an image removed with `rmi -f` while this container held them). Caller holds the lock.
   */
  async #destroy(id: string, imageId?: string): Promise<void> {
    const p = this.paths(id)
    const layout = this.ctx.layout
    const [mountId, initId, parent] = await Promise.all([MOUNT_FILE.mountId, MOUNT_FILE.initId, MOUNT_FILE.parent].map(async (f) => (await readIfExists(path.join(p.mountMeta, f)))?.trim()))
    if (mountId) await this.#mounts.releaseAll(mountId)
    await (await runtimeOf(this.ctx, p)).delete(id, true).catch(() => undefined)
    // Every tree leaves the store's namespace with one rename: the container's dir first (the
    // moment the container is gone), then its layer record, then (after the l/ links) its layer
    // dirs. Deleting their files happens in the background (ctx.reclaim): on ext4 that is most
    // of an rm's time. A crash in between leaves a layer record without a container, which the
    // repair pass removes, and trees under tmp/, which cleanup removes.
    const ops: NativeFsOp[] = []
    const trash: string[] = []
    const aside = (dir: string, op: 'rename' | 'renameIfExists'): void => {
      const to = path.join(layout.tmp, `rm-${path.basename(dir)}-${randomHex(4)}`)
      ops.push({ op, path: dir, target: to })
      trash.push(to)
    }
    aside(p.dir, 'renameIfExists')
    aside(p.mountMeta, 'renameIfExists')
    const cacheIds = [mountId, initId].filter((c): c is string => Boolean(c && /^[0-9a-f]{64}(-init)?$/.test(c)))
    const shorts = await Promise.all(cacheIds.map((c) => readIfExists(path.join(layout.layerDir(c), LINK_FILE))))
    for (const s of shorts) if (s && /^[A-Z0-9]+$/.test(s.trim())) ops.push({ op: 'unlink', path: layout.shortLink(s.trim()) })
    for (const c of cacheIds) aside(layout.layerDir(c), 'renameIfExists')
    await call(() => fsBatch(ops))
    this.ctx.reclaim(trash)
    // The image's own chain keeps every layer below this container alive while the image exists.
    if (parent && !(imageId && (await this.ctx.images.has(imageId)))) await this.#releaseImageLayers(asChainId(parent))
  }

  async #releaseImageLayers(parent: ChainId): Promise<void> {
    const used = await this.ctx.usedLayers()
    const blobs: (string | undefined)[] = []
    for (let cur: ChainId | undefined = parent; cur && !used.has(cur);) {
      const l = await this.ctx.layers.get(cur)
      if (!l) break
      await this.ctx.layers.remove(cur)
      blobs.push(l.compressedDigest)
      cur = l.parent
    }
    await releaseBlobs(this.ctx, blobs)
  }

  /**
   * The repair pass on store open (under the store lock): removes half-created or half-removed
   * containers, turns containers recorded running whose runtime state is gone into exited ones,
   * resumes containers a crashed `commit` left paused, and makes mount refs match the kernel.
   * Never touches a writable layer that has a record.
   */
  async repair(): Promise<{ removed: number; exited: number; unmounted: number }> {
    const report = { removed: 0, exited: 0, unmounted: 0 }
    const layout = this.ctx.layout
    const ids = new Set([...(await listDir(layout.containers)), ...(await listDir(layout.layerdbMounts))])
    for (const id of ids) {
      if (!/^[0-9a-f]{64}$/.test(id)) continue
      // One container that cannot be repaired (say, the runtime binary is gone) must not keep the store shut.
      try {
        await this.#repairOne(id, report)
      } catch (e) {
        process.emitWarning(`strata: cannot repair container ${id}: ${(e as Error).message}`)
      }
    }
    return report
  }

  /**
   * The repair pass of a store no writer died in (Store.open): only containers whose own files
   * say something is off — no record, a commit's or a supervisor's process gone, mount refs of
   * dead processes or refs the kernel's mounts contradict. A few small reads per container and
   * no lock when all is well; what looks stale is looked at again under the lock.
   */
  async repairStale(): Promise<void> {
    const layout = this.ctx.layout
    const ids = new Set([...(await listDir(layout.containers)), ...(await listDir(layout.layerdbMounts))])
    const stale: string[] = []
    for (const id of ids) if (/^[0-9a-f]{64}$/.test(id) && (await this.#looksStale(id))) stale.push(id)
    if (stale.length === 0) return
    const report = { removed: 0, exited: 0, unmounted: 0 }
    await this.ctx.exclusive(async () => {
      for (const id of stale) {
        try {
          if (await this.#looksStale(id)) await this.#repairOne(id, report)
        } catch (e) {
          process.emitWarning(`strata: cannot repair container ${id}: ${(e as Error).message}`)
        }
      }
    })
  }

  async #looksStale(id: string): Promise<boolean> {
    const p = this.paths(id)
    const rec = await readRecord(p)
    if (!rec) return true
    if (pauserDied(rec)) return true
    if (rec.State.Running && !(rec.Supervisor && pidAlive(rec.Supervisor))) return true
    const mountId = (await readIfExists(path.join(p.mountMeta, MOUNT_FILE.mountId)))?.trim()
    if (!mountId) return false
    const refs = await readRefs(p)
    const live = liveRefs(refs, rec.State.Running)
    const mounted = mountedAt(this.ctx.layout.mergedDir(mountId))
    return live.length !== refs.length || (mounted ? live.length === 0 : refs.length > 0)
  }

  async #repairOne(id: string, report: { removed: number; exited: number; unmounted: number }): Promise<void> {
    const p = this.paths(id)
    // A commit died between `runc pause` and `runc resume`.
    await this.#thaw(p)
    const rec = await readRecord(p)
    const mountId = (await readIfExists(path.join(p.mountMeta, MOUNT_FILE.mountId)))?.trim()
    const initId = (await readIfExists(path.join(p.mountMeta, MOUNT_FILE.initId)))?.trim()
    // No record, or a record whose layers never all got in place (a create that crashed before
    // its final sync, which it had not reported done): the container goes.
    const layersMissing = !mountId || !(await exists(this.ctx.layout.layerDir(mountId))) || (initId !== undefined && !(await exists(this.ctx.layout.layerDir(initId))))
    if (!rec || layersMissing) {
      await this.#destroy(id)
      report.removed++
      return
    }
    const runtime = await runtimeOf(this.ctx, p)
    if (rec.State.Running && !(rec.Supervisor && pidAlive(rec.Supervisor))) {
      const st = await runtime.state(id)
      if (!(st && (st.status === 'running' || st.status === 'paused'))) {
        await runtime.delete(id, true).catch(() => undefined)
        rec.State = { ...rec.State, Status: 'exited', Running: false, Paused: false, Pid: 0, ExitCode: rec.State.ExitCode || 255, FinishedAt: new Date().toISOString() }
        delete rec.Supervisor
        await writeRecord(p, rec)
        report.exited++
      }
    }
    if (mountId) {
      const r = await this.#mounts.reconcile(p, mountId)
      if (r.unmounted) report.unmounted++
    }
  }

}

/** Whether a `commit` paused the container and died before resuming it. */
function pauserDied(rec: ContainerRecord): boolean {
  return rec.PausedBy !== undefined && !processLives(rec.PausedBy, rec.PausedByStart)
}

/** The COMMAND of `ps` as the daemon builds it: args containing a space are wrapped in single quotes. */
export function commandLine(p: string, args: readonly string[]): string {
  return args.length ? `${p} ${args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}` : p
}

/** Docker's STATUS column. */
export function statusText(r: ContainerRecord, now = Date.now()): string {
  const s = r.State
  const since = (iso: string) => humanDuration(now - Date.parse(iso))
  if (s.Running) return `Up ${since(s.StartedAt)}${s.Paused ? ' (Paused)' : ''}`
  if (s.Status === 'created') return 'Created'
  if (s.Status === 'removing') return 'Removal In Progress'
  if (s.Dead) return 'Dead'
  if (s.FinishedAt.startsWith('0001')) return 'Created'
  return `Exited (${s.ExitCode}) ${since(s.FinishedAt)} ago`
}

export const CREATE_OPTIONS = v.options({
  name: v.optional(v.nonEmptyString), env: v.optional(v.arrayOf(v.string)), workdir: v.optional(v.string),
  user: v.optional(v.string), entrypoint: v.optional(v.either(v.string, v.arrayOf(v.string))),
  cmd: v.optional(v.arrayOf(v.string)), network: v.optional(v.string), autoRemove: v.optional(v.boolean),
  openStdin: v.optional(v.boolean), runtime: v.optional(v.nonEmptyString), tty: v.optional(v.boolean),
  labels: v.optional(v.recordOf(v.string)), attach: v.optional(v.boolean), securityOpt: v.optional(v.arrayOf(v.string)),
})

/** `--filter`-style maps: each key → its values. */
export const FILTERS = v.recordOf(v.arrayOf(v.string))

expose(Containers, {
  paths: sync([['id', v.nonEmptyString]]),
  ids: [],
  records: [],
  resolve: [['nameOrId', v.nonEmptyString]],
  get: [['nameOrId', v.nonEmptyString]],
  create: [['image', v.nonEmptyString], ['opts', v.optional(CREATE_OPTIONS)]],
  list: [['opts', v.optional(v.options({ all: v.optional(v.boolean), limit: v.optional(v.either(v.count, v.check((x) => x === -1, '-1'))), filters: v.optional(FILTERS), size: v.optional(v.boolean) }))]],
  sizes: [['ids', v.arrayOf(v.nonEmptyString)]],
  rename: [['nameOrId', v.nonEmptyString], ['newName', v.string]],
  prune: [['filters', v.optional(FILTERS)]],
  users: [['imageId', v.nonEmptyString]],
  remove: [['nameOrId', v.nonEmptyString], ['opts', v.optional(v.options({ force: v.optional(v.boolean) }))]],
  repair: [],
  repairStale: [],
  dispose: [],
  thaw: [['id', v.nonEmptyString]],
  thawOrphans: [],
})
