/**
 * Reads what an archive says it holds: docker-archive `manifest.json` (legacy `<id>/layer.tar`
 * form and the Docker ≥25 `blobs/sha256` form) or an OCI image layout (`index.json`, nested
 * indexes, manifests). Every blob named by digest is checked against that digest when read.
 */
import { ArchiveSource } from './source'
import { StrataError } from '../errors'
import { crypto } from '../internal/lazy'
import { MT, INDEX_TYPES } from '../internal/media-types'

export interface ArchiveLayerRef {
  /** Member name of the layer blob. */
  name: string
  /** sha256 of the blob, when the archive names it by digest. */
  digest?: string
}

export interface ArchiveImage {
  configName: string
  configDigest?: string
  layers: ArchiveLayerRef[]
  /** References to tag, as written in the archive (familiar or full). */
  tags: string[]
  /** The manifest media type of an image from an OCI layout (a docker-archive has none). */
  manifestMediaType?: string
}

function digestOfBlobName(name: string): string | undefined {
  const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name.replace(/^\.\//, ''))
  return m ? `sha256:${m[1]}` : undefined
}

function blobName(digest: unknown): string {
  if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) {
    throw new StrataError('CorruptArchive', `invalid or unsupported digest ${JSON.stringify(digest)}`)
  }
  return `blobs/sha256/${digest.slice(7)}`
}

/** Reads a blob named by digest and checks it. */
export async function readVerified(src: ArchiveSource, digest: string): Promise<Buffer> {
  const data = await src.read(blobName(digest))
  const found = `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`
  if (found !== digest) throw new StrataError('DigestMismatch', `blob ${digest}: content has digest ${found}`)
  return data
}

function parseJson(buf: Buffer, what: string): unknown {
  try {
    return JSON.parse(buf.toString('utf8'))
  } catch (e) {
    throw new StrataError('CorruptArchive', `${what} is not valid JSON: ${(e as Error).message}`)
  }
}

export async function readArchiveImages(src: ArchiveSource): Promise<ArchiveImage[]> {
  if (await src.has('manifest.json')) return dockerArchive(src)
  if (await src.has('index.json')) return ociLayout(src)
  throw new StrataError('UnsupportedArchive', `${src.description}: neither a docker-archive (manifest.json) nor an OCI image layout (index.json)`)
}

async function dockerArchive(src: ArchiveSource): Promise<ArchiveImage[]> {
  const manifest = parseJson(await src.read('manifest.json'), 'manifest.json')
  if (!Array.isArray(manifest)) throw new StrataError('CorruptArchive', 'manifest.json is not a list')
  return manifest.map((e: { Config?: unknown; RepoTags?: unknown; Layers?: unknown }, i) => {
    if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw new StrataError('CorruptArchive', `manifest.json entry ${i} lacks Config or Layers`)
    }
    const tags = Array.isArray(e.RepoTags) ? e.RepoTags.filter((t): t is string => typeof t === 'string') : []
    return {
      configName: e.Config,
      configDigest: digestOfBlobName(e.Config),
      layers: (e.Layers as string[]).map((name) => ({ name, digest: digestOfBlobName(name) })),
      tags,
    }
  })
}

interface Descriptor { mediaType?: string; digest?: string; annotations?: Record<string, string> }

async function ociLayout(src: ArchiveSource): Promise<ArchiveImage[]> {
  const index = parseJson(await src.read('index.json'), 'index.json') as { manifests?: Descriptor[] }
  if (!index || !Array.isArray(index.manifests)) throw new StrataError('CorruptArchive', 'index.json has no manifests')
  const out: ArchiveImage[] = []
  const walk = async (descs: Descriptor[], depth: number, inherited: string[]): Promise<void> => {
    if (depth > 4) throw new StrataError('CorruptArchive', 'OCI index nesting too deep')
    for (const d of descs) {
      const tags = [...inherited]
      const full = d.annotations?.['io.containerd.image.name']
      const refName = d.annotations?.['org.opencontainers.image.ref.name']
      if (full) tags.push(full)
      else if (refName && /[/:]/.test(refName)) tags.push(refName)
      const doc = parseJson(await readVerified(src, d.digest as string), `blob ${d.digest}`) as {
        mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[]
      }
      const mediaType = d.mediaType ?? doc.mediaType
      if ((mediaType && INDEX_TYPES.includes(mediaType)) || Array.isArray(doc.manifests)) {
        await walk(doc.manifests ?? [], depth + 1, tags)
        continue
      }
      if (!doc.config || !Array.isArray(doc.layers)) throw new StrataError('CorruptArchive', `manifest ${d.digest} lacks config or layers`)
      out.push({
        configName: blobName(doc.config.digest),
        configDigest: doc.config.digest,
        layers: doc.layers.map((l) => ({ name: blobName(l.digest), digest: l.digest })),
        tags,
        manifestMediaType: mediaType ?? MT.ociManifest,
      })
    }
  }
  await walk(index.manifests, 0, [])
  return out
}
