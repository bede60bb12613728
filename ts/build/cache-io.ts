/**
 * `--cache-to type=local,dest=DIR` / `--cache-from type=local,src=DIR`: a build's cache
 * records and their layers as an OCI image layout, to carry a cache to another store.
 *
 * ```
 * DIR/oci-layout                 {"imageLayoutVersion":"1.0.0"}
 * DIR/index.json                 one manifest, annotated org.opencontainers.image.ref.name=strata-build-cache
 * DIR/blobs/sha256/<manifest>    an OCI manifest: config = the records, layers = their layer tars
 * DIR/blobs/sha256/<config>      application/vnd.strata.build.cache.v1+json:
 *                                {"records":[{key, parent, chainId, diffId, size, created, createdBy,
 *                                  description}, ...]} in build order (parents first)
 * DIR/blobs/sha256/<diffId>      each cached layer as an uncompressed tar (its digest is its DiffID)
 * ```
 *
 * Keys are content addresses (./cache.ts), so the records mean the same in the importing
 * store. Importing registers each layer whose parent layer the store has (the base image's
 * layers must be there already; cached layers arrive parents first) and writes the record;
 * a record whose parent is missing is skipped. Exporting merges into an existing layout.
 */
import { fsp as fs } from '../internal/lazy'
import * as path from 'node:path'
import { sha256 } from '../internal/sha256'
import { StoreContext } from '../internal/context'
import { native } from '../internal/native'
import { call, StrataError } from '../errors'
import { DIFF_DIR, hex } from '../internal/layout'
import { MT } from '../internal/media-types'
import { CacheRecord } from './cache'
import { asDiffId, chainIdOf } from '../internal/chain'

/**
 * What a `--cache-to` exports (BuildKit's `mode`): `min` (its default), the records of the
 * steps whose layers are in the built image — the target stage and the stages it stands on
 * through `FROM <stage>` —; `max`, the records of every step the build ran or hit, the other
 * stages' (`COPY --from` sources) too. Ignored on import.
 */
export type CacheMode = 'min' | 'max'

/** Where a cache goes to or comes from: an OCI layout directory, or a registry (./cache-registry.ts). */
export type CacheSpec =
  | { type: 'local'; /** The layout directory. */ dir: string; mode?: CacheMode }
  | { type: 'registry'; /** `host/name:tag` of the cache manifest. */ ref: string; mode?: CacheMode }

export const CACHE_MEDIA = MT.buildCache
const LAYER_MEDIA = MT.ociLayerTar
const REF_NAME = 'strata-build-cache'

/**
 * `type=local,dest=DIR` / `type=local,src=DIR`, `type=registry,ref=REF` (docker's `--cache-to` /
 * `--cache-from` syntax; a bare `REF` for `--cache-from` is a registry ref, as in BuildKit).
 */
export function parseCacheSpec(s: string, direction: 'from' | 'to'): CacheSpec {
  const fields = new Map<string, string>()
  if (direction === 'from' && !s.includes('=') && s.trim() !== '') return { type: 'registry', ref: s.trim() }
  for (const part of s.split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) throw new StrataError('InvalidArgument', `invalid cache ${direction === 'to' ? 'export' : 'import'} spec ${JSON.stringify(s)}: want type=local,${direction === 'to' ? 'dest' : 'src'}=DIR or type=registry,ref=REF`)
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim())
  }
  const type = fields.get('type') ?? 'local'
  // BuildKit's export modes, min when not given (its default); an import ignores the field, as BuildKit's importers do.
  const mode = fields.get('mode')
  if (direction === 'to' && mode !== undefined && mode !== 'min' && mode !== 'max') {
    throw new StrataError('InvalidArgument', `cache spec ${JSON.stringify(s)}: invalid cache mode: ${mode} (min, max)`)
  }
  const exportMode = direction === 'to' ? { mode: (mode ?? 'min') as CacheMode } : {}
  if (type === 'registry') {
    const ref = fields.get('ref')
    if (!ref) throw new StrataError('InvalidArgument', `cache spec ${JSON.stringify(s)} needs ref=NAME:TAG`)
    return { type: 'registry', ref, ...exportMode }
  }
  if (type !== 'local') throw new StrataError('InvalidArgument', `unsupported cache type ${JSON.stringify(type)} (local, registry)`)
  const dir = fields.get(direction === 'to' ? 'dest' : 'src')
  if (!dir) throw new StrataError('InvalidArgument', `cache spec ${JSON.stringify(s)} needs ${direction === 'to' ? 'dest' : 'src'}=DIR`)
  return { type: 'local', dir: path.resolve(dir), ...exportMode }
}

function sha(b: Buffer | string): string {
  return sha256(b)
}

async function readJson<T>(p: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(p, 'utf8')) as T
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new StrataError('CorruptArchive', `cache layout: ${p}: ${(e as Error).message}`)
  }
}

interface Manifest { config: { digest: string }; layers: { digest: string }[] }

async function readLayout(dir: string): Promise<{ records: CacheRecord[]; manifestDigest?: string }> {
  const index = await readJson<{ manifests?: { digest: string; annotations?: Record<string, string> }[] }>(path.join(dir, 'index.json'))
  const m = index?.manifests?.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === REF_NAME)
  if (!m) return { records: [] }
  const manifest = await readJson<Manifest>(path.join(dir, 'blobs', 'sha256', hex(m.digest)))
  if (!manifest) throw new StrataError('CorruptArchive', `cache layout ${dir}: manifest ${m.digest} missing`)
  const cfg = await readJson<{ records?: CacheRecord[] }>(path.join(dir, 'blobs', 'sha256', hex(manifest.config.digest)))
  return { records: cfg?.records ?? [], manifestDigest: m.digest }
}

