/**
 * The image db: image configs by ID (`imagedb/content/sha256/<id>`, bytes as received, so the ID —
 * the sha256 of those bytes — stays verifiable) and per-image metadata (`parent`, `lastUpdated`).
 */
import { fsp as fs } from './lazy'
import { sha256 } from './sha256'
import path = require('node:path')
import { Layout, hex, IMAGE_META_FILE } from './layout'
import { exists, listDir, readBytesIfExists, readIfExists, writeAtomic } from './fsx'
import type { MetaWrites } from './metawrites'
import { StrataError } from '../errors'
import type { DiffId } from './chain'

/** The parts of an OCI/Docker image config strata reads. Unknown fields are kept in the raw bytes. */
export interface ImageConfig {
  architecture?: string
  os?: string
  variant?: string
  created?: string
  author?: string
  comment?: string
  container?: string
  docker_version?: string
  config?: ContainerConfig | null
  container_config?: ContainerConfig | null
  rootfs: { type: string; diff_ids: DiffId[] }
  history?: HistoryEntry[]
  [k: string]: unknown
}

export interface ContainerConfig {
  Hostname?: string
  Domainname?: string
  User?: string
  ExposedPorts?: Record<string, object> | null
  Env?: string[] | null
  Entrypoint?: string[] | null
  Cmd?: string[] | null
  Volumes?: Record<string, object> | null
  WorkingDir?: string
  Labels?: Record<string, string> | null
  StopSignal?: string
  OnBuild?: string[] | null
  [k: string]: unknown
}

export interface HistoryEntry {
  created?: string
  created_by?: string
  author?: string
  comment?: string
  empty_layer?: boolean
}

export interface StoredImage {
  id: string
  raw: Buffer
  config: ImageConfig
}

export function imageIdOf(configBytes: Uint8Array): string {
  return sha256(configBytes)
}

/** Parses and checks a config: it must have `rootfs.diff_ids` of valid digests. */
export function parseConfig(raw: Uint8Array, where: string): ImageConfig {
  let c: ImageConfig
  try {
    c = JSON.parse(Buffer.from(raw).toString('utf8')) as ImageConfig
  } catch (e) {
    throw new StrataError('CorruptArchive', `${where}: image config is not valid JSON: ${(e as Error).message}`)
  }
  if (!c || typeof c !== 'object' || !c.rootfs || !Array.isArray(c.rootfs.diff_ids)) {
    throw new StrataError('CorruptArchive', `${where}: image config has no rootfs.diff_ids`)
  }
  for (const d of c.rootfs.diff_ids) {
    if (typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d)) {
      throw new StrataError('CorruptArchive', `${where}: invalid diff_id ${JSON.stringify(d)}`)
    }
  }
  return c
}

export class ImageDb {
  constructor(private readonly layout: Layout) {}

  async get(id: string): Promise<StoredImage | undefined> {
    const raw = await readBytesIfExists(this.layout.imageConfig(id))
    return raw && { id, raw, config: parseConfig(raw, id) }
  }

  async has(id: string): Promise<boolean> {
    return exists(this.layout.imageConfig(id))
  }

  async ids(): Promise<string[]> {
    return (await listDir(this.layout.imagedbContent)).filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`)
  }

  async all(): Promise<StoredImage[]> {
    const out: StoredImage[] = []
    for (const id of await this.ids()) {
      const img = await this.get(id)
      if (img) out.push(img)
    }
    return out
  }

  /** Stores config bytes (the moment the image exists). Caller holds the store lock. */
  async put(raw: Uint8Array): Promise<string> {
    const id = imageIdOf(raw)
    if (!(await this.has(id))) await writeAtomic(this.layout.imageConfig(id), raw)
    return id
  }

  /**
   * Stages config bytes into `w` when the store lacks them, then a barrier: what `w` stages
   * after (tags naming the image) is renamed into place only once the config is on disk.
   * Caller holds the store lock; returns the image ID.
   */
  async stage(w: MetaWrites, raw: Uint8Array): Promise<string> {
    const id = imageIdOf(raw)
    if (await this.has(id)) return id
    const written = w.put(this.layout.imageConfig(id), raw)
    w.barrier()
    await written
    return id
  }

  /** Deletes the config first (the image is gone), then its metadata. */
  async delete(id: string): Promise<void> {
    await fs.rm(this.layout.imageConfig(id), { force: true })
    await fs.rm(this.layout.imageMeta(id), { recursive: true, force: true })
  }

  async parent(id: string): Promise<string | undefined> {
    return (await readIfExists(path.join(this.layout.imageMeta(id), IMAGE_META_FILE.parent)))?.trim() || undefined
  }

  /** Stages the image's parent (commit's image: the container's image) into `w`. */
  async setParent(w: MetaWrites, id: string, parent: string): Promise<void> {
    await w.mkdir(this.layout.imageMeta(id))
    await w.put(path.join(this.layout.imageMeta(id), IMAGE_META_FILE.parent), parent)
  }

  async lastUpdated(id: string): Promise<string | undefined> {
    return (await readIfExists(path.join(this.layout.imageMeta(id), IMAGE_META_FILE.lastUpdated)))?.trim() || undefined
  }

  /** Stages the image's `lastUpdated` (Docker's LastTagTime) into `w`. */
  async touch(w: MetaWrites, id: string, when = new Date()): Promise<void> {
    await w.mkdir(this.layout.imageMeta(id))
    await w.put(path.join(this.layout.imageMeta(id), IMAGE_META_FILE.lastUpdated), when.toISOString())
  }

  /**
   * The media type of the manifest the image came with (`media-type` in its metadata dir),
   * written by pull and by the load of an OCI layout; push uses OCI manifests for OCI images.
   */
  async origin(id: string): Promise<string | undefined> {
    return (await readIfExists(path.join(this.layout.imageMeta(id), 'media-type')))?.trim() || undefined
  }

  /** Records the manifest media type an image came with (caller holds the store lock). */
  async setOrigin(id: string, mediaType: string): Promise<void> {
    await fs.mkdir(this.layout.imageMeta(id), { recursive: true })
    await writeAtomic(path.join(this.layout.imageMeta(id), 'media-type'), mediaType)
  }

  /** Image IDs starting with `prefix` (hex, with or without `sha256:`). */
  async byPrefix(prefix: string): Promise<string[]> {
    const p = hex(prefix.toLowerCase())
    return (await this.ids()).filter((id) => hex(id).startsWith(p))
  }
}
