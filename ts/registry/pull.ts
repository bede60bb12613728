/**
 * `pull`: a reference → an image in the store, streamed.
 *
 * 1. the manifest (by tag or digest; an index resolved to the platform), its digest recomputed
 *    and checked against the reference and `Docker-Content-Digest`; then the config blob;
 * 2. an image already in the store is only (re)tagged: one manifest request, no blob request;
 * 3. the layers the store lacks (by ChainID) are pulled natively, all at once, each streamed
 *    socket → sha256 → decompress → DiffID → safe extraction into staging, the compressed
 *    bytes kept (resume, and to push the layer again unchanged);
 * 4. under the store lock: layers bottom-up, their blobs into the content store, the config,
 *    the distribution records, the tag and the RepoDigest (the index digest for an index).
 * Any failure before step 4 leaves the store as it was (partial blobs of a broken connection
 * stay under content/ingest for the next pull to resume).
 *
 * A pull is one operation (../operation.ts): an abort or a throwing `onProgress` before step 4
 * rejects at once (with `Aborted`, or with what the callback threw); the transfers stop at
 * their next chunk and the staging dir goes in the background. Progress only goes forward: a
 * layer's `Downloading` bytes never go back (a blob restarted from zero is not shown twice),
 * and after its `Download complete` only `Extracting` (the full bar) and `Pull complete` come.
 *
 * Progress events are Docker's JSON messages (`{ id, status, progress }`); `lines` are those a
 * `docker pull` prints when not on a terminal.
 */
import { fsp as fs, crypto } from '../internal/lazy'
import * as path from 'node:path'
import { StoreContext } from '../internal/context'
import { Operation } from '../internal/operation'
import { call, StrataError } from '../errors'
import { parseNormalizedNamed, Reference, withTag, trimNamed } from '../reference'
import { parseConfig } from '../internal/imagedb'
import { asBlobDigest, chainIdsOf, type DiffId } from '../internal/chain'
import { tagIn } from '../internal/tags'
import { writeAll } from '../internal/metawrites'
import { allOrNothing } from '../internal/rollback'
import { hex } from '../internal/layout'
import { LayerRegistrar, PlannedLayer } from '../internal/register'
import { Distribution } from '../internal/distribution'
import { RegistryClient, RegistryAuth, pullScope, cancelWhile } from './client'
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, parseManifest, hostPlatform, parsePlatform, selectPlatform, ImageManifest, Platform, Descriptor } from './manifest'

/** Layers in flight per registry (the native side enforces it process-wide). */
export const PULL_CONCURRENCY = 8
/** Image configs larger than this are refused. */
const MAX_CONFIG_BYTES = 16 << 20

/** One progress message, as Docker's JSON messages: a line, or a layer's bar. */
export interface PullEvent {
  /** Layer (12 hex of its digest), tag or digest the message is about; none for plain lines. */
  id?: string
  status: string
  /** Bytes done and total, for `Downloading` (not printed when not on a terminal). */
  current?: number
  total?: number
}

export interface PullOptions {
  /** `os/arch[/variant]`; default the host's. */
  platform?: string
  /** Every tag of the repository (`-a`). */
  allTags?: boolean
  auth?: RegistryAuth
  onProgress?: (e: PullEvent) => void
  signal?: AbortSignal
}

export interface PulledImage {
  id: string
  /** The reference pulled (`localhost:5000/x:1`, familiar form). */
  reference: string
  /** Manifest digest (the index digest for a multi-platform image). */
  digest: string
  upToDate: boolean
}

export interface PullResult {
  images: PulledImage[]
  /** What `docker pull` prints when not on a terminal (without `Using default tag`, the CLI's). */
  lines: string[]
  /** The reference `docker pull` prints last: `docker.io/library/busybox:latest`. */
  reference: string
}

