/**
 * One container: its record, and what you do with it — mount/unmount its rootfs (kernel
 * overlayfs, reference-counted), run/start/wait/kill/stop its process through the OCI runtime,
 * `diff` its writable layer, `commit` it to a new image, `export` its merged filesystem.
 * Everything is promise-based; processes are spawned, native calls are async.
 */
import { fsp as fs, childProcess, stream } from '../internal/lazy'
import path = require('node:path')
import type { Readable, Writable } from 'node:stream'
import { StoreContext } from '../internal/context'
import { Operation } from '../internal/operation'
import { copyToStream } from '../internal/streams'
import { native } from '../internal/native'
import { call, StrataError } from '../errors'
import { readIfExists, readFileIfExists } from '../internal/fsx'
import { asChainId, asDiffId, chainIdsOf, type DiffId } from '../internal/chain'
import { applyChanges } from '../internal/commit-changes'
import { tagIn } from '../internal/tags'
import { allOrNothing } from '../internal/rollback'
import { writeAll } from '../internal/metawrites'
import { parseReference } from '../reference'
import { ImageConfig, ContainerConfig, imageIdOf } from '../internal/imagedb'
import { dockerConfig } from '../images'
import { ContainerPaths } from './layout'
import { DIFF_DIR, LAYER_FILE, MOUNT_FILE } from '../internal/layout'
import { ContainerRecord, readRecord, readHostConfig, writeRecord } from './record'
import { INIT_PATHS } from './plan'
import { pidAlive, processStartTime, readMountPlan } from './mounts'
import { supervise, mountIdOf, runtimeOf, updateRecord } from './supervisor'
import { normalizeSignal } from './runtime'
import { MASKED_PATHS, READONLY_PATHS } from './spec'
import type { Containers } from './containers'
import { UnionView } from '../view'
import { expose } from '../internal/boundary'
import * as v from '../internal/validate'
import type { ConsoleSize } from './console'
// exec, top and cp load their modules on first use: read-only CLI commands never pay for them.
import type { ExecOptions, ExecResult } from './exec'
import type { TopResult } from './top'
import type { CopyFromOptions, CopyToOptions, CopyResult } from './copy'
import type { ContainerFiles, CopyHost, PathStat } from './archive-path'

/** sha256 of an empty tar (1024 zero bytes): a commit with no changes adds no layer (Docker's rule). */
export const EMPTY_TAR_DIFF_ID = asDiffId('sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef')

export interface RunOptions {
  /** Fed to the process when the container was created with `openStdin` (`-i`). */
  stdin?: Readable
  /**
   * Where stdout/stderr go as they come; when absent they are collected into the result. With a
   * terminal (created with `tty`) the process's output is one stream: `stdout`.
   */
  stdout?: Writable
  stderr?: Writable
  /** With a terminal: its window size, followed while the process runs (`ConsoleSize.follow`). */
  console?: ConsoleSize | { rows: number; cols: number }
  /**
   * With a terminal and `stdin`: docker's detach keys (`ctrl-p,ctrl-q`): typed, they end the
   * run with `detached` while the process goes on (a shim logs it and records its exit).
   */
  detachKeys?: string
  /**
   * Aborting kills the container (SIGKILL), destroys `stdin` and rejects with `Aborted`; the
   * container is then exited (137), unmounted, and removed if it was created with `autoRemove`.
   */
  signal?: AbortSignal
}

export interface RunResult {
  exitCode: number
  /** Collected output (empty when a stream was given). */
  stdout: Buffer
  stderr: Buffer
  /** What the runtime reported when the process could not be started (exit 126/127). */
  error?: string
  /** The caller detached (`detachKeys`): the process runs on; `exitCode` is 0. */
  detached?: boolean
}

export interface Change {
  kind: 'A' | 'C' | 'D'
  path: string
}

export interface CommitOptions {
  /** `REPO[:TAG]` for the new image. */
  ref?: string
  /** `-m` */
  message?: string
  /** `-a` */
  author?: string
  /** `-c` Dockerfile instructions. */
  changes?: string[]
  /** Pause a running container while its layer is read (default true, as docker). */
  pause?: boolean
  signal?: AbortSignal
}

export interface LogEntry {
  stream: 'stdout' | 'stderr'
  log: string
  time: string
}

