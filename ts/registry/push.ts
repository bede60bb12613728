/**
 * `push`: an image (or every tag of a repository) to a registry, as Docker 20.10 does it, faster.
 *
 * Per tag: the layers are prepared (top first, as Docker lists them), then each layer, at most
 * {@link UPLOAD_CONCURRENCY} at a time:
 *  1. a blob digest strata knows for the layer (its preserved compressed blob, or the blob a
 *     previous push compressed) is checked with `HEAD` → `Layer already exists`;
 *  2. else, when the distribution metadata says another repository of the same registry has
 *     one of its blobs, that blob is mounted (`POST ...?mount=&from=`) → `Mounted from REPO`;
 *  3. else it is uploaded → `Pushed`: a preserved blob as it is (its original digest), a layer
 *     strata made itself compressed while it uploads (Rust: tar-split → gzip → sha256 → HTTP in
 *     one pass), and that blob is kept so the next push neither recompresses nor changes digest.
 * Then the config blob, then the manifest by tag (manifests last: a registry never shows a tag
 * whose blobs are missing). The manifest's digest becomes the image's RepoDigest and the
 * distribution metadata learns where each blob now is.
 *
 * Manifest kind: OCI when the image came as OCI (see {@link ImageOrigin}), else Docker schema2
 * (what Docker pushes for every image, committed ones included). The bytes are Docker's
 * serialisation (`json.MarshalIndent` with three spaces), so a pushed image whose blobs are
 * preserved gets the manifest digest Docker would give it.
 *
 * All HTTP is the transport's ({@link PushTransport}, Rust); this module decides what to send.
 * Failures are typed (`Unauthorized`, `NotFound`, `RegistryError` with status and registry code,
 * `DigestMismatch`, `Aborted`); an abort stops uploads and leaves the store as it was.
 */
import { StrataError } from '../errors'
import { Reference } from '../reference'
import { MT } from '../internal/media-types'

/** Docker's `max-concurrent-uploads` default. */
export const UPLOAD_CONCURRENCY = 5

/** How an image came into the store: decides the manifest kind a push uses. */
export type ImageOrigin = 'docker' | 'oci'

/** A progress event of a push (the API's `onProgress`; the CLI prints Docker's lines from them). */
export type PushProgress =
  | { kind: 'tag'; tag: string }
  | {
    kind: 'layer'
    /** 12 hex of the layer's DiffID, as Docker names layers in push output. */
    id: string
    status: 'Preparing' | 'Waiting' | 'Pushing' | 'Pushed' | 'Layer already exists' | 'Mounted from'
    /** The repository a mounted blob came from (`Mounted from` only). */
    from?: string
    /**
     * Bytes sent while `Pushing`, and the blob's size when the blob is kept; for a layer being
     * compressed as it uploads the size is not known yet, and `total` is the layer's content size
     * (Docker's `layer.Size()`, the total Docker's own bar counts against), so the terminal
     * view draws a bar as docker does. (Docker counts the uncompressed bytes it has read; strata
     * counts compressed bytes sent, and shows the whole layer once it is in the registry: the
     * last `Pushing` before `Pushed` has `current` = `total`, see ./push-image.ts.)
     */
    current?: number
    total?: number
  }
  | { kind: 'pushed'; tag: string; digest: string; size: number }

export interface PushOptions {
  /** Push every tag of the repository (`-a`). */
  allTags?: boolean
  onProgress?: (e: PushProgress) => void
  signal?: AbortSignal
}

export interface PushedTag {
  tag: string
  /** The manifest digest: the image's RepoDigest is `NAME@digest`. */
  digest: string
  /** Manifest length in bytes. */
  size: number
}

export interface PushResult {
  /** The repository, fully qualified (`docker.io/library/x`, `localhost:5000/x`). */
  repository: string
  tags: PushedTag[]
}