function sha256(b: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`
}

const shortId = (digest: string): string => hex(digest).slice(0, 12)

/** A StrataError carrying Docker's "manifest ... not found" wording for a missing reference. */
function notFound(ref: Reference, e: StrataError): StrataError {
  if (e.code !== 'NotFound') return e
  const what = ref.digest ?? ref.tag ?? 'latest'
  const shown = `${ref.familiarName}${ref.digest ? '@' : ':'}${what}`
  return new StrataError('NotFound', `manifest for ${shown} not found: ${e.message}`, { status: e.status, registryCode: e.registryCode, cause: e })
}

export function pull(ctx: StoreContext, name: string, opts: PullOptions = {}): Promise<PullResult> {
  return Operation.run(ctx, opts.signal, (op) => pullIn(op, name, opts))
}

async function pullIn(op: Operation, name: string, opts: PullOptions): Promise<PullResult> {
  const ctx = op.ctx
  const named = parseNormalizedNamed(name)
  if (opts.allTags && (named.tag !== undefined || named.digest !== undefined)) {
    throw new StrataError('InvalidArgument', 'tag can\'t be used with --all-tags/-a')
  }
  const platform = opts.platform ? parsePlatform(opts.platform) : hostPlatform()
  const lines: string[] = []
  // What the caller's callback throws fails the operation (it is called inside `try`).
  const report = op.callback(opts.onProgress)
  const emit = (e: PullEvent): void => {
    if (e.current === undefined) lines.push(e.id ? `${e.id}: ${e.status}` : e.status)
    report?.(e)
  }
  const client = RegistryClient.open(ctx.layout, named.domain, opts.auth)
  const images: PulledImage[] = []
  let refs: Reference[]
  if (opts.allTags) {
    refs = (await listTags(client, named.path, op.signal)).map((t) => withTag(trimNamed(named), t))
  } else {
    refs = [named.tag === undefined && named.digest === undefined ? withTag(named, 'latest') : named]
  }
  let downloaded = false
  for (const ref of refs) {
    const img = await pullOne(op, client, ref, platform, emit)
    downloaded ||= !img.upToDate
    images.push(img)
  }
  const shown = opts.allTags ? trimNamed(named) : refs[0]
  emit({ status: downloaded ? `Status: Downloaded newer image for ${shown.familiarString()}` : `Status: Image is up to date for ${shown.familiarString()}` })
  return { images, lines, reference: shown.string() }
}

/** `/v2/NAME/tags/list`, following `Link: <...>; rel="next"` pages. */
async function listTags(client: RegistryClient, repo: string, signal?: AbortSignal): Promise<string[]> {
  const tags: string[] = []
  let target: string | undefined = `/v2/${repo}/tags/list?n=1000`
  for (let page = 0; target && page < 1000; page++) {
    const r = await client.request({ method: 'GET', target, scopes: [pullScope(repo)], signal })
    let doc: { tags?: unknown }
    try {
      doc = JSON.parse(r.body.toString('utf8')) as { tags?: unknown }
    } catch {
      throw new StrataError('RegistryError', `tag list of ${repo} is not JSON`)
    }
    if (Array.isArray(doc.tags)) tags.push(...doc.tags.filter((t): t is string => typeof t === 'string'))
    const link = r.header('link')
    const next = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1] : undefined
    target = next ? new URL(next, `http://registry${target}`).pathname + new URL(next, 'http://registry/').search : undefined
  }
  return [...new Set(tags)].sort()
}

interface Fetched {
  manifest: ImageManifest
  /** The digest the reference resolved to (the index's, for an index). */
  digest: string
}

async function fetchManifest(client: RegistryClient, ref: Reference, platform: Platform, signal?: AbortSignal): Promise<Fetched> {
  const repo = ref.path
  const get = async (what: string): Promise<{ body: Buffer; type?: string; headerDigest?: string }> => {
    try {
      const r = await client.request({ method: 'GET', target: `/v2/${repo}/manifests/${what}`, headers: { Accept: MANIFEST_ACCEPT }, scopes: [pullScope(repo)], maxBody: MAX_MANIFEST_BYTES, signal })
      return { body: r.body, type: r.header('content-type'), headerDigest: r.header('docker-content-digest') }
    } catch (e) {
      if (e instanceof StrataError && e.code === 'ResponseTooLarge') throw new StrataError('ManifestInvalid', `manifest for ${ref.familiarString()} exceeds ${MAX_MANIFEST_BYTES} bytes`, { cause: e })
      throw e instanceof StrataError ? notFound(ref, e) : e
    }
  }
  const first = await get(ref.digest ?? ref.tag ?? 'latest')
  const digest = sha256(first.body)
  if (ref.digest !== undefined && ref.digest !== digest) {
    throw new StrataError('DigestMismatch', `manifest for ${ref.familiarString()}: content has digest ${digest}`)
  }
  if (first.headerDigest && /^sha256:/.test(first.headerDigest) && first.headerDigest !== digest) {
    throw new StrataError('DigestMismatch', `manifest for ${ref.familiarString()}: Docker-Content-Digest says ${first.headerDigest}, content has digest ${digest}`)
  }
  const parsed = parseManifest(first.body, first.type, ref.familiarString())
  if (parsed.kind === 'manifest') return { manifest: parsed, digest }
  const entry = selectPlatform(parsed, platform)
  const second = await get(entry.digest)
  if (second.body.length !== entry.size) {
    throw new StrataError('ManifestInvalid', `manifest ${entry.digest}: ${second.body.length} bytes, the index declares ${entry.size}`)
  }
  const d2 = sha256(second.body)
  if (d2 !== entry.digest) throw new StrataError('DigestMismatch', `manifest ${entry.digest}: content has digest ${d2}`)
  const inner = parseManifest(second.body, second.type ?? entry.mediaType, ref.familiarString())
  if (inner.kind !== 'manifest') throw new StrataError('ManifestInvalid', `index entry ${entry.digest} of ${ref.familiarString()} is itself an index`)
  return { manifest: inner, digest }
}

