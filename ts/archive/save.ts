/**
 * `save`: images → a docker-archive (Docker ≥25 form: an OCI layout plus `manifest.json`, which
 * both `docker load` and OCI tools read) or a pure OCI image layout (`format: 'oci'`), as a tar or
 * a directory. Layer tars are rebuilt from `diff/` + tar-split, bit for bit the tars that were
 * loaded, and checked against their DiffIDs while written. Output appears atomically.
 *
 * What to write is worked out under the shared store lock, which also takes a lease on the layers
 * (../internal/leases.ts); the archive is then written without the lock, so a long save holds up no writer,
 * and an rmi meanwhile (of this process or another) leaves the layers until the save is done.
 * When the store's disk has no room for the lease file, the archive is written under the shared
 * lock instead (an rmi then waits for the save).
 * Aborting rejects with `Aborted` at once; a partial output is removed.
 */
import path = require('node:path')
import type { Writable } from 'node:stream'
import { StoreContext } from '../internal/context'
import { Operation } from '../internal/operation'
import { copyToStream } from '../internal/streams'
import { leaseIfRoom } from '../internal/leases'
import { native } from '../internal/native'
import { call, StrataError } from '../errors'
import { resolveImage, refKey } from '../internal/tags'
import { chainIdsOf, type ChainId } from '../internal/chain'
import { parseNormalizedNamed } from '../reference'
import { hex } from '../internal/layout'
import { MT } from '../internal/media-types'
import { randomHex } from '../internal/fsx'
import { fsp as fs, crypto } from '../internal/lazy'

export type SaveFormat = 'docker' | 'oci'

export interface SaveOptions {
  format?: SaveFormat
  /** Aborting rejects with `Aborted` at once; a partial output file or directory is removed. */
  signal?: AbortSignal
}


interface Member {
  name: string
  data?: Buffer
  layer?: { diffDir: string; tarSplit: string; diffId: string }
}