/** A blob to upload. */
export type BlobToSend =
  /** A blob on disk whose digest and size are known (preserved or remembered). */
  | { kind: 'file'; path: string; digest: string; size: number }
  /**
   * A layer to compress while uploading (the gzip bytes also go to `keep`), or with
   * `uncompressed` its tar as it is (a layer that came uncompressed: blob digest = DiffID).
   */
  | { kind: 'layer'; diffDir: string; tarSplit: string; diffId: string; keep: string; uncompressed?: boolean }
  /** Small bytes (the config). */
  | { kind: 'bytes'; data: Buffer; digest: string }

export interface SentBlob {
  digest: string
  size: number
}

/** The registry operations a push needs, bound to one repository (implemented in Rust). */
export interface PushTransport {
  /** `HEAD` each blob: its size where the repository has it, else null. */
  exists(digests: string[]): Promise<(number | null)[]>
  /** Cross-repository mount: the blob's size once mounted, null when the registry did not mount it (then upload). */
  mount(digest: string, from: string): Promise<number | null>
  /** Uploads blobs in parallel; `onProgress(i, sent, done)` reports blob `i` (done: it is in the registry). */
  upload(blobs: BlobToSend[], onProgress: (i: number, sent: number, done: boolean) => void): Promise<SentBlob[]>
  /** `PUT` the manifest under `reference`; returns the digest the registry gave it (checked). */
  putManifest(reference: string, mediaType: string, body: Buffer): Promise<string>
}

/** One layer of the image being pushed, as the store knows it. */
export interface LayerToPush {
  diffId: string
  /** A compressed blob of this layer kept on disk (pulled, loaded or pushed before), if any. */
  blob?: { path: string; digest: string; size: number; compression: 'gzip' | 'zstd' }
  /** Blob digests the layer is known under, by repository (`host/path`, distribution metadata). */
  candidates: { digest: string; repository: string }[]
  diffDir: string
  tarSplit: string
  /** Bytes of file content in the layer (Docker's layer size). */
  contentSize: number
  /** Where a blob compressed for this push is written (the caller adopts it afterwards). */
  keep: string
}

/** What pushing one tag did, for the caller to record. */
export interface TagPushed extends PushedTag {
  /** Per layer (bottom first): the blob digest it has in the registry now. */
  layerDigests: SentBlob[]
  /** Layers compressed by this push (index → blob), to be remembered. */
  compressed: Map<number, SentBlob>
}

/** `docker push` manifests: Go's `json.MarshalIndent(v, "", "   ")`. */
export function marshalManifest(mediaType: string, config: { mediaType: string; size: number; digest: string }, layers: { mediaType: string; size: number; digest: string }[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config, layers }, null, 3))
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new StrataError('Aborted', 'push aborted')
}

/**
 * Pushes one tag: layers, config, manifest. `emit` is the caller's guarded progress callback.
 * The registry is the same for `ref` and for every `candidates[].repository` it mounts from.
 */