async function fetchConfig(client: RegistryClient, repo: string, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
  if (desc.size > MAX_CONFIG_BYTES) throw new StrataError('ManifestInvalid', `config ${desc.digest} declares ${desc.size} bytes, more than ${MAX_CONFIG_BYTES}`)
  let r
  try {
    r = await client.request({ method: 'GET', target: `/v2/${repo}/blobs/${desc.digest}`, scopes: [pullScope(repo)], maxBody: MAX_CONFIG_BYTES, signal })
  } catch (e) {
    if (e instanceof StrataError && e.code === 'ResponseTooLarge') throw new StrataError('ManifestInvalid', `config ${desc.digest} exceeds ${MAX_CONFIG_BYTES} bytes`, { cause: e })
    throw e
  }
  const found = sha256(r.body)
  if (found !== desc.digest) throw new StrataError('DigestMismatch', `config ${desc.digest}: content has digest ${found}`)
  if (r.body.length !== desc.size) throw new StrataError('ManifestInvalid', `config ${desc.digest}: ${r.body.length} bytes, the manifest declares ${desc.size}`)
  return r.body
}

interface Planned extends PlannedLayer {
  desc: Descriptor
}

async function pullOne(
  op: Operation,
  client: RegistryClient,
  ref: Reference,
  platform: Platform,
  emit: (e: PullEvent) => void,
): Promise<PulledImage> {
  const ctx = op.ctx
  const signal = op.signal
  const repo = ref.path
  const tagOrDigest = ref.digest ?? ref.tag ?? 'latest'
  const { manifest, digest } = await fetchManifest(client, ref, platform, signal)
  emit({ id: tagOrDigest, status: `Pulling from ${repo}` })
  const id = manifest.config.digest
  const known = await ctx.images.get(id)
  const present = known ? await allPresent(ctx, known.config.rootfs.diff_ids) : false
  if (known && present) {
    emit({ status: `Digest: ${digest}` })
    await op.locked('exclusive', async () => {
      if (!(await ctx.images.has(id))) throw new StrataError('ImageNotFound', `image ${id} was removed while pulling`)
      await op.commit(() => recordRefs(ctx, ref, digest, id))
    })
    return { id, reference: ref.familiarString(), digest, upToDate: true }
  }

  const raw = await fetchConfig(client, repo, manifest.config, signal)
  let config
  try {
    config = parseConfig(raw, manifest.config.digest)
  } catch (e) {
    throw new StrataError('ManifestInvalid', (e as Error).message, { cause: e })
  }
  const diffIds = config.rootfs.diff_ids
  if (diffIds.length !== manifest.layers.length) {
    throw new StrataError('ManifestInvalid', `image ${id}: config lists ${diffIds.length} layers, the manifest ${manifest.layers.length}`)
  }
  const chainIds = chainIdsOf(diffIds)
  const plan: Planned[] = manifest.layers.map((desc, i) => ({ chainId: chainIds[i], parentChainId: chainIds[i - 1], diffId: diffIds[i], desc }))
  const missing = async (): Promise<Planned[]> => {
    const out: Planned[] = []
    const seen = new Set<string>()
    for (const p of plan) {
      if (p.staged || seen.has(p.chainId) || (await ctx.layers.has(p.chainId))) continue
      seen.add(p.chainId)
      out.push(p)
    }
    return out
  }
  const first = await missing()
  for (const p of plan) emit({ id: shortId(p.desc.digest), status: first.includes(p) ? 'Pulling fs layer' : 'Already exists' })

  const staging = await ctx.staging('pull', op)
  try {
    let round = 0
    const fetchLayers = async (todo: Planned[]): Promise<void> => {
      if (todo.length === 0) return
      const prefix = `layer-${round}`
      round++
      // Called on the JS thread by the native task's threadsafe function. Per layer, progress
      // only goes forward: bytes never go back, and nothing follows its 'Download complete'.
      const shown = todo.map(() => ({ bytes: -1, verifying: false, complete: false }))
      const onProgress = (i: number, event: string, bytes: number): void => {
        const s = shown[i]
        if (s.complete) return
        const idOf = shortId(todo[i].desc.digest)
        const total = todo[i].desc.size
        if (event === 'waiting') {
          if (s.bytes < 0) emit({ id: idOf, status: 'Waiting' })
        } else if (event === 'bytes') {
          if (bytes <= s.bytes || s.verifying) return
          s.bytes = bytes
          emit({ id: idOf, status: 'Downloading', current: bytes, total })
        } else if (event === 'verifying' && !s.verifying) {
          s.verifying = true
          emit({ id: idOf, status: 'Verifying Checksum' })
        } else if (event === 'done') {
          if (!s.verifying) emit({ id: idOf, status: 'Verifying Checksum' })
          s.verifying = s.complete = true
          emit({ id: idOf, status: 'Download complete' })
          // Docker extracts after the download; here both ran in the one pass that just ended,
          // so the terminal's Extracting bar is full at once (until 'Pull complete').
          emit({ id: idOf, status: 'Extracting', current: total, total })
        }
      }
      await pullIntoStaging(ctx, client, repo, todo, staging.dir, prefix, onProgress, op.cancel)
      op.check()
    }
    await fetchLayers(first)
    op.check()

    const fresh: Planned[] = []
    await op.commitWhenComplete('pulling', missing, async (gone) => {
      await fetchLayers(gone)
      op.check()
    }, commit)
    for (const p of fresh) emit({ id: shortId(p.desc.digest), status: 'Pull complete' })
    emit({ status: `Digest: ${digest}` })
    return { id, reference: ref.familiarString(), digest, upToDate: false }

    /** Layers, config, records, refs; all or nothing (a full disk takes back what it made). */
    async function commit(): Promise<void> {
      await allOrNothing(async (undo) => {
        const registrar = new LayerRegistrar(ctx, (c) => plan.find((x) => x.chainId === c && x.staged), 'pulling', undo)
        for (const c of chainIds) await registrar.layer(c)
        for (const c of registrar.fresh) fresh.push(plan.find((x) => x.chainId === c)!)
        if (!(await ctx.images.has(id))) {
          await ctx.images.put(raw)
          undo.add(`image ${id}`, () => ctx.images.delete(id))
        }
        await ctx.images.setOrigin(id, manifest.mediaType)
        const dist = new Distribution(ctx.layout)
        const source = trimNamed(ref).string()
        for (const p of plan) await dist.add(p.diffId, p.desc.digest, source)
        await recordRefs(ctx, ref, digest, id)
      })
    }
  } finally {
    // Verified blobs of layers that were not registered (found present meanwhile, or a failure
    // after the download) are not kept: the store stays as it was.
    for (const p of plan) if (p.staged?.blob) await fs.rm(p.staged.blob, { force: true })
    await staging.dispose()
  }
}

