/**
 * Manifests as registries serve them: Docker schema 2 and OCI image manifests, Docker manifest
 * lists and OCI indexes (resolved to one platform; attestation entries skipped), schema 1
 * (recognised only to be refused, as Docker now does). Everything is validated before use: a
 * manifest that is not what it claims is `ManifestInvalid`.
 */
import { StrataError } from '../errors'
import { goArch } from '../internal/platform'
import { MT, LAYER_TYPES } from '../internal/media-types'

/** What a pull asks for, most wanted first (schema 1 only to recognise and refuse it). */
export const MANIFEST_ACCEPT = [MT.dockerManifest, MT.dockerList, MT.ociIndex, MT.ociManifest, MT.schema1Signed, MT.schema1].join(', ')

/** Manifests larger than this are refused (Docker's and containerd's limit). */
export const MAX_MANIFEST_BYTES = 4 << 20

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform
  annotations?: Record<string, string>
}

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

export interface ImageManifest {
  kind: 'manifest'
  mediaType: string
  config: Descriptor
  layers: Descriptor[]
}

export interface ManifestIndex {
  kind: 'index'
  mediaType: string
  manifests: Descriptor[]
}

function invalid(message: string): never {
  throw new StrataError('ManifestInvalid', message)
}

const DIGEST = /^sha256:[0-9a-f]{64}$/

function descriptor(v: unknown, where: string): Descriptor {
  const d = v as Record<string, unknown>
  if (!d || typeof d !== 'object') invalid(`${where}: not a descriptor`)
  if (typeof d.digest !== 'string' || !DIGEST.test(d.digest)) invalid(`${where}: invalid or unsupported digest ${JSON.stringify(d.digest)}`)
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) invalid(`${where}: invalid size ${JSON.stringify(d.size)}`)
  if (d.mediaType !== undefined && typeof d.mediaType !== 'string') invalid(`${where}: invalid mediaType`)
  const out: Descriptor = { mediaType: (d.mediaType as string | undefined) ?? '', digest: d.digest, size: d.size }
  const p = d.platform as Record<string, unknown> | undefined
  if (p && typeof p === 'object' && typeof p.os === 'string' && typeof p.architecture === 'string') {
    out.platform = { os: p.os, architecture: p.architecture, ...(typeof p.variant === 'string' && p.variant ? { variant: p.variant } : {}) }
  }
  if (d.annotations && typeof d.annotations === 'object') out.annotations = d.annotations as Record<string, string>
  return out
}

/** The refusal Docker gives for schema 1 images. */
export function schema1Message(ref: string): string {
  return `[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support is disabled by default and will be removed in an upcoming release. Suggest the author of ${ref} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/`
}

/** Parses and validates a manifest or index; `contentType` is the response's Content-Type. */
export function parseManifest(body: Buffer, contentType: string | undefined, ref: string): ImageManifest | ManifestIndex {
  let doc: Record<string, unknown>
  try {
    doc = JSON.parse(body.toString('utf8')) as Record<string, unknown>
  } catch (e) {
    invalid(`manifest for ${ref} is not JSON: ${(e as Error).message.slice(0, 200)}`)
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) invalid(`manifest for ${ref} is not a JSON object`)
  const ct = (contentType ?? '').split(';')[0].trim()
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : ct
  if (doc.schemaVersion === 1 || mediaType === MT.schema1 || mediaType === MT.schema1Signed) {
    throw new StrataError('UnsupportedManifest', schema1Message(ref))
  }
  if (doc.schemaVersion !== 2) invalid(`manifest for ${ref} has unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)}`)
  if (Array.isArray(doc.manifests) || mediaType === MT.dockerList || mediaType === MT.ociIndex) {
    if (!Array.isArray(doc.manifests)) invalid(`index for ${ref} has no manifests`)
    return { kind: 'index', mediaType, manifests: doc.manifests.map((m, i) => descriptor(m, `index entry ${i}`)) }
  }
  if (mediaType && mediaType !== MT.dockerManifest && mediaType !== MT.ociManifest) invalid(`manifest for ${ref} has unsupported media type ${mediaType}`)
  if (!Array.isArray(doc.layers)) invalid(`manifest for ${ref} has no layers`)
  const config = descriptor(doc.config, 'config')
  const layers = doc.layers.map((l, i) => descriptor(l, `layer ${i}`))
  for (const [i, l] of layers.entries()) {
    if (l.mediaType && !LAYER_TYPES.includes(l.mediaType)) invalid(`layer ${i} of ${ref} has unsupported media type ${l.mediaType}`)
  }
  return { kind: 'manifest', mediaType: mediaType || MT.dockerManifest, config, layers }
}

/** The host's platform as images name it (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`). */
export function hostPlatform(): Platform {
  const arch = goArch()
  const variant = arch === 'arm64' ? 'v8' : arch === 'arm' ? `v${(process.config.variables as { arm_version?: string }).arm_version ?? '7'}` : undefined
  return { os: process.platform === 'win32' ? 'windows' : process.platform, architecture: arch, ...(variant ? { variant } : {}) }
}

/** Parses `os/arch[/variant]` (`--platform`), normalised as containerd does for arm64. */
export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/')
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    throw new StrataError('InvalidArgument', `"${s}": unknown operating system or architecture: invalid argument`)
  }
  let [os, architecture, variant] = parts
  if (architecture === 'x86_64' || architecture === 'x86-64') architecture = 'amd64'
  if (architecture === 'aarch64') architecture = 'arm64'
  if (architecture === 'arm64' && (variant === undefined || variant === '8')) variant = 'v8'
  return { os, architecture, ...(variant ? { variant } : {}) }
}

export function platformString(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`
}

function normalVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === 'v8')) return 'v8'
  return p.variant
}

/** Is the entry an attestation (BuildKit's provenance/SBOM manifests), not an image? */
export function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown')
}

/**
 * The index entry for `want`: same OS and architecture, the exact variant preferred, else an
 * entry without variant; attestations never. Throws `NotFound` with Docker's message.
 */
export function selectPlatform(index: ManifestIndex, want: Platform): Descriptor {
  const candidates = index.manifests.filter((d) => !isAttestation(d) && d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture)
  const wantVariant = normalVariant(want)
  const exact = candidates.find((d) => normalVariant(d.platform!) === wantVariant)
  const loose = candidates.find((d) => d.platform!.variant === undefined)
  const found = exact ?? (wantVariant === undefined ? candidates[0] : loose)
  if (!found) throw new StrataError('NotFound', `no matching manifest for ${platformString(want)} in the manifest list entries`)
  return found
}