async function writeBlob(dir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha(data)
  const p = path.join(dir, 'blobs', 'sha256', hex(digest))
  await fs.writeFile(`${p}.tmp`, data)
  await fs.rename(`${p}.tmp`, p)
  return { digest, size: data.length }
}

/**
 * A record read from elsewhere: a well-formed key, and a ChainID that follows from its parent and
 * DiffID (so a record can never attach a layer under a name it does not have).
 */
export function checkRecord(r: CacheRecord, where: string): void {
  if (typeof r?.key !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(r.key)) throw new StrataError('CorruptArchive', `${where}: bad record key`)
  if (typeof r.parent !== 'string' || typeof r.chainId !== 'string' || (r.diffId !== null && typeof r.diffId !== 'string')) throw new StrataError('CorruptArchive', `${where}: record ${r.key} is malformed`)
  if (r.diffId !== null) {
    const expected = chainIdOf(r.parent || undefined, r.diffId)
    if (r.chainId !== expected) throw new StrataError('CorruptArchive', `cache record ${r.key}: chain ${r.chainId} does not follow from ${r.parent} + ${r.diffId}`)
  }
}

/** Writes the records `keys` (and their layers) into the layout at `spec.dir`. */
export async function exportCache(ctx: StoreContext, keys: string[], spec: { dir: string }): Promise<{ records: number; layers: number }> {
  await fs.mkdir(path.join(spec.dir, 'blobs', 'sha256'), { recursive: true })
  const existing = await readLayout(spec.dir)
  const byKey = new Map(existing.records.map((r) => [r.key, r]))
  const records: CacheRecord[] = [...existing.records]
  for (const k of keys) {
    if (byKey.has(k)) continue
    const r = await ctx.buildCache.get(k)
    if (!r) continue
    byKey.set(k, r)
    records.push(r)
  }
  let written = 0
  const layers: { mediaType: string; digest: string; size: number }[] = []
  const seen = new Set<string>()
  for (const r of records) {
    if (r.diffId === null || seen.has(r.diffId)) continue
    seen.add(r.diffId)
    const blob = path.join(spec.dir, 'blobs', 'sha256', hex(r.diffId))
    const have = await fs.stat(blob).catch(() => undefined)
    if (!have) {
      const l = await ctx.layers.must(r.chainId)
      await call(() => native.writeLayerFile(ctx.layers.diffDir(l), ctx.layers.tarSplitPath(r.chainId), `${blob}.tmp`, r.diffId))
      await fs.rename(`${blob}.tmp`, blob)
      written++
    }
    layers.push({ mediaType: LAYER_MEDIA, digest: r.diffId, size: (await fs.stat(blob)).size })
  }
  const config = await writeBlob(spec.dir, Buffer.from(JSON.stringify({ records })))
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MT.ociManifest,
    config: { mediaType: CACHE_MEDIA, digest: config.digest, size: config.size }, layers,
  }))
  const m = await writeBlob(spec.dir, manifest)
  await fs.writeFile(path.join(spec.dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  const index = { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [{ mediaType: MT.ociManifest, digest: m.digest, size: m.size, annotations: { 'org.opencontainers.image.ref.name': REF_NAME } }] }
  await fs.writeFile(path.join(spec.dir, 'index.json.tmp'), JSON.stringify(index))
  await fs.rename(path.join(spec.dir, 'index.json.tmp'), path.join(spec.dir, 'index.json'))
  // Blobs of an older manifest nothing names any more.
  if (existing.manifestDigest && existing.manifestDigest !== m.digest) await fs.rm(path.join(spec.dir, 'blobs', 'sha256', hex(existing.manifestDigest)), { force: true })
  return { records: records.length, layers: written }
}

/** Brings the layout's records (and the layers they need) into the store. */
export async function importCache(ctx: StoreContext, spec: { dir: string }): Promise<{ records: number; layers: number }> {
  const st = await fs.stat(spec.dir).catch(() => undefined)
  if (!st?.isDirectory()) throw new StrataError('InvalidArgument', `cache import: ${spec.dir} is not a directory`)
  const { records } = await readLayout(spec.dir)
  let imported = 0
  let layers = 0
  const staging = await ctx.staging('cache-import')
  try {
    for (const r of records) {
      checkRecord(r, `cache layout ${spec.dir}`)
      if (await ctx.buildCache.get(r.key)) continue
      if (r.diffId !== null) {
        if (r.parent && !(await ctx.layers.has(r.parent))) continue
        if (!(await ctx.layers.has(r.chainId))) {
          const blob = path.join(spec.dir, 'blobs', 'sha256', hex(r.diffId))
          const dir = path.join(staging.dir, hex(r.diffId).slice(0, 16))
          await fs.mkdir(dir)
          const size = (await fs.stat(blob)).size
          // The tar-split lies beside the layer dir: registering renames the dir away first.
          const tarSplit = `${dir}.tar-split.json.gz`
          const [res] = await call(() => native.applyLayers([{ blobPath: blob, offset: 0, length: size, dest: path.join(dir, DIFF_DIR), tarSplit, expectedDiffId: r.diffId }]))
          await ctx.exclusive(async () => {
            const parent = r.parent ? await ctx.layers.must(r.parent) : undefined
            await ctx.layers.register({ dir, tarSplit, diffId: asDiffId(res.diffId), size: res.size }, r.chainId, parent)
          })
          layers++
        }
      } else if (r.parent && !(await ctx.layers.has(r.parent))) continue
      await ctx.exclusive(() => ctx.buildCache.put({ key: r.key, parent: r.parent, chainId: r.chainId, diffId: r.diffId, size: r.size, created: r.created, createdBy: r.createdBy, description: r.description }))
      imported++
    }
  } finally {
    await staging.dispose()
  }
  return { records: imported, layers }
}