/**
 * Streams each layer of `todo` from `repo` into `<dir>/<prefix>-<i>/diff` (its tar-split beside
 * it), PULL_CONCURRENCY at a time, and sets its `staged` (the compressed blob kept, for the
 * content store). Partial downloads stay under content/ingest for a later pull to resume.
 */
export async function pullIntoStaging(
  ctx: StoreContext,
  client: RegistryClient,
  repo: string,
  todo: (PlannedLayer & { desc: Descriptor })[],
  dir: string,
  prefix: string,
  onProgress: (i: number, event: string, bytes: number) => void,
  cancel: ReturnType<typeof cancelWhile>['cancel'],
): Promise<void> {
  const reqs = await Promise.all(todo.map(async (p, i) => {
    await fs.mkdir(path.join(dir, `${prefix}-${i}`))
    return {
      repository: repo, digest: p.desc.digest, size: p.desc.size, diffId: p.diffId,
      dest: path.join(dir, `${prefix}-${i}`, 'diff'), tarSplit: path.join(dir, `${prefix}-${i}.tar-split.json.gz`),
      partial: ctx.layout.partialBlob(p.desc.digest),
    }
  }))
  const results = await call(() => client.native.pullLayers(reqs, PULL_CONCURRENCY, onProgress, cancel))
  results.forEach((r, i) => {
    todo[i].staged = {
      dir: path.dirname(reqs[i].dest), tarSplit: reqs[i].tarSplit, size: r.size,
      ...(r.compression !== 'none' ? { compressedDigest: asBlobDigest(r.digest) } : {}),
      blob: r.blob,
    }
  })
}

async function allPresent(ctx: StoreContext, diffIds: DiffId[]): Promise<boolean> {
  for (const c of chainIdsOf(diffIds)) if (!(await ctx.layers.has(c))) return false
  return true
}

/**
 * The tag (when pulled by tag) and the RepoDigest `NAME@DIGEST`, as Docker records them, with the
 * image's lastUpdated: one write of repositories.json, all or nothing. Caller holds the store lock.
 */
async function recordRefs(ctx: StoreContext, ref: Reference, digest: string, id: string): Promise<void> {
  const repos = await ctx.repos.read()
  if (ref.digest === undefined) tagIn(repos, ref.familiarString(), id)
  const name = trimNamed(ref).familiarName
  ;(repos[name] ??= {})[`${name}@${digest}`] = id
  await writeAll(async (w) => {
    await ctx.repos.stage(w, repos)
    await ctx.images.touch(w, id)
  })
}
