/**
 * `store.build()`: a Dockerfile and a context to an image, the way BuildKit's Dockerfile
 * frontend builds it, with strata's content-addressed cache.
 *
 * 1. The Dockerfile is parsed (./dockerfile.ts, ./instructions.ts); global ARGs and
 *    `--build-arg`s resolve the stages' base names; the target (`--target`, else the last
 *    stage) and the stages it needs (its base chain and `COPY --from` sources) are built —
 *    nothing else. Stages that do not depend on each other run concurrently.
 * 2. Each stage starts from its base (an image of the store, `scratch`, or an earlier stage's
 *    result), runs the base image's ONBUILD triggers, then its instructions in order.
 *    Metadata instructions change the image config and history only (no container, no
 *    layer). Filesystem steps (RUN, COPY, ADD, WORKDIR) have a cache key (./cache.ts): a
 *    record hit reuses its layer; a miss runs the step on an overlay mount of the parent
 *    layers (./step.ts) and the upper dir becomes the new layer (commit by rename), recorded
 *    under the key at once — so a build killed half-way keeps every step recorded by then.
 *    A step's seal (the DiffID, which the next step's key needs) overlaps the next step's
 *    start, and the registration of its layer and record the next step's work (#step, #make).
 *    After a miss, later steps keep probing: a step that reproduces a layer hits again.
 * 3. The target stage's config (./image-config.ts) is written with BuildKit's history and
 *    created times; the tags move last, only when everything else succeeded.
 */
import { statSync, mkdirSync, openSync, closeSync, constants as fsConstants } from 'node:fs'
import { fsp as fs } from '../internal/lazy'
import * as path from 'node:path'
import { sha256 } from '../internal/sha256'
import { now } from '../internal/clock'
import { StoreContext, Staging, throwIfAborted } from '../internal/context'
import { native } from '../internal/native'
import { call, StrataError } from '../errors'
import { resolveImage, stageTags, refKey } from '../internal/tags'
import { writeAll, type MetaWrites } from '../internal/metawrites'
import { parseReference, parseNormalizedNamed, withDefaultTag } from '../reference'
import { chainIdsOf, type ChainId, type DiffId } from '../internal/chain'
import { goArch } from '../internal/platform'
import { readIfExists } from '../internal/fsx'
import { imageIdOf } from '../internal/imagedb'
import { parseDockerfileMemo } from './parse-memo'
import { toInstructions, parseTrigger, Command, Stage, ArgCommand, CopyCommand, RunCommand } from './instructions'
import { processWord, processWords, envMap, ShellSyntaxError } from './shell'
import { readIgnoreFile, BadPatternError } from './dockerignore'
import { BuildContext, ContextTooLarge, ContextLimits } from './context'
import { BuildError } from './errors'
import { stepKey, CacheRecord } from './cache'
import { StepSpace, type Sealed } from './step'
import { prepareRun, type PreparedRun } from './run'
import {
  BkImage, BkHistory, emptyImage, fromBaseConfig, cloneImage, normalizeHistory, imageConfigBytes, nowRfc3339Nano,
  HISTORY_COMMENT, DEFAULT_PATH_ENV, goQuoteSlice, goSlice, goDuration, goQuoteRune,
} from './image-config'
import {
  planSources, describeSource, copySteps, runCopy, resolveChown, destinationPath, heredocTree, dirTree,
  SourceTree, PlannedSource, CopyStep,
} from './copy'
import { copyLineage, readLastCopy, writeLastCopy, lastCopyOf, splitReuse, LastCopy } from './reuse'
import { Progress, BuildEvent } from './progress'
import { CacheSpec, CacheMode, importCache, exportCache } from './cache-io'
import { cacheRef, exportRegistryCache, importRegistryCache } from './cache-registry'
import { DockerConfig, keyForRegistry } from '../registry/credentials'
import { registryAuth } from '../registry/push-image'
import { pull } from '../registry/pull'
import { cachedFromKey, computeFromKey } from './fromkey'

export type { BuildEvent } from './progress'

export interface BuildOptions {
  /** The context directory. */
  context: string
  /** The Dockerfile: a path (relative to the context, default `Dockerfile`)... */
  dockerfile?: string
  /** ...or its text (`-f -`). */
  dockerfileText?: string
  /** `-t`: references to point at the image. */
  tags?: string[]
  /** `--build-arg K=V`. */
  buildArgs?: Record<string, string>
  /** `--target`: the stage to build (default the last). */
  target?: string
  /** `--no-cache`: no cache hits (results are still recorded). */
  noCache?: boolean
  /** `--no-cache-filter`: stages whose steps never hit the cache. */
  noCacheFilter?: string[]
  /** `--network`: RUN steps on the host's network (default) or none. */
  network?: 'host' | 'none'
  /** `--label K=V` on the image. */
  labels?: Record<string, string>
  /** `--cache-from`: layouts or registry refs whose records (and layers) are imported before the build. */
  cacheFrom?: CacheSpec[]
  /** `--cache-to`: layouts or registry refs the build's records (and layers) are exported to after it. */
  cacheTo?: CacheSpec[]
  /** Limits on the context's size (`ContextTooLarge` past them). */
  contextLimits?: ContextLimits
  onProgress?: (e: BuildEvent) => void
  signal?: AbortSignal
}

export interface StepReport {
  name: string
  /** The step's cache key. */
  key: string
  cached: boolean
  /** The layer made (or reused); undefined for metadata and empty steps. */
  diffId?: string
}

export interface BuildResult {
  imageId: string
  /** Filesystem steps in the order they finished. */
  steps: StepReport[]
  /** Bytes of context files read to hash them (0 when the stat index had them all). */
  contextBytesRead: number
}

const PLATFORM_OS = 'linux'

/** What a stage has built so far (BuildKit's dispatchState). */
interface StageState {
  image: BkImage
  /** The environment steps see and variables expand from: image Env, then ENV and ARG values. */
  env: string[]
  workdir: string
  user: string
  buildArgs: { key: string; value?: string }[]
  cmdSet: boolean
  /** The last step's seal while it is under way: its DiffID (and so the next step's key) comes with it. */
  sealing?: Promise<void>
  /** The stage's steps whose layer or cache record is still being written (#make). */
  unsettled?: Unsettled
  /** The descriptors behind `unsettled.tops` (and earlier ones), closed when the stage settles. */
  fds?: number[]
  /** The build's target stage (its image is exported: #exportAlong). */
  target?: boolean
  /** Every instruction of the stage is dispatched (only its last steps' writes may be under way). */
  dispatched?: boolean
  /** How many filesystem steps of this stage have begun (#step: hits and misses). */
  steps?: number
}

/**
 * What a stage's last filesystem steps still write after they were sealed: the next step runs
 * meanwhile (its mount, copy or container), so the fsync barriers of registering a layer and
 * its record are off the build's critical path. The next step's cache key needs only the DiffID.
 */
interface Unsettled {
  /**
   * The layers made since the stage's last hit, top first, as the next step mounts them:
   * `/proc/self/fd/<n>`, a descriptor of each one's diff dir (opened when its seal began), so a
   * registration that renames the dir from the staging dir into `overlay2/` meanwhile neither
   * waits for a mount nor moves one (the kernel resolves the path to the dir when mounting).
   */
  tops: string[]
  /** The layers below `tops`: in the store. */
  baseIds: DiffId[]
  /** Every layer of the stage's rootfs is in the store. */
  layers: Promise<void>
  /** Every layer and cache record of the stage's steps so far is in the store. */
  done: Promise<void>
}

const SETTLED: Promise<void> = Promise.resolve()

/** A step space made before the step's probe, maybe with its work done there (Builder.#prepare). */
interface Prepared {
  space: Promise<StepSpace>
  /** The step's own (work, seal), set when the build is aborted too. */
  cancel: InstanceType<typeof native.NativeCancel>
  mounted: Promise<void>
  /** The work (and the unmount after it), when it ran speculatively. */
  worked?: Promise<void>
  /** The seal of the work's upper dir, when the work ran speculatively (#prepare). */
  sealed?: Promise<Sealed>
  /** The step's `prepare`, when it ran. */
  readied?: Promise<unknown>
  /** Stops following the build's abort. */
  unlink(): void
}

/** A filesystem step as the instruction hands it to Builder.#step. */
interface StepOpts {
  name: string
  /** What the step's cache key holds besides its parent. */
  keyed: unknown
  /** The history line. */
  createdBy: string
  line: number
  /** `vertex` is undefined where the work runs before the step is shown (`speculate`). */
  work: (space: StepSpace, vertex: number | undefined, cancel: InstanceType<typeof native.NativeCancel>) => Promise<void>
  /** `work` has no effect outside its step space, and may run before the probe. */
  speculate?: boolean
  /** What may run before the probe where `work` may not (it has no effect outside the step space). */
  prepare?: (space: StepSpace) => Promise<unknown>
  /** After `work` made (and recorded) a layer. */
  made?: (rec: CacheRecord) => void
}