export async function pushTag(
  t: PushTransport,
  ref: Reference,
  tag: string,
  config: { raw: Buffer; id: string },
  layers: LayerToPush[],
  origin: ImageOrigin,
  emit: (e: PushProgress) => void,
  signal?: AbortSignal,
): Promise<TagPushed> {
  const short = (d: string) => d.slice(7, 19)
  emit({ kind: 'tag', tag })
  // Top layer first, as Docker lists them; each DiffID once.
  const seen = new Set<string>()
  for (let i = layers.length - 1; i >= 0; i--) {
    if (seen.has(layers[i].diffId)) continue
    seen.add(layers[i].diffId)
    emit({ kind: 'layer', id: short(layers[i].diffId), status: 'Preparing' })
  }
  const order = layers.map((_, i) => layers.length - 1 - i)
  for (const i of order.slice(UPLOAD_CONCURRENCY)) emit({ kind: 'layer', id: short(layers[i].diffId), status: 'Waiting' })

  const sameRepo = ref.name
  const domainOf = (repo: string) => repo.slice(0, repo.indexOf('/'))
  const results = new Array<SentBlob | undefined>(layers.length)
  const compressed = new Map<number, SentBlob>()

  // 1. Blob digests each layer is known under (its kept blob, or records of this repository): HEAD them.
  const known = layers.map((l) => [...new Set([...(l.blob ? [l.blob.digest] : []), ...l.candidates.filter((c) => c.repository === sameRepo).map((c) => c.digest)])])
  const flat = known.flatMap((ds, i) => ds.map((d) => ({ i, d })))
  const sizes = await t.exists(flat.map((x) => x.d))
  flat.forEach(({ i, d }, k) => {
    if (sizes[k] !== null && results[i] === undefined) results[i] = { digest: d, size: sizes[k]! }
  })
  for (const i of order) if (results[i]) emit({ kind: 'layer', id: short(layers[i].diffId), status: 'Layer already exists' })

  // 2. Mount from another repository of the same registry (candidates newest first).
  throwIfAborted(signal)
  await Promise.all(order.filter((i) => !results[i]).map(async (i) => {
    for (const c of [...layers[i].candidates].reverse()) {
      if (c.repository === sameRepo || domainOf(c.repository) !== ref.domain) continue
      const from = c.repository.slice(ref.domain.length + 1)
      const size = await t.mount(c.digest, from)
      if (size === null) continue
      results[i] = { digest: c.digest, size }
      emit({ kind: 'layer', id: short(layers[i].diffId), status: 'Mounted from', from })
      return
    }
  }))

  // 3. Upload the rest: kept blobs as they are, other layers compressed while they upload.
  throwIfAborted(signal)
  const todo = order.filter((i) => !results[i])
  const blobs: BlobToSend[] = todo.map((i) => {
    const l = layers[i]
    if (l.blob) return { kind: 'file', path: l.blob.path, digest: l.blob.digest, size: l.blob.size }
    // A layer a registry had uncompressed keeps that form, and so its digest (its DiffID).
    const cameUncompressed = l.candidates.some((c) => c.digest === l.diffId)
    return { kind: 'layer', diffDir: l.diffDir, tarSplit: l.tarSplit, diffId: l.diffId, keep: l.keep, ...(cameUncompressed ? { uncompressed: true } : {}) }
  })
  if (blobs.length > 0) {
    const sent = await t.upload(blobs, (k, n, done) => {
      const l = layers[todo[k]]
      const total = l.blob?.size ?? l.contentSize
      emit(done
        ? { kind: 'layer', id: short(l.diffId), status: 'Pushed' }
        : { kind: 'layer', id: short(l.diffId), status: 'Pushing', current: n, total })
    })
    sent.forEach((b, k) => {
      results[todo[k]] = b
      if (!layers[todo[k]].blob && b.digest !== layers[todo[k]].diffId) compressed.set(todo[k], b)
    })
  }

  // Config blob.
  throwIfAborted(signal)
  const [configSize] = await t.exists([config.id])
  if (configSize === null) await t.upload([{ kind: 'bytes', data: config.raw, digest: config.id }], () => undefined)

  // Manifest, last.
  const oci = origin === 'oci' || layers.some((l, i) => l.blob?.compression === 'zstd' && l.blob.digest === results[i]!.digest)
  // A blob's media type follows its bytes: uncompressed when its digest is the DiffID, the kept
  // blob's compression when it is that blob, else gzip (what Docker assumes of a digest it
  // mounts; strata only records gzip, zstd and uncompressed blobs, and keeps every zstd one).
  const layerMt = (i: number) => {
    const d = results[i]!.digest
    if (d === layers[i].diffId) return oci ? MT.ociLayerTar : MT.dockerLayerTar
    if (layers[i].blob?.digest === d && layers[i].blob?.compression === 'zstd') return MT.ociLayerZstd
    return oci ? MT.ociLayerGzip : MT.dockerLayerGzip
  }
  const manifestType = oci ? MT.ociManifest : MT.dockerManifest
  const body = marshalManifest(
    manifestType,
    { mediaType: oci ? MT.ociConfig : MT.dockerConfig, size: config.raw.length, digest: config.id },
    results.map((r, i) => ({ mediaType: layerMt(i), size: r!.size, digest: r!.digest })),
  )
  throwIfAborted(signal)
  const digest = await t.putManifest(tag, manifestType, body)
  emit({ kind: 'pushed', tag, digest, size: body.length })
  return { tag, digest, size: body.length, layerDigests: results as SentBlob[], compressed }
}