function sha(data: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`
}

/** Which images, under which tags: a repo without tag means all its tags; an ID means no tag. */
async function selectImages(ctx: StoreContext, names: string[]): Promise<Map<string, string[]>> {
  const chosen = new Map<string, string[]>()
  const repos = await ctx.repos.read()
  for (const n of names) {
    let repoOnly: string | undefined
    try {
      const r = parseNormalizedNamed(n)
      if (r.tag === undefined && r.digest === undefined && repos[r.familiarName]) repoOnly = r.familiarName
    } catch {
      /* an ID */
    }
    if (repoOnly) {
      for (const [k, id] of Object.entries(repos[repoOnly])) {
        if (k.includes('@')) continue
        chosen.set(id, [...new Set([...(chosen.get(id) ?? []), k])])
      }
      continue
    }
    const { id, ref } = await resolveImage(ctx, n)
    const tags = chosen.get(id) ?? []
    if (ref && ref.digest === undefined) tags.push(refKey(ref))
    chosen.set(id, [...new Set(tags)])
  }
  return chosen
}

/** The members of the archive; the caller holds the store lock. */
export async function buildMembers(ctx: StoreContext, names: string[], format: SaveFormat): Promise<Member[]> {
  return (await planArchive(ctx, names, format)).members
}

/** The members of the archive, and the images and layers (ChainIDs) they come from. */
async function planArchive(ctx: StoreContext, names: string[], format: SaveFormat): Promise<{ members: Member[]; images: string[]; layers: ChainId[] }> {
  if (names.length === 0) throw new StrataError('InvalidArgument', 'save needs at least one image')
  const chosen = await selectImages(ctx, names)
  const layers: ChainId[] = []
  const blobs = new Map<string, Member>()
  const manifestJson: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = []
  const index: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] = []
  for (const [id, tags] of chosen) {
    const img = await ctx.images.get(id)
    if (!img) throw new StrataError('ImageNotFound', `No such image: ${id}`)
    const configName = `blobs/sha256/${hex(id)}`
    blobs.set(configName, { name: configName, data: img.raw })
    const layerDescs: { mediaType: string; digest: string; size: number }[] = []
    const layerNames: string[] = []
    const diffIds = img.config.rootfs.diff_ids
    const chain = chainIdsOf(diffIds)
    layers.push(...chain)
    for (let i = 0; i < chain.length; i++) {
      const l = await ctx.layers.must(chain[i])
      const name = `blobs/sha256/${hex(l.diffId)}`
      const tarSplit = ctx.layers.tarSplitPath(l.chainId)
      const size = await call(() => native.assembledSize(tarSplit))
      if (!blobs.has(name)) blobs.set(name, { name, layer: { diffDir: ctx.layout.diffDir(l.cacheId), tarSplit, diffId: l.diffId } })
      layerDescs.push({ mediaType: MT.ociLayerTar, digest: l.diffId, size })
      layerNames.push(name)
    }
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: id, size: img.raw.length },
      layers: layerDescs,
    }))
    const mDigest = sha(manifest)
    blobs.set(`blobs/sha256/${hex(mDigest)}`, { name: `blobs/sha256/${hex(mDigest)}`, data: manifest })
    if (tags.length === 0) index.push({ mediaType: MT.ociManifest, digest: mDigest, size: manifest.length })
    for (const t of tags) {
      const r = parseNormalizedNamed(t)
      index.push({
        mediaType: MT.ociManifest, digest: mDigest, size: manifest.length,
        annotations: { 'io.containerd.image.name': r.string(), 'org.opencontainers.image.ref.name': r.tag ?? 'latest' },
      })
    }
    manifestJson.push({ Config: configName, RepoTags: tags.length ? tags : null, Layers: layerNames })
  }
  const members: Member[] = [...blobs.values()]
  members.push({ name: 'index.json', data: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: index })) })
  if (format === 'docker') members.push({ name: 'manifest.json', data: Buffer.from(JSON.stringify(manifestJson)) })
  members.push({ name: 'oci-layout', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) })
  return { members, images: [...chosen.keys()], layers: [...new Set(layers)] }
}

/** Writes the archive to `output`: a file path (tar), a directory path (OCI layout dir, `format: 'oci'`), or a stream. */
export function save(ctx: StoreContext, names: string[], output: string | Writable, opts: SaveOptions = {}): Promise<void> {
  return Operation.run(ctx, opts.signal, (op) => saveIn(op, names, output, opts))
}

async function saveIn(op: Operation, names: string[], output: string | Writable, opts: SaveOptions): Promise<void> {
  const ctx = op.ctx
  const format = opts.format ?? 'docker'
  const { members, lease } = await op.locked('shared', async () => {
    const plan = await planArchive(ctx, names, format)
    const pinned = leaseIfRoom(ctx, plan.images, plan.layers)
    // No room for a lease (a full store disk; the output may be elsewhere): write under the lock.
    if (!pinned) await write(op, plan.members, output)
    return { members: plan.members, lease: pinned }
  })
  if (!lease) return
  try {
    await write(op, members, output)
  } finally {
    lease.release()
  }
}

async function write(op: Operation, members: Member[], output: string | Writable): Promise<void> {
  if (typeof output === 'string' && (output.endsWith('/') || (await fs.stat(output).then((s) => s.isDirectory(), () => false)))) {
    await saveDir(op, members, output)
    return
  }
  if (typeof output === 'string') {
    const tmp = path.join(path.dirname(path.resolve(output)), `.${path.basename(output)}.${randomHex(4)}.tmp`)
    try {
      await call(() => native.writeArchive(members, tmp, op.cancel))
      op.check()
      await fs.rename(tmp, output)
    } catch (e) {
      await fs.rm(tmp, { force: true })
      throw e
    }
    return
  }
  const staging = await op.ctx.staging('save', op)
  try {
    const file = path.join(staging.dir, 'out.tar')
    await call(() => native.writeArchive(members, file, op.cancel))
    op.check()
    await copyToStream(op, file, output, 'save destination')
  } finally {
    await staging.dispose()
  }
}

async function saveDir(op: Operation, members: Member[], dir: string): Promise<void> {
  const final = path.resolve(dir)
  const tmp = `${final.replace(/\/+$/, '')}.${randomHex(4)}.tmp`
  await fs.mkdir(path.join(tmp, 'blobs', 'sha256'), { recursive: true })
  try {
    for (const m of members) {
      op.check()
      const p = path.join(tmp, m.name)
      if (m.data) await fs.writeFile(p, m.data)
      else if (m.layer) await call(() => native.writeLayerFile(m.layer!.diffDir, m.layer!.tarSplit, p, m.layer!.diffId, op.cancel))
    }
    op.check()
    if (await fs.stat(final).then(() => true, () => false)) {
      const entries = await fs.readdir(final)
      if (entries.length > 0) throw new StrataError('InvalidArgument', `output directory ${dir} is not empty`)
      await fs.rmdir(final)
    }
    await fs.rename(tmp, final)
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true })
    throw e
  }
}