/** Whether an instruction copies from the build context (a COPY or ADD without `--from` or heredocs). */
function readsContext(c: Command): boolean {
  if ((c.kind !== 'copy' && c.kind !== 'add') || c.from !== '') return false
  const sources = c.sourcesAndDest.slice(0, -1)
  // As #copy tells them: one heredoc among the sources makes them all heredocs.
  return sources.length > 0 && !sources.some((w) => w.startsWith('<<'))
}

/** A promise that some awaiter will see rejected, not reported as unhandled meanwhile. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined)
  return p
}

interface StageNode {
  stage: Stage
  /** Progress prefix name (`builder`, `stage-1`, or '' for a single stage). */
  displayName: string
  baseStage?: StageNode
  fromStages: Set<StageNode>
  ignoreCache: boolean
  cmdTotal: number
  cmdIndex: number
  result?: Promise<StageState>
  /** Resolved base image reference (`docker.io/library/busybox:latest`) or 'scratch'. */
  baseRef?: string
}

function sha(s: string): string {
  return sha256(s)
}

function addEnv(env: string[], k: string, v: string): string[] {
  const out = [...env]
  const i = out.findIndex((e) => e.split('=')[0] === k)
  if (i >= 0) out[i] = `${k}=${v}`
  else out.push(`${k}=${v}`)
  return out
}

/** Docker's signal names and numbers (STOPSIGNAL is checked as Docker's signal.ParseSignal does). */
const SIGNALS = new Set(['ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR', 'QUIT',
  'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ'])

function checkSignal(s: string): void {
  const n = s.toUpperCase().replace(/^SIG/, '')
  if (/^\d+$/.test(s) && Number(s) > 0 && Number(s) <= 64) return
  if (SIGNALS.has(n) || /^RTMIN(\+\d+)?$/.test(n) || /^RTMAX(-\d+)?$/.test(n)) return
  throw new Error(`Invalid signal: ${s}`)
}

/** nat.ParsePortSpecs: `80`, `80/udp`, `8000-8002/tcp` → `80/tcp`, ... */
function parsePorts(ports: string[]): string[] {
  const out = new Set<string>()
  for (const p of ports) {
    const m = /^(?:(?:[^:]*):)?(?:(\d*):)?(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p)
    if (!m) throw new Error(`invalid containerPort: ${p}`)
    const proto = (m[4] ?? 'tcp').toLowerCase()
    const a = Number(m[2])
    const b = m[3] ? Number(m[3]) : a
    if (b < a || b > 65535) throw new Error(`invalid containerPort: ${p}`)
    for (let i = a; i <= b; i++) out.add(`${i}/${proto}`)
  }
  return [...out]
}

/** `[stage 2/5] ` as BuildKit prefixes step names. */
function prefixed(node: StageNode, text: string): string {
  if (node.cmdTotal === 0) return text
  node.cmdIndex++
  const width = 1 + Math.floor(Math.log10(node.cmdTotal))
  return `[${node.displayName ? `${node.displayName} ` : ''}${String(node.cmdIndex).padStart(width)}/${node.cmdTotal}] ${text}`
}

function uppercaseCmd(s: string): string {
  const i = s.indexOf(' ')
  return i < 0 ? s.toUpperCase() : `${s.slice(0, i).toUpperCase()}${s.slice(i)}`
}

export class Builder {
  readonly #ctx: StoreContext
  readonly #opts: BuildOptions
  readonly #progress: Progress
  readonly #platform = `${PLATFORM_OS}/${goArch()}`
  #staging?: Promise<Staging>
  #context?: BuildContext
  #contextLoaded?: Promise<BuildContext>
  /** The context's scan and hashing, once started (#contextScan). */
  #scanning?: Promise<BuildContext>
  /** The target stage's image config, once computed (#imageConfig). */
  #config?: { raw: Buffer; imageId: string }
  /** The image ID whose config and tags went into its last step's record's write set (#exportAlong). */
  #exportedAlong?: string
  /** The context's stat index written (#saveIndexSoon), once the context is hashed. */
  #indexSaved?: Promise<void>
  #ignore: string[] = []
  #escape = '\\'
  #steps: StepReport[] = []
  /** The stage of each entry of #steps (what a `--cache-to` of mode=min selects by). */
  #stepStages: StageNode[] = []
  #stepCounter = 0
  /** #lowers, by the ChainID of the top layer. */
  #lowersOf = new Map<ChainId, Promise<string[]>>()
  #metaArgs = new Map<string, string | undefined>()
  #nodes: StageNode[] = []
  /** The stage whose image the build exports. */
  #target?: StageNode
  #abort = new AbortController()
  /** One native cancellation flag for the whole build, set when it is aborted. */
  readonly #cancel = new native.NativeCancel()
  /** Base images already shown as a FROM step. */
  readonly #fromShown = new Set<string>()
  /** Docker's credentials store: registries are reached as `docker pull` / `push` reach them. */
  readonly #credentials: DockerConfig

  constructor(ctx: StoreContext, opts: BuildOptions, credentials: DockerConfig) {
    this.#ctx = ctx
    this.#opts = opts
    this.#credentials = credentials
    this.#progress = new Progress(opts.onProgress)
  }

