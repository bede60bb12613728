/**
 * `--cache-to type=registry,ref=REF` / `--cache-from type=registry,ref=REF`: a build's cache
 * records and their layers as one OCI manifest in a registry, pushed and pulled through strata's
 * registry client (ts/registry/, crates/strata-registry).
 *
 * ```
 * REF  -> application/vnd.oci.image.manifest.v1+json
 *         config: application/vnd.strata.build.cache.v1+json   {"records": [...]} (as ./cache-io.ts)
 *         layers: one blob per cached layer (gzip as the push compressed it, or the blob the
 *                 store kept for it), annotated io.strata.build.diffid=<DiffID>
 * ```
 *
 * The records are the ones ./cache-io.ts writes into a local layout, so the same rules hold on
 * import: a record's ChainID must follow from its parent and DiffID, and a layer is only
 * registered on a parent the store has (or imports in the same pass, parents first). Layers
 * stream socket → decompress → DiffID check → safe extraction exactly as a `pull`'s do; the
 * compressed blobs are kept and recorded in Docker's distribution records, so pushing an
 * image built from the cache skips them. Exporting does what a push does: HEAD the blobs the
 * repository is known to hold, upload the rest (compressing each layer once, then keeping it).
 */
import { fsp as fs } from '../internal/lazy'
import * as path from 'node:path'
import { sha256 } from '../internal/sha256'
import { StoreContext } from '../internal/context'
import { StrataError } from '../errors'
import { hex } from '../internal/layout'
import { parseNormalizedNamed, withDefaultTag, Reference } from '../reference'
import { Distribution } from '../internal/distribution'
import { LayerRegistrar, PlannedLayer } from '../internal/register'
import { RegistryClient, pullScope, cancelWhile } from '../registry/client'
import { DockerConfig, keyForRegistry } from '../registry/credentials'
import { storePushDeps, registryAuth } from '../registry/push-image'
import { BlobToSend, SentBlob } from '../registry/push'
import { MT } from '../internal/media-types'
import { MAX_MANIFEST_BYTES } from '../registry/manifest'
import { pullIntoStaging } from '../registry/pull'
import { CacheRecord } from './cache'
import type { ChainId } from '../internal/chain'
import { CACHE_MEDIA, checkRecord } from './cache-io'

/** The annotation naming each layer blob's DiffID. */
const DIFFID_ANNOTATION = 'io.strata.build.diffid'
/** The records blob is read whole; larger is refused. */
const MAX_RECORDS_BYTES = 16 << 20

function sha(b: Buffer): string {
  return sha256(b)
}

/** `ref=` of a registry cache spec: a tagged name (`:latest` by default), never a digest for export. */
export function cacheRef(s: string, direction: 'from' | 'to'): Reference {
  let ref: Reference
  try {
    ref = withDefaultTag(parseNormalizedNamed(s))
  } catch (e) {
    throw new StrataError('InvalidReference', `invalid cache ref ${JSON.stringify(s)}: ${(e as Error).message}`)
  }
  if (direction === 'to' && ref.digest !== undefined) throw new StrataError('InvalidReference', `cache ref ${s}: cannot export to a digest`)
  return ref
}

interface CacheManifest {
  config: { mediaType: string; digest: string; size: number }
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[]
}