export class Container {
  readonly #ctx: StoreContext
  readonly #all: Containers
  readonly id: string
  readonly paths: ContainerPaths

  /** @internal use `store.containers.get()` / `create()`. */
  constructor(ctx: StoreContext, all: Containers, id: string) {
    this.#ctx = ctx
    this.#all = all
    this.id = id
    this.paths = new ContainerPaths(ctx.layout, id)
  }

  /**
   * @internal Resumes the container if a commit paused it and died (`Containers.thaw`); the API
   * boundary calls it before each call. Not for a call made inside a section of the store lock
   * (a method another one calls under the lock: the thaw's exclusive section inside a shared one
   * would wait for itself): the outer call's own hook ran before it entered.
   */
  async thawIfOrphaned(): Promise<void> {
    if (this.#ctx.lock.held()) return
    return this.#all.thaw(this.id)
  }

  /** The record as stored now. */
  info(): Promise<ContainerRecord> {
    return this.#ctx.shared(async () => {
      const r = await readRecord(this.paths)
      if (!r) throw new StrataError('ContainerNotFound', `No such container: ${this.id}`)
      return r
    })
  }

  /** `/name` without the slash. */
  async name(): Promise<string> {
    return (await this.info()).Name.slice(1)
  }

  async #mountId(): Promise<string> {
    return mountIdOf(this.paths)
  }

  /** The writable layer's dirs and the lower dirs (top first, init layer included). */
  layers(): Promise<{ lowerDirs: string[]; upperDir: string; workDir: string; mergedDir: string; initDir?: string }> {
    return this.#ctx.shared(() => this.#layers())
  }

  async #layers(): Promise<{ lowerDirs: string[]; upperDir: string; workDir: string; mergedDir: string; initDir?: string }> {
    const mountId = await this.#mountId()
    const layout = this.#ctx.layout
    // No init-id: a container of an image as deep as the kernel allows has no init layer.
    const initId = (await readIfExists(path.join(this.paths.mountMeta, MOUNT_FILE.initId)))?.trim()
    const parent = (await readIfExists(path.join(this.paths.mountMeta, MOUNT_FILE.parent)))?.trim()
    const below = parent ? (await this.#ctx.layers.stack(asChainId(parent))).map((l) => layout.diffDir(l.cacheId)) : []
    return {
      lowerDirs: initId ? [layout.diffDir(initId), ...below] : below, upperDir: layout.diffDir(mountId), workDir: layout.workDir(mountId),
      mergedDir: layout.mergedDir(mountId), ...(initId ? { initDir: layout.diffDir(initId) } : {}),
    }
  }

  /** Mounts the rootfs (kernel overlayfs) and returns MergedDir; a second call returns the same path. */
  async mount(): Promise<string> {
    const mountId = await this.#mountId()
    return this.#ctx.exclusive(async () => {
      const rec = await this.info()
      return this.#all.mounts.acquire(this.paths, mountId, { kind: 'user' }, rec.State.Running)
    })
  }

  /** Drops a `mount()` reference; the rootfs is unmounted when nothing else holds it. */
  async unmount(): Promise<void> {
    const mountId = await this.#mountId()
    await this.#ctx.exclusive(() => this.#all.mounts.release(this.paths, mountId, { kind: 'user' }))
  }

  /**
   * The container's filesystem as a userspace union view, no mount needed: read-write over its
   * writable layer (copy-up and whiteouts as overlayfs makes them), or read-only with
   * `{ readOnly: true }`. A writable view is refused while the rootfs is kernel-mounted: two
   * writers on one upper dir would race each other's copy-ups.
   */
  view(opts: { readOnly?: boolean } = {}): Promise<UnionView> {
    return this.#ctx.shared(() => this.#view(opts))
  }

  async #view(opts: { readOnly?: boolean }): Promise<UnionView> {
    const plan = await readMountPlan(this.#ctx.layout, await this.#mountId())
    if (opts.readOnly) return UnionView.open({ lowers: [plan.upperdir!, ...plan.lowerdirs] })
    if (await this.isMounted()) {
      throw new StrataError('Conflict', `container ${this.id} is mounted: unmount it before writing through a view`)
    }
    return UnionView.open({ lowers: plan.lowerdirs, upper: plan.upperdir, work: plan.workdir })
  }

  async isMounted(): Promise<boolean> {
    return this.#all.mounts.isMounted(await this.#mountId())
  }

  /**
   * Runs the container's process in the foreground (docker run / start -a) and resolves with
   * its exit code once it has exited; AutoRemove (`--rm`) containers are removed afterwards.
   */
  run(opts: RunOptions = {}): Promise<RunResult> {
    return Operation.run(this.#ctx, opts.signal, (op) => this.#run(op, opts))
  }

  async #run(op: Operation, opts: RunOptions): Promise<RunResult> {
    if (opts.stdin) op.source(opts.stdin)
    const out: Buffer[] = []
    const err: Buffer[] = []
    const collect = (bufs: Buffer[]) => {
      const s = new stream.PassThrough()
      s.on('data', (d: Buffer) => bufs.push(d))
      return s
    }
    const detachKeys = opts.detachKeys ? (require('./detach-keys') as typeof import('./detach-keys')).parseDetachKeys(opts.detachKeys) : undefined
    const res = await supervise(this.#ctx, this.paths, {
      stdin: opts.stdin, stdout: opts.stdout ?? collect(out), stderr: opts.stderr ?? collect(err), ...(opts.console ? { console: opts.console } : {}),
      ...(detachKeys ? { detachKeys } : {}),
    }, undefined, op.signal)
    if (res.detached) return { exitCode: 0, stdout: Buffer.concat(out), stderr: Buffer.concat(err), detached: true }
    if ((await readHostConfig(this.paths)).AutoRemove) await this.#all.remove(this.id, { force: true }).catch(() => undefined)
    op.check()
    return { exitCode: res.exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err), ...(res.error ? { error: res.error } : {}) }
  }

  /**
   * docker exec: runs `cmd` in the running container and resolves with its exit code (126 and
   * `error` when the runtime could not start it, as Docker). Not running → `NotRunning`;
   * paused → `Conflict`.
   */
  async exec(cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const rec = await this.info()
    const runtime = await runtimeOf(this.#ctx, this.paths)
    const { execProcess } = require('./exec') as typeof import('./exec')
    return execProcess(this.#ctx, runtime, this.paths, rec, async () => {
      const l = await this.layers()
      return [l.upperDir, ...l.lowerDirs]
    }, cmd, opts)
  }

  /** Starts the process detached (a supervising shim records its exit); resolves once it runs. */
  async start(): Promise<void> {
    const rec = await this.info()
    if (rec.State.Running) return
    await updateRecord(this.#ctx, this.paths, (r) => { r.State.Error = '' })
    const { command, args } = (require('./adopt') as typeof import('./adopt')).shimCommand()
    const child = childProcess.spawn(command, [...args, this.#ctx.layout.root, this.id], { detached: true, stdio: 'ignore' })
    child.unref()
    for (let i = 0; ; i++) {
      const r = await this.info().catch(() => undefined)
      if (!r) return // --rm container already gone
      if (r.State.Error && !r.State.Running) throw new StrataError('RuntimeFailed', r.State.Error)
      // Started once the shim has stamped a new StartedAt and the runtime has created the
      // process (its pid is known) — or it has run and exited already.
      if (r.State.StartedAt !== rec.State.StartedAt && (r.State.Pid > 0 || !r.State.Running)) return
      if (i > 300) throw new StrataError('RuntimeFailed', `container ${this.id} did not start`)
      await sleep(50)
    }
  }

  /**
   * Resolves with the exit code once the container is not running (docker wait). Aborting
   * `signal` stops the wait (not the container) and rejects with `Aborted`.
   */
  wait(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<number> {
    return Operation.run(this.#ctx, opts.signal, (op) => this.#wait(op, opts.timeoutMs))
  }

  async #wait(op: Operation, timeoutMs: number | undefined): Promise<number> {
    const deadline = timeoutMs ? Date.now() + timeoutMs : Infinity
    for (let i = 0; ; i++) {
      op.check()
      const r = await this.info()
      if (!r.State.Running) return r.State.ExitCode
      // Nobody supervises it any more (a crash): ask the runtime.
      if (i % 10 === 0 && !(r.Supervisor && pidAlive(r.Supervisor))) {
        const runtime = await runtimeOf(this.#ctx, this.paths)
        const st = await runtime.state(this.id)
        if (!st || st.status === 'stopped') {
          await runtime.delete(this.id, true)
          const nr = await updateRecord(this.#ctx, this.paths, (x) => {
            if (!x.State.Running) return
            x.State = { ...x.State, Status: 'exited', Running: false, Paused: false, Pid: 0, ExitCode: x.State.ExitCode || 255, FinishedAt: new Date().toISOString() }
            delete x.Supervisor
          })
          const mountId = await this.#mountId()
          await this.#ctx.exclusive(() => this.#all.mounts.reconcile(this.paths, mountId)).catch(() => undefined)
          return nr.State.ExitCode
        }
      }
      if (Date.now() > deadline) throw new StrataError('Aborted', `timed out waiting for container ${this.id}`)
      await sleep(i < 20 ? 25 : 100)
    }
  }

  /** Sends a signal (default SIGKILL, as docker kill). */
  async kill(signal: string | number = 'SIGKILL'): Promise<void> {
    const r = await this.info()
    if (!r.State.Running) throw new StrataError('NotRunning', `cannot kill container: ${r.Name.slice(1)}: container ${this.id} is not running`)
    const runtime = await runtimeOf(this.#ctx, this.paths)
    let res = await runtime.kill(this.id, normalizeSignal(signal))
    // Just started: the record says running before the runtime has created the container.
    for (let i = 0; res.code !== 0 && i < 40; i++) {
      const now = (await this.info()).State
      if (!now.Running || now.Pid !== 0) break
      await sleep(50)
      res = await runtime.kill(this.id, normalizeSignal(signal))
    }
    if (res.code !== 0) {
      const again = await this.info()
      if (!again.State.Running) throw new StrataError('NotRunning', `cannot kill container: ${r.Name.slice(1)}: container ${this.id} is not running`)
      throw new StrataError('RuntimeFailed', `cannot kill container ${r.Name.slice(1)}: ${res.stderr.trim()}`)
    }
    // A paused container gets the signal once it is thawed: the daemon resumes it after SIGKILL
    // or its stop signal (any signal when it has no StopSignal of its own).
    const sig = normalizeSignal(signal)
    if (r.State.Paused && (sig === 'SIGKILL' || sig === '9' || !r.Config.StopSignal || normalizeSignal(r.Config.StopSignal) === sig)) {
      await runtime.resume(this.id).catch(() => undefined)
      await updateRecord(this.#ctx, this.paths, (x) => {
        if (x.State.Paused) x.State = { ...x.State, Paused: false, Status: x.State.Running ? 'running' : x.State.Status }
      }).catch(() => undefined)
    }
  }

  /** docker pause: freezes every process of the container (the runtime's cgroup freezer). */
  async pause(): Promise<void> {
    const runtime = await runtimeOf(this.#ctx, this.paths)
    await this.#ctx.exclusive(async () => {
      const r = await this.info()
      if (!r.State.Running) throw new StrataError('NotRunning', `Container ${r.ID} is not running`)
      if (r.State.Paused) throw new StrataError('Conflict', `Container ${r.ID} is already paused`)
      await runtime.pause(this.id).catch((e: StrataError) => {
        throw new StrataError('RuntimeFailed', `Cannot pause container ${r.ID}: ${e.message}`, { cause: e })
      })
      r.State = { ...r.State, Paused: true, Status: 'paused' }
      await writeRecord(this.paths, r)
    })
  }

  /** docker unpause. */
  async unpause(): Promise<void> {
    const runtime = await runtimeOf(this.#ctx, this.paths)
    await this.#ctx.exclusive(async () => {
      const r = await this.info()
      if (!r.State.Paused) throw new StrataError('Conflict', `Container ${r.ID} is not paused`)
      await runtime.resume(this.id).catch((e: StrataError) => {
        throw new StrataError('RuntimeFailed', `Cannot unpause container ${r.ID}: ${e.message}`, { cause: e })
      })
      r.State = { ...r.State, Paused: false, Status: r.State.Running ? 'running' : r.State.Status }
      await writeRecord(this.paths, r)
    })
  }

  /**
   * docker top: `ps ARGS` (default `-ef`) on the host, rows kept for the container's processes
   * (the runtime's list), columns split as the daemon splits them (the last takes the rest).
   */
  async top(psArgs: string[] = []): Promise<TopResult> {
    const { containerTop } = require('./top') as typeof import('./top')
    return containerTop(this, await runtimeOf(this.#ctx, this.paths), psArgs)
  }

  /** The image's StopSignal (default SIGTERM), then SIGKILL after `timeout` seconds (default 10). */
  async stop(opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const r = await this.info()
    if (!r.State.Running) return
    const sig = normalizeSignal(opts.signal ?? r.Config.StopSignal, 'SIGTERM')
    await this.kill(sig).catch((e: StrataError) => { if (e.code !== 'NotRunning') throw e })
    try {
      await this.wait({ timeoutMs: (opts.timeout ?? 10) * 1000 })
    } catch (e) {
      if ((e as StrataError).code !== 'Aborted') throw e
      await this.kill('SIGKILL').catch((e2: StrataError) => { if (e2.code !== 'NotRunning') throw e2 })
      await this.wait()
    }
  }

  /** docker diff: changes of the writable layer against the layers below (init files excluded). */
  diff(): Promise<Change[]> {
    return this.#ctx.shared(() => this.#diff())
  }

  async #diff(): Promise<Change[]> {
    const plan = await readMountPlan(this.#ctx.layout, await this.#mountId())
    const changes = await call(() => native.changes(plan.upperdir!, plan.lowerdirs))
    return withoutInitPaths(changes)
  }

  /**
   * docker commit: the writable layer becomes a new read-only layer on top of the image's
   * (shared, untouched) layers; the container keeps its own layer. Returns the new image ID.
   */
  commit(opts: CommitOptions = {}): Promise<string> {
    return Operation.run(this.#ctx, opts.signal, (op) => this.#commit(op, opts))
  }

  async #commit(op: Operation, opts: CommitOptions): Promise<string> {
    const ctx = this.#ctx
    if (opts.ref !== undefined) {
      const ref = parseReference(opts.ref)
      if (ref.digest !== undefined) throw new StrataError('InvalidReference', 'refusing to create a tag with a digest reference')
    }
    const rec = await this.info()
    const newConfig = applyChanges({ ...rec.Config }, opts.changes ?? [])
    const mountId = await this.#mountId()
    const runtime = await runtimeOf(ctx, this.paths)
    let paused = false
    if (rec.State.Running && !rec.State.Paused && opts.pause !== false) {
      // Recorded first, so a store opened after this process dies resumes the container.
      await updateRecord(ctx, this.paths, (r) => { r.PausedBy = process.pid; r.PausedByStart = processStartTime(process.pid) })
      try {
        await runtime.pause(this.id)
      } catch (e) {
        await updateRecord(ctx, this.paths, (r) => { delete r.PausedBy; delete r.PausedByStart }).catch(() => undefined)
        throw e
      }
      paused = true
    }
    const staging = await ctx.staging('commit', op)
    try {
      const layerDir = path.join(staging.dir, 'layer')
      await fs.mkdir(layerDir)
      const tarSplit = path.join(staging.dir, LAYER_FILE.tarSplit)
      let committed: { diffId: DiffId; size: number }
      try {
        const made = await call(() => native.commitLayer(ctx.layout.diffDir(mountId), path.join(layerDir, DIFF_DIR), tarSplit, op.cancel))
        committed = { diffId: asDiffId(made.diffId), size: made.size }
      } finally {
        if (paused) {
          await runtime.resume(this.id).catch(() => undefined)
          await updateRecord(ctx, this.paths, (r) => { delete r.PausedBy; delete r.PausedByStart }).catch(() => undefined)
        }
      }
      op.check()
      // All or nothing: a failure after the layer or the image config appeared takes them back.
      return await op.locked('exclusive', () => op.commit(() => allOrNothing(async (undo) => {
        const parentImg = await ctx.images.get(rec.Image)
        if (!parentImg) throw new StrataError('ImageNotFound', `No such image: ${rec.Image}`)
        const pc = parentImg.config
        const diffIds = [...pc.rootfs.diff_ids]
        const empty = committed.diffId === EMPTY_TAR_DIFF_ID
        if (!empty) {
          const chain = chainIdsOf(diffIds)
          const top = chain.length ? await ctx.layers.must(chain[chain.length - 1]) : undefined
          const newChain = chainIdsOf([...diffIds, committed.diffId]).pop()!
          if (await ctx.layers.register({ dir: layerDir, tarSplit, diffId: committed.diffId, size: committed.size }, newChain, top)) {
            undo.add(`layer ${newChain}`, () => ctx.layers.remove(newChain))
          }
          diffIds.push(committed.diffId)
        }
        const created = new Date().toISOString()
        const config: ImageConfig = {
          ...(opts.message ? { comment: opts.message } : {}),
          created,
          container: this.id,
          container_config: dockerConfig(rec.Config) as ContainerConfig,
          ...(opts.author ? { author: opts.author } : {}),
          config: dockerConfig(newConfig) as ContainerConfig,
          architecture: pc.architecture ?? 'amd64',
          ...(pc.variant ? { variant: pc.variant } : {}),
          os: pc.os ?? 'linux',
          rootfs: { type: 'layers', diff_ids: diffIds },
          history: [...(pc.history ?? []), {
            created,
            ...(opts.author ? { author: opts.author } : {}),
            created_by: (rec.Config.Cmd ?? []).join(' '),
            ...(opts.message ? { comment: opts.message } : {}),
            ...(empty ? { empty_layer: true } : {}),
          }],
        }
        const raw = Buffer.from(JSON.stringify(config))
        const id = imageIdOf(raw)
        if (!(await ctx.images.has(id))) {
          await ctx.images.put(raw)
          undo.add(`image ${id}`, () => ctx.images.delete(id))
        }
        const repos = opts.ref ? await ctx.repos.read() : undefined
        if (repos) tagIn(repos, opts.ref!, id)
        await writeAll(async (w) => {
          await ctx.images.setParent(w, id, rec.Image)
          await ctx.images.touch(w, id)
          if (repos) await ctx.repos.stage(w, repos)
        })
        return id
      })))
    } finally {
      await staging.dispose()
    }
  }

  /**
   * `docker cp CONTAINER:SRC DEST|-`: copies `srcPath` out of the container to a host path, or
   * writes its tar archive (as docker produces it) to a stream. Works on a stopped container
   * without mounting it, and on a running (or mounted) one through its mount.
   */
  async copyFrom(srcPath: string, dest: string | Writable, opts: CopyFromOptions = {}): Promise<CopyResult> {
    const { copyFromContainer } = require('./copy') as typeof import('./copy')
    return copyFromContainer(this.#copyHost(), srcPath, dest, opts)
  }

  /**
   * `docker cp SRC|- CONTAINER:DEST`: copies a host path into the container, or extracts a tar
   * archive read from a stream into a directory of it.
   */
  async copyTo(src: string | Readable, dstPath: string, opts: CopyToOptions = {}): Promise<CopyResult> {
    const { copyToContainer } = require('./copy') as typeof import('./copy')
    return copyToContainer(this.#copyHost(), src, dstPath, opts)
  }

  /** What `docker cp` sees of `path` in the container (the last element not followed). */
  async statPath(p: string): Promise<PathStat> {
    const { containerStatPath } = require('./archive-path') as typeof import('./archive-path')
    return containerStatPath(this.#copyHost(), p)
  }

  #copyHost(): CopyHost {
    return {
      files: (write) => this.#copyFiles(write),
      name: () => this.name(),
      configUser: async () => (await this.info()).Config.User ?? '',
    }
  }

  /**
   * The container's files for a copy: through the kernel's mount, held by a reference, when it
   * is mounted (running, or `strata mount`); else the union view over its layers.
   */
  async #copyFiles(write: boolean): Promise<ContainerFiles> {
    const mountId = await this.#mountId()
    const me = { kind: 'process' as const, pid: process.pid }
    const merged = await this.#ctx.exclusive(async () => {
      await this.info()
      if (!(await this.#all.mounts.isMounted(mountId))) return undefined
      return this.#all.mounts.acquire(this.paths, mountId, me)
    })
    if (merged === undefined) {
      const view = write ? await this.view() : await this.view({ readOnly: true })
      return { view, release: async () => undefined }
    }
    let released = false
    const release = async () => {
      if (released) return
      released = true
      await this.#ctx.exclusive(() => this.#all.mounts.release(this.paths, mountId, me))
    }
    try {
      const view = write ? await UnionView.open({ lowers: [], upper: merged }) : await UnionView.open({ lowers: [merged] })
      return { view, release }
    } catch (e) {
      await release()
      throw e
    }
  }

  /** docker export: the merged filesystem as one tar, to a file or a stream. Aborting rejects with `Aborted` at once. */
  export(output: string | Writable, opts: { signal?: AbortSignal } = {}): Promise<void> {
    return Operation.run(this.#ctx, opts.signal, (op) => this.#export(op, output))
  }

  async #export(op: Operation, output: string | Writable): Promise<void> {
    const ctx = this.#ctx
    const mountId = await this.#mountId()
    const me = { kind: 'process' as const, pid: process.pid }
    const merged = await op.locked('exclusive', async () => {
      await this.info()
      return this.#all.mounts.acquire(this.paths, mountId, me)
    })
    const staging = await ctx.staging('export', op)
    try {
      const file = path.join(staging.dir, 'export.tar')
      await call(() => native.writeDirTar(merged, 'plain', file, op.cancel))
      op.check()
      if (typeof output === 'string') {
        await fs.rename(file, output).catch(async (e: NodeJS.ErrnoException) => {
          if (e.code !== 'EXDEV') throw e
          await fs.copyFile(file, output)
        })
      } else {
        await copyToStream(op, file, output, 'export destination')
      }
    } finally {
      await staging.dispose()
      await ctx.exclusive(() => this.#all.mounts.release(this.paths, mountId, me))
    }
  }

  /** The json-file log, in order. */
  async logs(): Promise<LogEntry[]> {
    const text = (await readFileIfExists(this.paths.log)) ?? ''
    const out: LogEntry[] = []
    for (const line of text.split('\n')) {
      if (!line) continue
      try {
        out.push(JSON.parse(line) as LogEntry)
      } catch { /* a torn last line after a crash */ }
    }
    return out
  }

  /** Removes the container (see Containers.remove). */
  remove(opts: { force?: boolean } = {}): Promise<void> {
    return this.#all.remove(this.id, opts)
  }

  /** Docker's container inspect JSON. */
  inspect(): Promise<Record<string, unknown>> {
    return this.#ctx.shared(() => this.#inspect())
  }

  async #inspect(): Promise<Record<string, unknown>> {
    const r = await this.info()
    const hc = await readHostConfig(this.paths)
    const l = await this.#layers()
    const st = r.State
    return {
      Id: r.ID,
      Created: r.Created,
      Path: r.Path,
      Args: r.Args,
      State: {
        Status: st.Status, Running: st.Running, Paused: st.Paused, Restarting: st.Restarting, OOMKilled: st.OOMKilled,
        Dead: st.Dead, Pid: st.Pid, ExitCode: st.ExitCode, Error: st.Error, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
      },
      Image: r.Image,
      ResolvConfPath: r.ResolvConfPath,
      HostnamePath: r.HostnamePath,
      HostsPath: r.HostsPath,
      LogPath: r.LogPath,
      Name: r.Name,
      RestartCount: r.RestartCount,
      Driver: 'overlay2',
      Platform: 'linux',
      MountLabel: '',
      ProcessLabel: '',
      AppArmorProfile: '',
      ExecIDs: null,
      HostConfig: {
        Binds: null, ContainerIDFile: '', LogConfig: hc.LogConfig, NetworkMode: hc.NetworkMode, PortBindings: {},
        RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, AutoRemove: hc.AutoRemove, VolumeDriver: '', VolumesFrom: null,
        CapAdd: null, CapDrop: null, CgroupnsMode: 'host', Dns: [], DnsOptions: [], DnsSearch: [], ExtraHosts: null,
        GroupAdd: null, IpcMode: 'private', Cgroup: '', Links: null, OomScoreAdj: 0, PidMode: '', Privileged: false,
        PublishAllPorts: false, ReadonlyRootfs: false, SecurityOpt: null, UTSMode: '', UsernsMode: '', ShmSize: 67108864,
        Runtime: hc.Runtime, Isolation: '', CgroupParent: '/strata',
        MaskedPaths: MASKED_PATHS, ReadonlyPaths: READONLY_PATHS,
      },
      GraphDriver: {
        Data: { LowerDir: l.lowerDirs.join(':'), MergedDir: l.mergedDir, UpperDir: l.upperDir, WorkDir: l.workDir },
        Name: 'overlay2',
      },
      Mounts: [],
      Config: dockerConfig(r.Config),
      NetworkSettings: {
        Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, HairpinMode: false, LinkLocalIPv6Address: '',
        LinkLocalIPv6PrefixLen: 0, SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '',
        GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '',
        Networks: { [hc.NetworkMode]: { IPAMConfig: null, Links: null, Aliases: null, MacAddress: '', DriverOpts: null, NetworkID: '', EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null } },
      },
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * Leaves out the init files (Docker bind-mounts over them) and the directories that only hold
 * them: a container without an init layer (an image as deep as the kernel allows) has runc make
 * `/proc`, `/etc/hosts`, ... in its writable layer when the image lacks them.
 */
export function withoutInitPaths<T extends { kind: string; path: string }>(changes: T[]): T[] {
  const kept = changes.filter((c) => !INIT_PATHS.has(c.path))
  return kept.filter((c) => {
    if (c.kind === 'D') return true
    const prefix = `${c.path}/`
    const initBelow = [...INIT_PATHS].some((p) => p.startsWith(prefix))
    return !initBelow || kept.some((o) => o.path.startsWith(prefix))
  })
}

const signal = v.optional(v.signal)

expose(Container, {
  info: [],
  name: [],
  layers: [],
  mount: [],
  unmount: [],
  view: [['opts', v.optional(v.options({ readOnly: v.optional(v.boolean) }))]],
  isMounted: [],
  run: [['opts', v.optional(v.options({ stdin: v.optional(v.readable), stdout: v.optional(v.writable), stderr: v.optional(v.writable), console: v.optional(v.consoleSize), detachKeys: v.optional(v.nonEmptyString), signal }))]],
  exec: [['cmd', v.arrayOf(v.string)], ['opts', v.optional(v.options({
    user: v.optional(v.string), workdir: v.optional(v.string), env: v.optional(v.arrayOf(v.string)), tty: v.optional(v.boolean),
    console: v.optional(v.consoleSize), stdin: v.optional(v.readable), stdout: v.optional(v.writable), stderr: v.optional(v.writable),
    detach: v.optional(v.boolean), detachKeys: v.optional(v.nonEmptyString),
  }))]],
  pause: [],
  unpause: [],
  top: [['psArgs', v.optional(v.arrayOf(v.string))]],
  copyFrom: [['srcPath', v.nonEmptyString], ['dest', v.either(v.nonEmptyString, v.writable)], ['opts', v.optional(v.options({ followLink: v.optional(v.boolean), onProgress: v.optional(v.func) }))]],
  copyTo: [['src', v.either(v.nonEmptyString, v.readable)], ['dstPath', v.nonEmptyString], ['opts', v.optional(v.options({ followLink: v.optional(v.boolean), copyUIDGID: v.optional(v.boolean), onProgress: v.optional(v.func) }))]],
  statPath: [['path', v.nonEmptyString]],
  start: [],
  wait: [['opts', v.optional(v.options({ timeoutMs: v.optional(v.nonNegative), signal }))]],
  kill: [['signal', v.optional(v.either(v.nonEmptyString, v.count))]],
  stop: [['opts', v.optional(v.options({ timeout: v.optional(v.nonNegative), signal: v.optional(v.nonEmptyString) }))]],
  diff: [],
  commit: [['opts', v.optional(v.options({
    ref: v.optional(v.string), message: v.optional(v.string), author: v.optional(v.string),
    changes: v.optional(v.arrayOf(v.string)), pause: v.optional(v.boolean), signal,
  }))]],
  export: [['output', v.either(v.nonEmptyString, v.writable)], ['opts', v.optional(v.options({ signal }))]],
  logs: [],
  remove: [['opts', v.optional(v.options({ force: v.optional(v.boolean) }))]],
  inspect: [],
}, {}, (c) => c.thawIfOrphaned())