  get #signal(): AbortSignal {
    return this.#abort.signal
  }

  async run(): Promise<BuildResult> {
    throwIfAborted(this.#opts.signal)
    const onAbort = (): void => this.#abort.abort()
    this.#opts.signal?.addEventListener('abort', onAbort, { once: true })
    this.#abort.signal.addEventListener('abort', () => this.#cancel.cancel(), { once: true })
    try {
      return await this.#run()
    } catch (e) {
      // Every stage this build started has settled by now (#buildStage rejects only once its
      // own steps and its COPY --from stages have unwound), so the staging dir can go.
      this.#abort.abort()
      await this.#indexSaved
      if (e instanceof ShellSyntaxError) throw new BuildError('DockerfileParse', e.message)
      if (this.#opts.signal?.aborted && !(e instanceof StrataError && e.code === 'BuildFailed')) throw new StrataError('Aborted', 'build aborted', { cause: e })
      throw e
    } finally {
      this.#opts.signal?.removeEventListener('abort', onAbort)
      // A context scan no step asked for (the build failed first) ends before the build does:
      // it is aborted by now, and its hashing writes a stamp file (./statindex.ts).
      await this.#scanning?.catch(() => undefined)
      await this.#indexSaved
      await this.#disposeStaging()
    }
  }

  async #run(): Promise<BuildResult> {
    const { opts } = { opts: this.#opts }
    const contextDir = path.resolve(opts.context)
    // On the calling thread, as the store's metadata reads (../internal/fsx.ts): one stat.
    const st = (() => { try { return statSync(contextDir, { throwIfNoEntry: false }) } catch { return undefined } })()
    if (!st?.isDirectory()) throw new BuildError('InvalidArgument', `unable to prepare context: path "${opts.context}" not found`)
    for (const t of opts.tags ?? []) {
      const ref = parseReference(t)
      if (ref.digest !== undefined) throw new BuildError('InvalidReference', `invalid reference format: ${t} (a tag cannot hold a digest)`)
    }
    if (opts.network && opts.network !== 'host' && opts.network !== 'none') throw new BuildError('InvalidArgument', `network mode ${opts.network} not supported (host or none)`)
    // Cache refs are checked before anything runs.
    for (const spec of opts.cacheFrom ?? []) if (spec.type === 'registry') cacheRef(spec.ref, 'from')
    for (const spec of opts.cacheTo ?? []) if (spec.type === 'registry') cacheRef(spec.ref, 'to')

    // The Dockerfile and .dockerignore.
    const dfId = this.#progress.start('[internal] load build definition from Dockerfile', sha('dockerfile'))
    let text: string
    if (opts.dockerfileText !== undefined) {
      text = opts.dockerfileText
    } else {
      const dfPath = path.resolve(contextDir, opts.dockerfile ?? 'Dockerfile')
      const t = await readIfExists(dfPath)
      if (t === undefined) throw new BuildError('InvalidArgument', `failed to read dockerfile: open ${dfPath}: no such file or directory`)
      text = t
      const own = await readIfExists(`${dfPath}.dockerignore`)
      if (own !== undefined) this.#ignore = readIgnoreFile(own)
    }
    this.#progress.emit({ type: 'status', id: dfId, text: `transferring dockerfile: ${Buffer.byteLength(text)}B done` })
    this.#progress.emit({ type: 'done', id: dfId, at: now() })
    const igId = this.#progress.start('[internal] load .dockerignore', sha('dockerignore'))
    if (this.#ignore.length === 0) {
      const di = await readIfExists(path.join(contextDir, '.dockerignore'))
      if (di !== undefined) this.#ignore = readIgnoreFile(di)
      this.#progress.emit({ type: 'status', id: igId, text: `transferring context: ${Buffer.byteLength(di ?? '')}B done` })
    }
    this.#progress.emit({ type: 'done', id: igId, at: now() })

    const parsed = parseDockerfileMemo(text, this.#ctx.layout.parsedDockerfiles)
    const ins = toInstructions(parsed)
    this.#escape = ins.escape
    if (ins.stages.length === 0) throw new BuildError('DockerfileParse', 'dockerfile parse error: no FROM instruction')
    this.#resolveMetaArgs(ins.metaArgs)
    const target = this.#plan(ins.stages)
    this.#target = target
    this.#progress.check()
    // The context is scanned and hashed from now on, beside the base images' lookup and the
    // steps before the first COPY that reads it (#contextTree), when one of the stages built does.
    if (this.#reachable(target).some((n) => n.stage.commands.some(readsContext))) void this.#contextScan()

    // Base images resolve up front (missing ones are pulled, or fail before any step runs); a
    // cache is imported on top of them (its records name the base layers as parents).
    await this.#loadMetadata(target)
    for (const spec of opts.cacheFrom ?? []) {
      const where = spec.type === 'local' ? spec.dir : cacheRef(spec.ref, 'from').string()
      const id = this.#progress.start(`importing cache manifest from ${where}`, sha(`cache-from ${where}`))
      if (spec.type === 'local') await importCache(this.#ctx, spec)
      else {
        try {
          await importRegistryCache(this.#ctx, this.#credentials, cacheRef(spec.ref, 'from'), this.#signal)
        } catch (e) {
          // No cache there yet (a first build) is no error, as in BuildKit: the build goes on without.
          if (!(e instanceof StrataError && e.code === 'NotFound')) throw e
          this.#progress.emit({ type: 'status', id, text: `${e.message}; building without it` })
        }
      }
      this.#progress.emit({ type: 'done', id, at: now() })
    }
    const result = await this.#runStage(target)
    this.#progress.check()
    await this.#indexSaved
    // Every step is recorded: what is left of them goes now, while the image is written.
    await this.#disposeStaging()
    const done = await this.#export(result)
    for (const spec of opts.cacheTo ?? []) {
      const where = spec.type === 'local' ? spec.dir : cacheRef(spec.ref, 'to').string()
      const id = this.#progress.start(spec.type === 'local' ? 'exporting cache' : `exporting cache to ${where}`, sha(`cache-to ${where}`))
      const keys = this.#exportedKeys(target, spec.mode ?? 'min')
      if (spec.type === 'local') await exportCache(this.#ctx, keys, spec)
      else await exportRegistryCache(this.#ctx, this.#credentials, keys, cacheRef(spec.ref, 'to'), this.#signal)
      this.#progress.emit({ type: 'done', id, at: now() })
    }
    return done
  }

  /**
   * The step keys a `--cache-to` exports: with mode=max every step's; with mode=min (BuildKit's
   * default) those whose layers the image has — the target stage's and its `FROM <stage>`
   * chain's —, not those of stages only `COPY --from` reads.
   */
  #exportedKeys(target: StageNode, mode: CacheMode): string[] {
    if (mode === 'max') return this.#steps.map((s) => s.key)
    const inImage = new Set<StageNode>()
    for (let n: StageNode | undefined = target; n; n = n.baseStage) inImage.add(n)
    return this.#steps.filter((_, i) => inImage.has(this.#stepStages[i])).map((s) => s.key)
  }

  /** The steps' leftovers (work dirs, bundles, an unpacked archive) go, in the background. */
  async #disposeStaging(): Promise<void> {
    const staging = this.#staging
    this.#staging = undefined
    await (await staging?.catch(() => undefined))?.disposeLater().catch(() => undefined)
  }

  /** The build's staging dir, made when a step first needs one (a fully cached build never does). */
  #stagingDir(): Promise<string> {
    this.#staging ??= this.#ctx.staging('build')
    return this.#staging.then((s) => s.dir)
  }

  // ---- planning ------------------------------------------------------------------------

  #platformArgs(): Map<string, string> {
    const arch = goArch()
    const m = new Map<string, string>()
    for (const p of ['TARGET', 'BUILD']) {
      m.set(`${p}PLATFORM`, `${PLATFORM_OS}/${arch}`)
      m.set(`${p}OS`, PLATFORM_OS)
      m.set(`${p}ARCH`, arch)
      m.set(`${p}VARIANT`, '')
    }
    return m
  }

  #resolveMetaArgs(meta: ArgCommand[]): void {
    const buildArgs = this.#opts.buildArgs ?? {}
    for (const [k, v] of this.#platformArgs()) this.#metaArgs.set(k, k in buildArgs ? buildArgs[k] : v)
    for (const cmd of meta) {
      for (const a of cmd.args) {
        let value = a.value
        if (value !== undefined) value = this.#expandMap(value, this.#metaMap(), cmd.line)
        if (a.key in buildArgs) value = buildArgs[a.key]
        this.#metaArgs.set(a.key, value)
      }
    }
  }

  #metaMap(): Map<string, string> {
    const m = new Map<string, string>()
    for (const [k, v] of this.#metaArgs) m.set(k, v ?? '')
    return m
  }

  #expandMap(word: string, env: Map<string, string>, line: number): string {
    try {
      return processWord(word, env, { escape: this.#escape })
    } catch (e) {
      throw new BuildError('DockerfileParse', `dockerfile parse error line ${line}: ${(e as Error).message}`, { line })
    }
  }

  #plan(stages: Stage[]): StageNode {
    const byName = new Map<string, StageNode>()
    const single = stages.length === 1
    for (const [i, stage] of stages.entries()) {
      const base = this.#expandMap(stage.baseName, this.#metaMap(), stage.line)
      if (base === '') throw new BuildError('DockerfileParse', `dockerfile parse error line ${stage.line}: base name (${stage.baseName}) should not be blank`, { line: stage.line })
      if (stage.platform) {
        const p = this.#expandMap(stage.platform, this.#metaMap(), stage.line)
        if (p !== this.#platform && p !== PLATFORM_OS) {
          throw new BuildError('InvalidArgument', `FROM --platform=${p}: strata builds for ${this.#platform} only`, { line: stage.line })
        }
      }
      const node: StageNode = {
        stage: { ...stage, baseName: base }, displayName: single ? '' : stage.name || `stage-${i}`, fromStages: new Set(),
        ignoreCache: Boolean(this.#opts.noCache) || (this.#opts.noCacheFilter ?? []).some((f) => f.toLowerCase() === stage.name && stage.name !== ''),
        cmdTotal: 0, cmdIndex: 0,
      }
      const baseStage = byName.get(base.toLowerCase())
      if (baseStage) node.baseStage = baseStage
      if (!baseStage && base !== 'scratch') node.cmdTotal = 1
      for (const c of stage.commands) {
        if (c.kind === 'add' || c.kind === 'copy' || c.kind === 'run' || c.kind === 'workdir') node.cmdTotal++
      }
      this.#nodes.push(node)
      if (stage.name) byName.set(stage.name, node)
    }
    // COPY --from sources: a stage name, a stage index, or an image.
    for (const node of this.#nodes) {
      for (const c of node.stage.commands) {
        if (c.kind !== 'copy' || c.from === '') continue
        const from = this.#expandMap(c.from, this.#metaMap(), c.line)
        const src = /^\d+$/.test(from) ? this.#nodes[Number(from)] : byName.get(from.toLowerCase())
        if (/^\d+$/.test(from) && !src) throw new BuildError('StageNotFound', `dockerfile parse error line ${c.line}: invalid stage index ${from}`, { line: c.line })
        if (src) node.fromStages.add(src)
      }
    }
    let target: StageNode | undefined
    if (this.#opts.target) {
      target = byName.get(this.#opts.target.toLowerCase())
      if (!target) throw new BuildError('StageNotFound', `target stage ${this.#opts.target} could not be found`)
    } else target = this.#nodes[this.#nodes.length - 1]
    // Circular COPY --from dependencies.
    const visiting = new Set<StageNode>()
    const done = new Set<StageNode>()
    const visit = (n: StageNode): void => {
      if (done.has(n)) return
      if (visiting.has(n)) throw new BuildError('DockerfileParse', `circular dependency detected on stage: ${n.displayName || n.stage.name}`, { line: n.stage.line })
      visiting.add(n)
      if (n.baseStage) visit(n.baseStage)
      for (const f of n.fromStages) visit(f)
      visiting.delete(n)
      done.add(n)
    }
    visit(target)
    return target
  }

  /** The stages the target needs. */
  #reachable(target: StageNode): StageNode[] {
    const out = new Set<StageNode>()
    const walk = (n: StageNode): void => {
      if (out.has(n)) return
      out.add(n)
      if (n.baseStage) walk(n.baseStage)
      for (const f of n.fromStages) walk(f)
    }
    walk(target)
    return this.#nodes.filter((n) => out.has(n))
  }

  async #loadMetadata(target: StageNode): Promise<void> {
    const seen = new Map<string, number>()
    for (const node of this.#reachable(target)) {
      if (node.baseStage || node.stage.baseName === 'scratch') continue
      let full: string
      try {
        full = withDefaultTag(parseNormalizedNamed(node.stage.baseName)).string()
      } catch (e) {
        throw new BuildError('InvalidReference', `dockerfile parse error line ${node.stage.line}: failed to parse stage name "${node.stage.baseName}": ${(e as Error).message}`, { line: node.stage.line })
      }
      node.baseRef = full
      if (seen.has(full)) continue
      const id = this.#progress.start(`[internal] load metadata for ${full}`, sha(`metadata ${full}`))
      seen.set(full, id)
      try {
        await this.#resolveOrPull(node.stage.baseName, full, id)
      } catch (e) {
        const msg = `failed to resolve source metadata for ${full}: ${(e as Error).message}`
        this.#progress.emit({ type: 'error', id, message: msg, at: now() })
        // The store's or the registry's own code (ImageNotFound, RegistryUnreachable, ...).
        throw new BuildError(e instanceof StrataError ? e.code : 'InvalidReference', msg, { line: node.stage.line, cause: e })
      }
      this.#progress.emit({ type: 'done', id, at: now() })
    }
  }

  /**
   * A base image from the store, else pulled from its registry as `docker build` does (BuildKit
   * in Docker's engine prefers a local image and pulls only what is missing).
   */
  async #resolveOrPull(name: string, full: string, vertex: number): Promise<void> {
    try {
      await resolveImage(this.#ctx, name)
      return
    } catch (e) {
      if (!(e instanceof StrataError && e.code === 'ImageNotFound')) throw e
    }
    const domain = parseNormalizedNamed(name).domain
    const stored = await this.#credentials.get(keyForRegistry(domain))
    this.#progress.emit({ type: 'status', id: vertex, text: `pulling ${full}` })
    try {
      await pull(this.#ctx, full, { ...(stored ? { auth: registryAuth(stored) } : {}), signal: this.#signal })
    } catch (e) {
      // A name the registry does not have is a missing base image, as Docker reports it.
      if (e instanceof StrataError && (e.code === 'NotFound' || e.code === 'Unauthorized')) throw new StrataError('ImageNotFound', `${full}: not found: ${e.message}`, { cause: e })
      throw e
    }
    await resolveImage(this.#ctx, name)
  }

  // ---- stages --------------------------------------------------------------------------

  #runStage(node: StageNode): Promise<StageState> {
    node.result ??= this.#buildStage(node)
    // Surface a failure once; other awaiters see it through their own await.
    node.result.catch(() => undefined)
    return node.result
  }

  async #buildStage(node: StageNode): Promise<StageState> {
    // The stages this one copies from (COPY --from) run concurrently with it, as in BuildKit:
    // each COPY --from waits for its own source stage, the steps before it do not. The first
    // failure of any of them aborts the others (a RUN is killed, a copy cancelled) and is the
    // build's error, once they have all stopped: none is left working (mounted, a RUN running)
    // in the staging dir that the build's end removes. This is the one guard for that: every
    // stage a build starts is one of these parts, or the base of one (awaited before its
    // steps), or the source of an ONBUILD trigger's COPY --from (awaited inside the step).
    const parts = [this.#stageSteps(node), ...[...node.fromStages].map((d) => this.#runStage(d))]
    let failure: { error: unknown } | undefined
    for (const p of parts) {
      p.catch((error: unknown) => {
        failure ??= { error }
        this.#abort.abort()
      })
    }
    const [own] = await Promise.allSettled(parts)
    if (failure) throw failure.error
    return (own as PromiseFulfilledResult<StageState>).value
  }

  /** A stage's own steps, from its base. */
  async #stageSteps(node: StageNode): Promise<StageState> {
    const s = await this.#baseState(node)
    let ok = false
    try {
      if (s.image.config.OnBuild && s.image.config.OnBuild.length > 0) {
        const triggers = s.image.config.OnBuild
        s.image.config.OnBuild = undefined
        for (const t of triggers) await this.#dispatch(node, s, parseTrigger(t, this.#escape, node.stage.line))
      }
      s.image.config.OnBuild = undefined
      for (const c of node.stage.commands) {
        throwIfAborted(this.#signal)
        await this.#dispatch(node, s, c)
        this.#progress.check()
      }
      s.dispatched = true
      ok = true
    } finally {
      // The stage's result (and its failure) is whole only once every step it made is sealed and
      // written: nothing is left working in the staging dir that the build's end removes.
      const settled = this.#settle(s)
      if (ok) await settled
      else await settled.catch(() => undefined)
    }
    return s
  }

  /** Waits for the stage's last seal and for every layer and record of its steps to be written. */
  async #settle(s: StageState): Promise<void> {
    const sealing = s.sealing
    const sealFailure = await sealing?.then(() => undefined, (error: unknown) => ({ error }))
    const u = s.unsettled
    s.unsettled = undefined
    try {
      await u?.done.catch((error: unknown) => { throw sealFailure ? sealFailure.error : error })
    } finally {
      for (const fd of s.fds?.splice(0) ?? []) closeSync(fd)
    }
    if (sealFailure) throw sealFailure.error
  }

  async #baseState(node: StageNode): Promise<StageState> {
    let image: BkImage
    if (node.baseStage) {
      const b = await this.#runStage(node.baseStage)
      image = cloneImage(b.image)
    } else if (node.stage.baseName === 'scratch') {
      image = emptyImage(PLATFORM_OS, goArch())
    } else {
      const { id } = await resolveImage(this.#ctx, node.stage.baseName)
      const img = await this.#ctx.images.get(id)
      if (!img) throw new BuildError('ImageNotFound', `No such image: ${node.stage.baseName}`, { line: node.stage.line })
      image = fromBaseConfig(JSON.parse(img.raw.toString('utf8')) as Record<string, unknown>)
      const name = prefixed(node, `FROM ${node.baseRef}`)
      if (!this.#fromShown.has(id)) {
        this.#fromShown.add(id)
        const vid = this.#progress.start(name, sha(`from ${id}`))
        this.#progress.emit({ type: 'done', id: vid, at: now() })
      }
    }
    if (!image.config.Env?.some((e) => e.startsWith('PATH='))) image.config.Env = [...(image.config.Env ?? []), DEFAULT_PATH_ENV]
    const s: StageState = { image, env: [...(image.config.Env ?? [])], workdir: image.config.WorkingDir || '/', user: image.config.User ?? '', buildArgs: [], cmdSet: false, ...(node === this.#target ? { target: true } : {}) }
    return s
  }

  #expand(s: StageState, word: string, line: number): string {
    return this.#expandMap(word, envMap(s.env), line)
  }

  #history(s: StageState, createdBy: string, layer: boolean, created?: string): BkHistory {
    const row: BkHistory = { ...(created ? { created } : {}), created_by: createdBy, comment: HISTORY_COMMENT, ...(layer ? {} : { empty_layer: true }) }
    s.image.history.push(row)
    return row
  }

  /** The step's name as progress shows it (variables substituted where they can be). */
  #vertexName(node: StageNode, s: StageState, c: Command, raw = false): string {
    let text = c.original.trim()
    try {
      text = processWord(text, envMap(s.env), { escape: this.#escape, ...(raw ? { rawQuotes: true, skipUnsetEnv: true } : {}) })
    } catch { /* as written */ }
    return prefixed(node, uppercaseCmd(text))
  }

  async #dispatch(node: StageNode, s: StageState, c: Command): Promise<void> {
    const line = c.line
    const cfg = s.image.config
    try {
      switch (c.kind) {
        case 'env': {
          const parts: string[] = []
          // Every word expands with the environment as it was before the instruction.
          const pairs = c.pairs.map(([k0, v0]) => [this.#expand(s, k0, line), this.#expand(s, v0, line)])
          for (const [k, v] of pairs) {
            parts.push(`${k}=${v}`)
            s.env = addEnv(s.env, k, v)
            cfg.Env = addEnv(cfg.Env ?? [], k, v)
          }
          this.#history(s, `ENV ${parts.join(' ')}`, false)
          return
        }
        case 'label': {
          const parts: string[] = []
          cfg.Labels ??= {}
          for (const [k0, v0] of c.pairs) {
            const k = this.#expand(s, k0, line)
            const v = this.#expand(s, v0, line)
            cfg.Labels[k] = v
            parts.push(`${k}=${v}`)
          }
          this.#history(s, `LABEL ${parts.join(' ')}`, false)
          return
        }
        case 'maintainer':
          s.image.author = c.maintainer
          this.#history(s, `MAINTAINER ${c.maintainer}`, false)
          return
        case 'onbuild':
          cfg.OnBuild = [...(cfg.OnBuild ?? []), c.expression]
          return
        case 'cmd': {
          const args = c.prependShell ? [...(cfg.Shell?.length ? cfg.Shell : ['/bin/sh', '-c']), c.cmdLine!.join(' ')] : [...c.cmdLine!]
          cfg.Cmd = args
          cfg.ArgsEscaped = true
          s.cmdSet = true
          this.#history(s, `CMD ${goQuoteSlice(args)}`, false)
          return
        }
        case 'entrypoint': {
          const args = c.cmdLine === null ? null : c.prependShell ? [...(cfg.Shell?.length ? cfg.Shell : ['/bin/sh', '-c']), c.cmdLine.join(' ')] : [...c.cmdLine]
          cfg.Entrypoint = args
          if (!s.cmdSet) cfg.Cmd = null
          this.#history(s, `ENTRYPOINT ${goQuoteSlice(args ?? [])}`, false)
          return
        }
        case 'healthcheck': {
          cfg.Healthcheck = { Test: c.test, ...(c.interval ? { Interval: c.interval } : {}), ...(c.timeout ? { Timeout: c.timeout } : {}), ...(c.startPeriod ? { StartPeriod: c.startPeriod } : {}), ...(c.retries ? { Retries: c.retries } : {}) }
          this.#history(s, `HEALTHCHECK &{${goQuoteSlice(c.test)} "${goDuration(c.interval)}" "${goDuration(c.timeout)}" "${goDuration(c.startPeriod)}" ${goQuoteRune(c.retries)}}`, false)
          return
        }
        case 'expose': {
          const ports: string[] = []
          for (const p of c.ports) ports.push(...processWords(p, envMap(s.env), { escape: this.#escape }))
          const specs = parsePorts(ports)
          cfg.ExposedPorts ??= {}
          for (const p of specs) cfg.ExposedPorts[p] = {}
          this.#history(s, `EXPOSE map[${[...specs].sort().map((p) => `${p}:{}`).join(' ')}]`, false)
          return
        }
        case 'user': {
          const u = this.#expand(s, c.user, line)
          s.user = u
          cfg.User = u
          this.#history(s, `USER ${u}`, false)
          return
        }
        case 'volume': {
          const vols = c.volumes.map((v) => this.#expand(s, v, line))
          cfg.Volumes ??= {}
          for (const v of vols) {
            if (v === '') throw new Error('VOLUME specified can not be an empty string')
            cfg.Volumes[v] = {}
          }
          this.#history(s, `VOLUME ${goSlice(vols)}`, false)
          return
        }
        case 'stopsignal': {
          const sig = this.#expand(s, c.signal, line)
          checkSignal(sig)
          cfg.StopSignal = sig
          this.#history(s, `STOPSIGNAL ${sig}`, false)
          return
        }
        case 'shell':
          cfg.Shell = [...c.shell]
          this.#history(s, `SHELL ${goSlice(c.shell)}`, false)
          return
        case 'arg': {
          const parts: string[] = []
          const overrides = this.#opts.buildArgs ?? {}
          const expanded = c.args.map((a) => ({ key: this.#expand(s, a.key, line), written: a.value === undefined ? undefined : this.#expand(s, a.value, line) }))
          for (const { key, written } of expanded) {
            parts.push(written === undefined ? key : `${key}=${written}`)
            let value = key in overrides ? overrides[key] : written
            if (value === undefined && this.#metaArgs.has(key)) value = this.#metaArgs.get(key)
            if (value !== undefined) s.env = addEnv(s.env, key, value)
            s.buildArgs.push({ key, ...(value !== undefined ? { value } : {}) })
          }
          this.#history(s, `ARG ${parts.join(' ')}`, false)
          return
        }
        case 'workdir':
          return await this.#workdir(node, s, c.path, line, c)
        case 'run':
          return await this.#runStep(node, s, c)
        case 'copy':
        case 'add':
          return await this.#copy(node, s, c)
      }
    } catch (e) {
      if (e instanceof StrataError) throw e
      throw new BuildError('DockerfileParse', `dockerfile parse error line ${line}: ${(e as Error).message}`, { line, cause: e })
    }
  }

  // ---- filesystem steps ------------------------------------------------------------------

  /**
   * Diff dirs of a stage's layers, top first (the lowers of a step mount). Looked up once per
   * build and top layer: the steps after a miss mount the same stack below their new layers
   * (s.unsettled.baseIds), and each lookup is some 25 small reads through the libuv pool, which
   * the registrations' fsyncs keep busy while the next step is being prepared.
   */
  #lowers(diffIds: DiffId[]): Promise<string[]> {
    if (diffIds.length === 0) return Promise.resolve([])
    const top = chainIdsOf(diffIds).pop()!
    let dirs = this.#lowersOf.get(top)
    if (!dirs) {
      dirs = this.#ctx.layers.stack(top).then((stack) => stack.map((l) => this.#ctx.layout.diffDir(l.cacheId)))
      this.#lowersOf.set(top, dirs)
      // A failed lookup is not kept: the next step looks again.
      dirs.catch(() => this.#lowersOf.delete(top))
    }
    return dirs
  }

  #parentChain(s: StageState): ChainId | '' {
    const chain = chainIdsOf(s.image.rootfs.diff_ids)
    return chain[chain.length - 1] ?? ''
  }

  /**
   * A filesystem step: probe the cache, else `work` in a fresh step space; record the result.
   * `createdBy` is the history line, `keyed` what the step's cache key holds besides its parent.
   *
   * While the step below is still being sealed (its DiffID, so this step's key, unknown yet:
   * s.sealing), the step space is made and mounted meanwhile on the layer below as it lies in
   * its staging dir — and with `speculate`, `work` runs there too (a COPY's files: purely local),
   * and its upper dir is sealed. If the probe then hits, that space is thrown away (cancelled,
   * unmounted, removed, its tar-split with it) and the
   * cached layer used. A RUN never speculates its command: a hit must not run it.
   */
  async #step(node: StageNode, s: StageState, opts: StepOpts): Promise<void> {
    // A later step, even a hit (its layer on top), keeps an earlier step's record from carrying the image (#exportAlong).
    s.steps = (s.steps ?? 0) + 1
    let prepared: Prepared | undefined
    if (s.sealing) {
      prepared = this.#prepare(s, opts)
      try {
        await s.sealing
      } catch (e) {
        await this.#discard(prepared)
        throw e
      }
    }
    const parentChain = this.#parentChain(s)
    const key = stepKey(parentChain, this.#platform, opts.keyed)
    const vertex = this.#progress.start(opts.name, key)
    let rec: CacheRecord | undefined
    const inFlight = this.#ctx.buildStepsInFlight
    if (!node.ignoreCache) {
      try {
        rec = await this.#probe(key, parentChain)
        // Another build in this process is making this very step: its record, once written, is
        // the hit (if it fails, this build makes the step itself).
        for (let other = inFlight.get(key); !rec && other; other = inFlight.get(key)) {
          // The layer below goes into the store meanwhile (that build may wait for it).
          if (prepared) await this.#discard(prepared)
          prepared = undefined
          await other
          throwIfAborted(this.#signal)
          rec = await this.#probe(key, parentChain)
        }
      } catch (e) {
        if (prepared) await this.#discard(prepared)
        throw e
      }
    }
    if (rec) {
      if (prepared) await this.#discard(prepared)
      this.#progress.emit({ type: 'cached', id: vertex })
      if (rec.diffId !== null) {
        const u = s.unsettled
        // A cached layer is in the store, and so is every layer below it: the next step mounts them from there.
        if (u) s.unsettled = { tops: [], baseIds: [...s.image.rootfs.diff_ids, rec.diffId], layers: u.layers, done: u.done }
        s.image.rootfs.diff_ids.push(rec.diffId)
        this.#history(s, opts.createdBy, true, rec.created)
      } else this.#history(s, opts.createdBy, false)
      this.#steps.push({ name: opts.name, key, cached: true, ...(rec.diffId ? { diffId: rec.diffId } : {}) })
      this.#stepStages.push(node)
      return
    }
    let settle!: () => void
    const mine = new Promise<void>((resolve) => { settle = resolve })
    if (!inFlight.has(key)) inFlight.set(key, mine)
    // Until its record is written (or the step failed), this build is making the step.
    const settled = (): void => {
      if (inFlight.get(key) === mine) inFlight.delete(key)
      settle()
    }
    // The history row keeps its place among the instructions after it; sealing fills it in.
    const row = this.#history(s, opts.createdBy, true)
    try {
      const made = await this.#make(s, { ...opts, key }, vertex, parentChain, prepared ?? this.#prepare(s, opts, false))
      void made.recorded.catch(() => undefined).finally(settled)
      const sealing: Promise<void> = quiet(made.sealed.then((r) => {
        if (r.diffId !== null) {
          s.image.rootfs.diff_ids.push(r.diffId)
          row.created = r.created
        } else row.empty_layer = true
        this.#steps.push({ name: opts.name, key, cached: false, ...(r.diffId ? { diffId: r.diffId } : {}) })
        this.#stepStages.push(node)
        this.#progress.emit({ type: 'done', id: vertex, at: now() })
        // Sealed: the next step has no reason to start before its probe.
        if (s.sealing === sealing) s.sealing = undefined
      }))
      s.sealing = sealing
    } catch (e) {
      settled()
      throw e
    }
  }

  /** The cache record of `key` if it is a hit here: its layer still there, on this parent. */
  async #probe(key: string, parentChain: string): Promise<CacheRecord | undefined> {
    const rec = await this.#ctx.buildCache.get(key)
    // A record whose layer is gone (removed by hand) is no hit.
    if (rec && rec.diffId !== null && !(await this.#ctx.layers.has(rec.chainId))) return undefined
    if (rec && rec.parent !== parentChain) return undefined
    return rec
  }

  /**
   * The space of a step on the stage's rootfs (`s`), made and mounted now; with `speculative` and
   * a step that allows it (`speculate`), its work done there too, before the probe (#step).
   */
  #prepare(s: StageState, opts: Pick<StepOpts, 'work' | 'speculate' | 'prepare'>, speculative = true): Prepared {
    const cancel = new native.NativeCancel()
    const onAbort = (): void => cancel.cancel()
    if (this.#signal.aborted) cancel.cancel()
    else this.#signal.addEventListener('abort', onAbort, { once: true })
    const space = quiet((async () => StepSpace.create(this.#ctx, await this.#stagingDir(), `step-${++this.#stepCounter}`))())
    const mounted = quiet((async () => {
      const sp = await space
      await sp.mount(await this.#stepLowers(s))
    })())
    const worked = speculative && opts.speculate
      ? quiet(mounted.then(async () => {
        const sp = await space
        await opts.work(sp, undefined, cancel)
        // The unmount syncs the upper file system: that too while the step below is sealed.
        await sp.unmount()
      }))
      : undefined
    // The seal walks only the upper dir, so its DiffID does not depend on the layers below:
    // a step whose work ran before its probe is described before it too (a miss then needs no
    // seal after the probe; a hit throws the description away with the space). Nothing is
    // registered before the probe (#make).
    const sealed = worked ? quiet(worked.then(async () => (await space).seal(cancel))) : undefined
    const readied = speculative && opts.prepare ? quiet(mounted.then(async () => opts.prepare!(await space))) : undefined
    return { space, cancel, mounted, ...(worked ? { worked, sealed } : {}), ...(readied ? { readied } : {}), unlink: () => this.#signal.removeEventListener('abort', onAbort) }
  }

  /** Throws a prepared space away (the probe hit, or the step below failed): nothing of it is left. */
  async #discard(p: Prepared): Promise<void> {
    p.cancel.cancel()
    await Promise.allSettled([p.mounted, p.worked, p.sealed, p.readied])
    p.unlink()
    await (await p.space.catch(() => undefined))?.dispose()
  }

  /** The lower dirs of a step on the stage's rootfs (`s`): the diff dirs of its layers, top first. */
  async #stepLowers(s: StageState): Promise<string[]> {
    const u = s.unsettled
    return u ? [...u.tops, ...(await this.#lowers(u.baseIds))] : this.#lowers(s.image.rootfs.diff_ids)
  }

  /**
   * Makes a step's layer in its prepared space; answers once its work is done and its seal
   * started, with `sealed` (the record, once the DiffID is known) and `recorded` (the layer and
   * record registered, after the layers below; the next steps mount it meanwhile through a
   * descriptor of its diff dir: s.unsettled, set here).
   */
  async #make(
    s: StageState, opts: Pick<StepOpts, 'name' | 'createdBy' | 'line' | 'work' | 'made'> & { key: string },
    vertex: number, parentChain: ChainId | '', prepared: Prepared,
  ): Promise<{ sealed: Promise<CacheRecord>; recorded: Promise<void> }> {
    const failed = (e: unknown): unknown => {
      const message = e instanceof StrataError ? e.message : String(e)
      this.#progress.emit({ type: 'error', id: vertex, message, at: now() })
      // Whatever failed inside a step (a user that is not in the rootfs, a source that
      // changed under the copy, ...) says which step and line it was.
      if (e instanceof StrataError && !(e instanceof BuildError) && e.code !== 'Aborted') {
        return new BuildError(e.code, e.message, { line: opts.line, step: opts.name, cause: e, ...(e.path !== undefined ? { path: e.path } : {}) })
      }
      return e
    }
    const index = s.steps!
    const prev = s.unsettled
    // Whether every earlier step's layer and record is written (#exportAlong waits for none).
    let earlier = !prev
    void prev?.done.then(() => { earlier = true }, () => undefined)
    let space: StepSpace | undefined
    let fd: number
    try {
      space = await prepared.space
      await prepared.mounted
      if (prepared.worked) await prepared.worked
      else await opts.work(space, vertex, prepared.cancel)
      await space.unmount()
      // Where the next steps find these files, wherever registering moves them (Unsettled.tops).
      fd = openSync(space.diff, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY)
      ;(s.fds ??= []).push(fd)
    } catch (e) {
      prepared.unlink()
      // Its files go with the build's staging dir at the end.
      await space?.unmount().catch(() => space?.dispose())
      throw failed(e)
    }
    const sp = space
    // The record is known before the layer is registered (its ChainID follows from the DiffIDs),
    // so it is written alongside the registration and renamed into place only after it.
    const parentDiffIds = [...s.image.rootfs.diff_ids]
    const sealing = quiet((prepared.sealed ?? sp.seal(prepared.cancel)).then((sealed) => {
      const made = sealed.empty
        ? { chainId: parentChain, diffId: null }
        : { chainId: chainIdsOf([...parentDiffIds, sealed.diffId]).pop()!, diffId: sealed.diffId }
      const rec: CacheRecord = { v: 1, key: opts.key, parent: parentChain, ...made, size: sealed.size, created: nowRfc3339Nano(), createdBy: opts.createdBy, description: opts.name }
      return { sealed, rec }
    }, (e: unknown) => { throw failed(e) }).finally(() => prepared.unlink()))
    const below = prev?.layers ?? SETTLED
    const recorded = quiet((async () => {
      const { sealed, rec } = await sealing
      // After the next step has taken the DiffID and started its probe (all in the microtasks
      // of this seal's settling): registering first put its lock and writes (~2 ms of the
      // main thread) before that step, on the build's critical path.
      await new Promise<void>((resolve) => setImmediate(resolve))
      // The layer below must be in the store first (register links to it; a record names a
      // layer only once it is there).
      await below
      try {
        await this.#ctx.exclusive(() => this.#ctx.buildCache.put(rec, async () => {
          if (!sealed.empty) await sp.register(sealed, parentDiffIds)
        }, (w) => (earlier ? this.#exportAlong(s, index, w, !sealed.empty) : Promise.resolve())))
        opts.made?.(rec)
      } catch (e) {
        throw failed(e)
      }
    })())
    const top = `/proc/self/fd/${fd}`
    const u: Unsettled = {
      tops: [top, ...(prev?.tops ?? [])],
      baseIds: prev?.baseIds ?? parentDiffIds,
      // An empty layer is none: the stage's layers are those below.
      layers: quiet(sealing.then(({ sealed }) => (sealed.empty ? below : recorded))),
      done: quiet(Promise.all([prev?.done, recorded]).then(() => undefined)),
    }
    // An empty layer adds nothing to the mounts of the steps that start after its seal.
    void sealing.then(({ sealed }) => { if (sealed.empty) u.tops = u.tops.filter((t) => t !== top) }, () => undefined)
    s.unsettled = u
    return { sealed: quiet(sealing.then(({ rec }) => rec)), recorded }
  }

  async #workdir(node: StageNode, s: StageState, raw: string, line: number, c: Command): Promise<void> {
    const p = this.#expand(s, raw, line)
    const wd = p.startsWith('/') ? path.posix.join('/', p) : path.posix.join('/', s.image.config.WorkingDir || '/', p)
    s.workdir = p.startsWith('/') ? p : path.posix.join(s.workdir, p)
    s.image.config.WorkingDir = wd
    if (wd === '/') {
      this.#history(s, `WORKDIR ${wd}`, false)
      return
    }
    const user = s.image.config.User ?? ''
    await this.#step(node, s, {
      name: this.#vertexName(node, s, c), keyed: ['mkdir', wd, user], createdBy: `WORKDIR ${wd}`, line, speculate: true,
      work: async (space) => {
        const owner = user ? resolveChown(user, space.merged, line) : undefined
        await runCopy(space.merged, space.merged, [{ op: 'mkdirs', dst: wd, mode: 0o755, uid: owner?.uid ?? 0, gid: owner?.gid ?? 0 }])
      },
    })
  }

  async #runStep(node: StageNode, s: StageState, c: RunCommand): Promise<void> {
    const cfg = s.image.config
    const shell = cfg.Shell?.length ? cfg.Shell : ['/bin/sh', '-c']
    let args: string[] = c.prependShell ? [...shell, c.cmdLine.join(' ')] : [...c.cmdLine]
    let script: { name: string; content: string } | undefined
    if (c.heredocs.length > 0) {
      const h = c.heredocs[0]
      const only = c.prependShell && c.cmdLine.length === 1 && /^<<-?["']?[^\s]+["']?$/.test(c.cmdLine[0].trim())
      if (only && c.heredocs.length === 1 && h.content.startsWith('#!')) {
        script = { name: h.name, content: h.content }
        args = [`/dev/pipes/${h.name}`]
      } else if (only && c.heredocs.length === 1) {
        args = [...shell, h.content]
      } else {
        let full = c.cmdLine.join(' ')
        for (const f of c.heredocs) full += `\n${f.content}${f.name}`
        args = c.prependShell ? [...shell, full] : [full]
      }
    }
    const env = [...s.env]
    const network = c.network === 'default' ? this.#opts.network ?? 'host' : c.network
    const em = envMap(env)
    const buildEnv = s.buildArgs.map((a) => `${a.key}=${em.has(a.key) ? em.get(a.key) : a.value ?? ''}`)
    const createdBy = `RUN ${[...(buildEnv.length ? [`|${buildEnv.length}`, ...buildEnv] : []), ...args].join(' ')} # buildkit`
    const name = this.#vertexName(node, s, c, true)
    const { user, workdir } = s
    // The container of each step space, prepared once (maybe before the probe: #prepare).
    const runs = new Map<StepSpace, Promise<PreparedRun>>()
    const prepare = (space: StepSpace): Promise<PreparedRun> => {
      let run = runs.get(space)
      if (!run) {
        run = (async () => {
          // The step space's own number: #stepCounter may have moved on (stages run concurrently).
          const id = `${path.basename(await this.#stagingDir())}-${path.basename(space.dir)}`
          return prepareRun(this.#ctx, space, { id, args, env, user, cwd: workdir, network, ...(script ? { script } : {}) })
        })()
        runs.set(space, run)
      }
      return run
    }
    await this.#step(node, s, {
      name, keyed: ['run', args, env, user, workdir, network, script ?? null], createdBy, line: c.line,
      // The command never runs before the probe (a hit must not run it); its container is
      // prepared early (nothing runs then).
      prepare,
      work: async (space, vertex) => {
        const code = await (await prepare(space)).start({
          signal: this.#signal,
          onOutput: (stream, data) => this.#progress.emit({ type: 'log', id: vertex!, stream, data, at: now() }),
        })
        if (code !== 0) {
          const cmd = args.join(' ')
          throw new BuildError('BuildFailed', `process "${cmd}" did not complete successfully: exit code: ${code}`, { line: c.line, step: name, exitCode: code })
        }
      },
    })
  }

  /**
   * The context, scanned and every file of it given its digest (from the stat index where it
   * can be, else hashed), as BuildKit transfers it before the steps that use it. Started once,
   * early (#run) or by the first COPY that reads it; its outcome is only seen through
   * #contextTree, and it has settled before the build returns (run()).
   */
  #contextScan(): Promise<BuildContext> {
    this.#scanning ??= quiet((async () => {
      const c = await BuildContext.scan(path.resolve(this.#opts.context), this.#ignore, this.#ctx.layout.statIndex, this.#opts.contextLimits, this.#cancel)
      await c.hashAll(this.#cancel)
      this.#saveIndexSoon(c)
      return c
    })())
    return this.#scanning
  }

  /**
   * Writes the context's stat index (every file is hashed by now: `hashAll`) off the JS thread
   * (`saveIndex`: a pool task) while the steps run (a copy, a seal, the runtime), not on the
   * build's tail, where it took ~2 ms of the main thread. The index is a hint (a file it leaves
   * out is hashed again next time), so a failure to write it is no failure of the build; the
   * build awaits it before it answers (#run, run), leaving nothing running.
   */
  #saveIndexSoon(c: BuildContext): void {
    this.#indexSaved = c.saveIndex().catch(() => undefined)
  }

  async #contextTree(): Promise<BuildContext> {
    this.#contextLoaded ??= (async () => {
      const id = this.#progress.start('[internal] load build context', sha('context'))
      try {
        const c = await this.#contextScan()
        this.#context = c
        this.#progress.emit({ type: 'status', id, text: `transferring context: ${c.bytesRead}B done` })
        return c
      } catch (e) {
        this.#progress.emit({ type: 'error', id, message: (e as Error).message, at: now() })
        if (e instanceof ContextTooLarge) throw new BuildError('ContextTooLarge', e.message)
        if (e instanceof BadPatternError) throw new BuildError('InvalidArgument', `invalid .dockerignore pattern: ${e.message}`)
        throw e
      } finally {
        this.#progress.emit({ type: 'done', id, at: now() })
      }
    })()
    return this.#contextLoaded
  }

  async #copy(node: StageNode, s: StageState, c: CopyCommand): Promise<void> {
    const words = c.sourcesAndDest.map((w) => (c.heredocs.some((h) => w === `<<${h.name}` || w === `<<-${h.name}` || w === `<<"${h.name}"` || w === `<<'${h.name}'`) ? w : this.#expand(s, w, c.line)))
    const chown = this.#expand(s, c.chown, c.line)
    const chmod = c.chmod ? parseInt(c.chmod, 8) : undefined
    const destRaw = words[words.length - 1]
    const sources = words.slice(0, -1)
    const verb = c.kind === 'add' ? 'ADD' : 'COPY'
    const createdBy = `${verb} ${sources.join(' ')} ${destRaw} # buildkit`
    for (const src of sources) {
      if (/^https?:\/\//.test(src)) {
        throw new BuildError('InvalidArgument', c.kind === 'copy' ? 'source can\'t be a URL for COPY' : `ADD of a URL (${src}) is not supported by strata`, { line: c.line })
      }
    }
    const dest = destinationPath(destRaw, s.workdir)
    // Where the sources come from: heredocs, another stage (or image), or the context.
    const heredocSources = sources.filter((w) => w.startsWith('<<'))
    const fileSources = sources.filter((w) => !w.startsWith('<<'))
    let tree: SourceTree
    let keyed: unknown
    let planned: PlannedSource[] = []
    let fromDiffIds: DiffId[] | undefined
    if (heredocSources.length > 0) {
      const files = heredocSources.map((w) => {
        const h = c.heredocs.find((x) => w.includes(x.name))!
        return { name: h.name, content: h.expand ? this.#expand(s, h.content, c.line) : h.content }
      })
      tree = await heredocTree(path.join(await this.#stagingDir(), `heredoc-${++this.#stepCounter}`), files)
      planned = await planSources(tree, files.map((f) => f.name), c.line)
      keyed = ['heredoc', files]
    } else if (c.from) {
      const from = this.#expand(s, c.from, c.line)
      const src = /^\d+$/.test(from) ? this.#nodes[Number(from)] : this.#nodes.find((n) => n.stage.name === from.toLowerCase())
      if (src) fromDiffIds = [...(await this.#runStage(src)).image.rootfs.diff_ids]
      else {
        const { id } = await resolveImage(this.#ctx, from).catch((e: StrataError) => {
          throw new BuildError(e.code === 'ImageNotFound' ? 'StageNotFound' : e.code, `COPY --from=${from}: no stage or image of that name: ${e.message}`, { line: c.line })
        })
        const img = await this.#ctx.images.get(id)
        fromDiffIds = [...(img?.config.rootfs.diff_ids ?? [])]
      }
      keyed = ['from', fileSources, await this.#fromContent(fromDiffIds, fileSources, chmod === undefined, chown === '', c.line)]
      tree = dirTree('/') // replaced by the mounted rootfs in the step
    } else {
      // The context's first load is a step of the progress of its own: after the step before
      // is done, as without the overlap (its seal's failure is that step's, thrown in #step).
      if (!this.#contextLoaded) await s.sealing?.catch(() => undefined)
      const ctxTree = await this.#contextTree()
      tree = ctxTree.tree()
      // Every file of the context has its digest on its entry already (#contextTree).
      planned = await planSources(tree, fileSources, c.line)
      keyed = ['context', planned.map((p) => [p.src, describeSource(p, chmod === undefined)])]
    }
    const name = this.#vertexName(node, s, c)
    // A copy of context files links what it copies unchanged from the last layer this instruction made (./reuse.ts).
    const lineage = heredocSources.length === 0 && fromDiffIds === undefined
      ? copyLineage({ platform: this.#platform, kind: c.kind, sources, dest, chown, chmod: chmod ?? null })
      : undefined
    let copied: CopyStep[] = []
    await this.#step(node, s, {
      name, keyed: [c.kind, keyed, dest, chown, chmod ?? null], createdBy, line: c.line,
      // Its files go into its own step space only: it may run before the probe.
      speculate: true,
      made: (rec) => {
        if (lineage && rec.diffId !== null) writeLastCopy(this.#ctx.layout.lastCopies, lineage, lastCopyOf(rec.chainId, copied))
      },
      work: async (space, _vertex, cancel) => {
        const owner = resolveChown(chown, space.merged, c.line)
        let unmount: (() => Promise<void>) | undefined
        try {
          if (fromDiffIds !== undefined) {
            const mounted = await this.#mountReadOnly(fromDiffIds, path.join(space.dir, 'from'))
            unmount = mounted.unmount
            tree = dirTree(mounted.root)
            planned = await planSources(tree, fileSources, c.line)
          }
          if (c.kind === 'add') {
            // Local archives are unpacked into the destination; the rest is copied.
            const archives: PlannedSource[] = []
            const plain: PlannedSource[] = []
            for (const p of planned) {
              const single = p.items.length === 1 && (p.items[0].entry.mode & 0o170000) === 0o100000
              if (single && (await call(() => native.isArchive(path.join(tree.root, p.items[0].entry.rel))))) archives.push(p)
              else plain.push(p)
            }
            for (const [i, a] of archives.entries()) await this.#unpack(space, tree, a, dest, owner, i, cancel)
            planned = plain
          }
          if (planned.length > 0) {
            const steps = copySteps({ planned, tree, dest, rootfs: space.merged, ...(owner ? { owner } : {}), ...(chmod !== undefined ? { chmod } : {}), line: c.line })
            copied = steps
            const reuse = lineage && !node.ignoreCache ? await this.#lastCopyLayer(lineage) : undefined
            const split = reuse ? splitReuse(steps, reuse.last, (d) => native.statInRoot(space.merged, d) === null) : { mounted: steps, after: [] }
            await runCopy(tree.root, space.merged, split.mounted, cancel)
            if (reuse && split.after.length > 0) {
              // The links go into the upper dir itself, which only an unmounted overlay allows.
              await space.unmount()
              await runCopy(tree.root, space.diff, split.after, cancel, reuse.diff)
            }
          }
        } finally {
          await unmount?.()
        }
      },
    })
  }

  /** The last layer an instruction made, if it is still there, and its diff dir (./reuse.ts). */
  async #lastCopyLayer(lineage: string): Promise<{ last: LastCopy; diff: string } | undefined> {
    const last = readLastCopy(this.#ctx.layout.lastCopies, lineage)
    const layer = last ? await this.#ctx.layers.get(last.chainId) : undefined
    return last && layer ? { last, diff: this.#ctx.layout.diffDir(layer.cacheId) } : undefined
  }

  /**
   * What the sources of a `COPY --from` hold (./fromkey.ts): from the memo of the source's
   * top ChainID, else hashed through a read-only mount of its layers.
   */
  async #fromContent(diffIds: DiffId[], sources: string[], withMode: boolean, withOwner: boolean, line: number): Promise<string> {
    const chain = chainIdsOf(diffIds)
    const req = { dir: this.#ctx.layout.fromKeys, chainId: chain[chain.length - 1] ?? '', sources, withMode, withOwner, line }
    const memo = cachedFromKey(req)
    if (memo) return memo
    const mounted = await this.#mountReadOnly(diffIds, path.join(await this.#stagingDir(), `from-${++this.#stepCounter}`))
    try {
      return await computeFromKey(req, mounted.root, this.#cancel)
    } finally {
      await mounted.unmount()
    }
  }

  /** ADD of a local tar: unpacked (natively, safely) beside the step, then copied into `dest`. */
  async #unpack(space: StepSpace, tree: SourceTree, p: PlannedSource, dest: string, owner: { uid: number; gid: number } | undefined, i: number, cancel: InstanceType<typeof native.NativeCancel>): Promise<void> {
    const file = path.join(tree.root, p.items[0].entry.rel)
    const dir = path.join(space.dir, `unpack-${i}`)
    await fs.mkdir(dir)
    await call(() => native.unpackArchive(file, path.join(dir, 'root'), path.join(dir, 'ts.json.gz'), cancel))
    const utree = dirTree(path.join(dir, 'root'))
    const planned = await planSources(utree, ['.'], 0)
    const d = dest.endsWith('/') ? dest : `${dest}/`
    const steps = copySteps({ planned, tree: utree, dest: d, rootfs: space.merged, ...(owner ? { owner } : {}), line: 0 })
    await runCopy(utree.root, space.merged, steps, cancel)
  }

  /** A stage's (or image's) filesystem, read-only, for COPY --from. */
  async #mountReadOnly(diffIds: DiffId[], at: string): Promise<{ root: string; unmount: () => Promise<void> }> {
    const lowers = await this.#lowers(diffIds)
    // In the build's own staging dir: on the calling thread, not through the busy libuv pool.
    mkdirSync(at, { recursive: true })
    if (lowers.length === 0) return { root: at, unmount: async () => undefined }
    if (lowers.length === 1) return { root: lowers[0], unmount: async () => undefined }
    await call(() => native.mountOverlay({ lowerdirs: lowers, target: at, options: ['ro'] }))
    return { root: at, unmount: async () => { await call(() => native.unmount(at, true)).catch(() => undefined) } }
  }

  // ---- the image -----------------------------------------------------------------------

  /** The target stage's image config and ID (computed once: history times filled in, labels). */
  #imageConfig(s: StageState): { raw: Buffer; imageId: string } {
    if (this.#config) return this.#config
    const img = s.image
    if (this.#opts.labels && Object.keys(this.#opts.labels).length > 0) img.config.Labels = { ...(img.config.Labels ?? {}), ...this.#opts.labels }
    img.architecture = goArch()
    img.os = PLATFORM_OS
    const raw = imageConfigBytes(img, normalizeHistory(img.history))
    this.#config = { raw, imageId: imageIdOf(raw) }
    return this.#config
  }

  /**
   * Stages the image's config and tags into the write set of the target stage's last step's
   * record (#make; the store lock is held), when that step is the stage's last and every
   * instruction of the stage is dispatched: they are then written and synced with the record
   * and the layer's files (one barrier) and renamed in the same task right after the record —
   * the config, then (a barrier) the tags —, not in a lock section and three barriers of their
   * own once the stage has settled (#export then writes nothing). Otherwise (a later step, a
   * rebuild that changes nothing, a layer below gone) it stages nothing and #export does it all.
   */
  async #exportAlong(s: StageState, index: number, w: MetaWrites, makesLayer: boolean): Promise<void> {
    if (!s.target || !s.dispatched || s.steps !== index || this.#signal.aborted) return
    // A progress listener that failed fails the build before anything is tagged (#run).
    try { this.#progress.check() } catch { return }
    // The step's seal has filled in its DiffID and history row (#step).
    await s.sealing
    const { raw, imageId } = this.#imageConfig(s)
    const tags = this.#opts.tags ?? []
    if (await this.#unchanged(imageId, tags)) return
    // Every layer of the image but the one this record's write set makes must still be there
    // (a concurrent prune may have raced a cache hit: #export).
    const chain = chainIdsOf(s.image.rootfs.diff_ids)
    const stored = makesLayer ? chain.slice(0, -1) : chain
    if (stored.length > 0 && !(await this.#ctx.layers.has(stored[stored.length - 1]))) return
    await this.#stageImage(w, raw, imageId, tags)
    this.#exportedAlong = imageId
  }

  /** Stages the image's config into `w`, then its tags (or, with none, the image's `lastUpdated`). */
  async #stageImage(w: MetaWrites, raw: Buffer, imageId: string, tags: string[]): Promise<void> {
    await this.#ctx.images.stage(w, raw)
    if (tags.length > 0) await stageTags(this.#ctx, w, tags.map((target) => ({ target, id: imageId })))
    else await this.#ctx.images.touch(w, imageId)
  }

  async #unchanged(imageId: string, tags: string[]): Promise<boolean> {
    if (!(await this.#ctx.images.has(imageId))) return false
    for (const t of tags) {
      const ref = withDefaultTag(parseNormalizedNamed(t))
      if ((await this.#ctx.repos.resolve(ref.familiarName, refKey(ref))) !== imageId) return false
    }
    return true
  }

  async #export(s: StageState): Promise<BuildResult> {
    const img = s.image
    const { raw, imageId } = this.#imageConfig(s)
    const vid = this.#progress.start('exporting to image', sha('exporting to image'))
    this.#progress.emit({ type: 'status', id: vid, text: 'exporting layers done' })
    const tags = this.#opts.tags ?? []
    // A rebuild that changed nothing: the image exists (its own layers keep themselves alive)
    // and every tag already names it — nothing to write, no lock to take. Or the config and
    // tags were written with the last step's record (#exportAlong).
    if (this.#exportedAlong === imageId || await this.#unchanged(imageId, tags)) {
      this.#progress.emit({ type: 'status', id: vid, text: `writing image ${imageId} done` })
      for (const t of tags) this.#progress.emit({ type: 'status', id: vid, text: `naming to ${parseNormalizedNamed(t).string()} done` })
      this.#progress.emit({ type: 'done', id: vid, at: now() })
      this.#progress.check()
      return { imageId, steps: this.#steps, contextBytesRead: this.#context?.bytesRead ?? 0 }
    }
    const id = await this.#ctx.exclusive(async () => {
      // Every layer must still be there (a concurrent prune may have raced a cache hit).
      const chain = chainIdsOf(img.rootfs.diff_ids)
      if (chain.length > 0 && !(await this.#ctx.layers.has(chain[chain.length - 1]))) {
        throw new StrataError('LayerNotFound', 'a cached layer was removed during the build; build again')
      }
      // The config and every tag in one all-or-nothing write of the store's metadata, one native
      // task to commit it: the config renamed into place and its dir synced first (a barrier),
      // then the tags that name it.
      await writeAll((w) => this.#stageImage(w, raw, imageId, tags))
      this.#progress.emit({ type: 'status', id: vid, text: `writing image ${imageId} done` })
      for (const t of tags) this.#progress.emit({ type: 'status', id: vid, text: `naming to ${parseNormalizedNamed(t).string()} done` })
      return imageId
    })
    this.#progress.emit({ type: 'done', id: vid, at: now() })
    this.#progress.check()
    return { imageId: id, steps: this.#steps, contextBytesRead: this.#context?.bytesRead ?? 0 }
  }
}

/** Builds an image; see `BuildOptions`. */
export function build(ctx: StoreContext, opts: BuildOptions, credentials: DockerConfig): Promise<BuildResult> {
  return new Builder(ctx, opts, credentials).run()
}

export type { BkHistory }