/** Pushes the records `keys` (and their layers) to `ref`. */
export async function exportRegistryCache(ctx: StoreContext, config: DockerConfig, keys: string[], ref: Reference, signal?: AbortSignal): Promise<{ records: number; layers: number }> {
  const deps = storePushDeps(ctx, config)
  const records: CacheRecord[] = []
  const seenKeys = new Set<string>()
  for (const k of keys) {
    if (seenKeys.has(k)) continue
    seenKeys.add(k)
    const r = await ctx.buildCache.get(k)
    if (r) records.push(r)
  }
  const transport = await deps.transport(ref, signal)
  const staging = await ctx.staging('cache-export')
  try {
    // Each cached layer once, in record order (parents first).
    const layers: { rec: CacheRecord; info: Awaited<ReturnType<typeof ctx.layers.must>>; blob?: Awaited<ReturnType<typeof deps.blobs.find>>; sent?: SentBlob; keep: string }[] = []
    const seen = new Set<string>()
    for (const rec of records) {
      if (rec.diffId === null || seen.has(rec.diffId)) continue
      seen.add(rec.diffId)
      const info = await ctx.layers.must(rec.chainId)
      const blob = await deps.blobs.find(info)
      layers.push({ rec, info, ...(blob ? { blob } : {}), keep: path.join(staging.dir, `${hex(rec.diffId)}.gz`) })
    }
    // Blobs the repository already holds: the kept blob, or what a push or pull recorded there.
    const probes: { i: number; digest: string }[] = []
    for (const [i, l] of layers.entries()) {
      const known = new Set([...(l.blob ? [l.blob.digest] : []), ...(await deps.distribution.candidates(l.rec.diffId!)).filter((c) => c.repository === ref.name).map((c) => c.digest)])
      for (const d of known) probes.push({ i, digest: d })
    }
    const sizes = await transport.exists(probes.map((p) => p.digest))
    probes.forEach((p, k) => {
      if (sizes[k] !== null && !layers[p.i].sent) layers[p.i].sent = { digest: p.digest, size: sizes[k]! }
    })
    const todo = layers.filter((l) => !l.sent)
    const blobs: BlobToSend[] = todo.map((l) => l.blob
      ? { kind: 'file', path: l.blob.path, digest: l.blob.digest, size: l.blob.size }
      : { kind: 'layer', diffDir: ctx.layers.diffDir(l.info), tarSplit: ctx.layers.tarSplitPath(l.info.chainId), diffId: l.rec.diffId!, keep: l.keep })
    if (blobs.length > 0) {
      const sent = await transport.upload(blobs, () => undefined)
      sent.forEach((b, k) => { todo[k].sent = b })
    }
    const recordsBlob = Buffer.from(JSON.stringify({ records }))
    const recordsDigest = sha(recordsBlob)
    const [have] = await transport.exists([recordsDigest])
    if (have === null) await transport.upload([{ kind: 'bytes', data: recordsBlob, digest: recordsDigest }], () => undefined)
    const mediaType = (l: typeof layers[number]): string => (l.blob?.compression === 'zstd' && l.blob.digest === l.sent!.digest ? MT.ociLayerZstd : MT.ociLayerGzip)
    const manifest: CacheManifest & { schemaVersion: 2; mediaType: string } = {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: CACHE_MEDIA, digest: recordsDigest, size: recordsBlob.length },
      layers: layers.map((l) => ({ mediaType: mediaType(l), digest: l.sent!.digest, size: l.sent!.size, annotations: { [DIFFID_ANNOTATION]: l.rec.diffId! } })),
    }
    await transport.putManifest(ref.tag ?? 'latest', MT.ociManifest, Buffer.from(JSON.stringify(manifest)))
    // What the push left behind: blobs it compressed (kept for the next push), and where they are.
    await ctx.exclusive(async () => {
      for (const l of todo) {
        if (!l.blob && (await ctx.layers.has(l.info.chainId))) await deps.blobs.adopt(l.info, l.keep, l.sent!)
      }
      for (const l of layers) await deps.distribution.record(l.rec.diffId!, l.sent!.digest, ref.name)
    })
    return { records: records.length, layers: todo.length }
  } finally {
    await staging.dispose()
  }
}

async function getManifest(client: RegistryClient, ref: Reference, signal?: AbortSignal): Promise<CacheManifest> {
  const what = ref.digest ?? ref.tag ?? 'latest'
  let r
  try {
    r = await client.request({ method: 'GET', target: `/v2/${ref.path}/manifests/${what}`, headers: { Accept: MT.ociManifest }, scopes: [pullScope(ref.path)], maxBody: MAX_MANIFEST_BYTES, signal })
  } catch (e) {
    if (e instanceof StrataError && e.code === 'NotFound') throw new StrataError('NotFound', `cache manifest ${ref.familiarString()} not found: ${e.message}`, { cause: e })
    throw e
  }
  const digest = sha(r.body)
  if (ref.digest !== undefined && ref.digest !== digest) throw new StrataError('DigestMismatch', `cache manifest ${ref.familiarString()}: content has digest ${digest}`)
  let m: CacheManifest
  try {
    m = JSON.parse(r.body.toString('utf8')) as CacheManifest
  } catch {
    throw new StrataError('ManifestInvalid', `cache manifest ${ref.familiarString()} is not JSON`)
  }
  if (m?.config?.mediaType !== CACHE_MEDIA || !Array.isArray(m.layers)) {
    throw new StrataError('ManifestInvalid', `${ref.familiarString()} is not a strata build cache (config type ${JSON.stringify(m?.config?.mediaType)})`)
  }
  for (const l of m.layers) {
    if (typeof l?.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(l.digest) || !Number.isSafeInteger(l.size) || l.size < 0 || !/^sha256:[0-9a-f]{64}$/.test(l.annotations?.[DIFFID_ANNOTATION] ?? '')) {
      throw new StrataError('ManifestInvalid', `cache manifest ${ref.familiarString()}: a layer without digest, size or DiffID`)
    }
  }
  return m
}

/** Pulls the records at `ref` (and the layers they need that the store lacks) into the store. */
export async function importRegistryCache(ctx: StoreContext, config: DockerConfig, ref: Reference, signal?: AbortSignal): Promise<{ records: number; layers: number }> {
  const auth = await config.get(keyForRegistry(ref.domain))
  const client = RegistryClient.open(ctx.layout, ref.domain, auth ? registryAuth(auth) : {})
  const manifest = await getManifest(client, ref, signal)
  if (manifest.config.size > MAX_RECORDS_BYTES) throw new StrataError('ManifestInvalid', `cache records of ${ref.familiarString()}: ${manifest.config.size} bytes, more than ${MAX_RECORDS_BYTES}`)
  const cfg = await client.request({ method: 'GET', target: `/v2/${ref.path}/blobs/${manifest.config.digest}`, scopes: [pullScope(ref.path)], maxBody: MAX_RECORDS_BYTES, signal })
  if (sha(cfg.body) !== manifest.config.digest) throw new StrataError('DigestMismatch', `cache records ${manifest.config.digest}: content has digest ${sha(cfg.body)}`)
  let records: CacheRecord[]
  try {
    records = (JSON.parse(cfg.body.toString('utf8')) as { records?: CacheRecord[] }).records ?? []
  } catch {
    throw new StrataError('ManifestInvalid', `cache records of ${ref.familiarString()} are not JSON`)
  }
  if (!Array.isArray(records)) throw new StrataError('ManifestInvalid', `cache records of ${ref.familiarString()}: not a list`)
  const blobOf = new Map(manifest.layers.map((l) => [l.annotations![DIFFID_ANNOTATION], l]))

  // Which records apply here: parents first, each on a layer the store has or this pass brings.
  const available = new Set<ChainId>()
  const have = async (chain: ChainId): Promise<boolean> => available.has(chain) || (await ctx.layers.has(chain))
  const wanted: CacheRecord[] = []
  const plan = new Map<ChainId, PlannedLayer & { desc: CacheManifest['layers'][number] }>()
  for (const r of records) {
    checkRecord(r, `cache ${ref.familiarString()}`)
    if (await ctx.buildCache.get(r.key)) continue
    if (r.parent && !(await have(r.parent))) continue
    if (r.diffId !== null && !(await have(r.chainId))) {
      const desc = blobOf.get(r.diffId)
      if (!desc) continue // a layer the manifest does not carry: the record cannot apply
      plan.set(r.chainId, { chainId: r.chainId, diffId: r.diffId, ...(r.parent ? { parentChainId: r.parent } : {}), desc })
    }
    if (r.diffId !== null) available.add(r.chainId)
    wanted.push(r)
  }

  const staging = await ctx.staging('cache-import')
  const todo = [...plan.values()]
  try {
    if (todo.length > 0) {
      const { cancel, done } = cancelWhile(signal)
      try {
        await pullIntoStaging(ctx, client, ref.path, todo, staging.dir, 'layer', () => undefined, cancel)
      } finally {
        done()
      }
    }
    let imported = 0
    await ctx.exclusive(async () => {
      const registrar = new LayerRegistrar(ctx, (c) => plan.get(c), 'importing the build cache')
      const dist = new Distribution(ctx.layout)
      for (const r of wanted) {
        if (r.parent && !(await ctx.layers.has(r.parent)) && !plan.has(r.parent)) continue
        if (r.diffId !== null) await registrar.layer(r.chainId)
        await ctx.buildCache.put({ ...r })
        imported++
      }
      for (const p of todo) await dist.add(p.diffId, p.desc.digest, ref.name)
    }, signal)
    return { records: imported, layers: todo.length }
  } finally {
    for (const p of todo) if (p.staged?.blob) await fs.rm(p.staged.blob, { force: true })
    await staging.dispose()
  }
}
