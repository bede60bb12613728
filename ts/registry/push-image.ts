/**
 * `Store.push`: from a reference to the tags to push, the layers and what the store knows about
 * their blobs, then what a push leaves behind (RepoDigest, distribution metadata, the blobs it
 * compressed). The registry conversation itself is ts/registry/push.ts + the Rust transport.
 *
 * Crash safety: a push writes nothing into the store until a tag's manifest is in the registry;
 * blobs compressed meanwhile sit in a locked staging dir under `tmp/` (the cleanup pass on
 * open removes it after a `kill -9`). Then, holding the store lock, the compressed blobs are
 * adopted, the distribution metadata recorded and the RepoDigest written (all atomic renames).
 *
 * A push is one operation (../operation.ts): an abort or a throwing `onProgress` rejects at once
 * (with `Aborted`, or with what the callback threw) and the uploads stop at their next chunk;
 * nothing is written into the store. While a tag's layers are read for the upload they are held
 * by a lease (../leases.ts), so an `rmi` meanwhile does not delete them under the push. Progress
 * only goes forward: a layer's bytes never go back (an upload retried from zero is not shown
 * twice), and nothing comes for a layer after its `Pushed`.
 */
import { fsp as fs } from '../internal/lazy'
import * as path from 'node:path'
import { adoptBlob } from '../internal/content'
import { writeAll } from '../internal/metawrites'
import { Distribution } from '../internal/distribution'
import { AuthConfig, DockerConfig, keyForRegistry } from './credentials'
import { RegistryAuth, RegistryClient } from './client'
import { pushTransport } from './push-transport'
import { StoreContext } from '../internal/context'
import { Operation } from '../internal/operation'
import { leaseIfRoom, Lease } from '../internal/leases'
import { StrataError } from '../errors'
import { parseNormalizedNamed, Reference } from '../reference'
import { asBlobDigest, chainIdsOf } from '../internal/chain'
import { hex } from '../internal/layout'
import { OCI_PREFIX } from '../internal/media-types'
import { LayerInfo } from '../internal/layers'
import { ImageOrigin, LayerToPush, PushOptions, PushProgress, PushResult, PushTransport, SentBlob, TagPushed, pushTag } from './push'

/** A compressed blob of a layer kept on disk. */
export interface KeptBlob {
  path: string
  digest: string
  size: number
  compression: 'gzip' | 'zstd'
}

/** Compressed blobs the store keeps for its layers (pulled, loaded, or compressed by a push). */
export interface LayerBlobs {
  /** The blob kept for this layer, if any. */
  find(layer: LayerInfo): Promise<KeptBlob | undefined>
  /** Keeps `file` (gzip bytes a push produced) as the layer's blob. Caller holds the store lock. */
  adopt(layer: LayerInfo, file: string, blob: SentBlob): Promise<void>
}

/** Which registry repositories hold which blob of a layer (Docker's `v2metadata-by-diffid`). */
export interface DistributionRecords {
  /** Blob digests of `diffId`, with the repository (`host/path`) each was seen in. */
  candidates(diffId: string): Promise<{ digest: string; repository: string }[]>
  /** Records that `repository` has `digest`, a blob of `diffId`. Caller holds the store lock. */
  record(diffId: string, digest: string, repository: string): Promise<void>
}

export interface PushDeps {
  transport(ref: Reference, signal?: AbortSignal): Promise<PushTransport>
  blobs: LayerBlobs
  distribution: DistributionRecords
  /** How the image came into the store (decides OCI vs Docker manifests). */
  origin(imageId: string): Promise<ImageOrigin>
}

/** The store's own: the content store, Docker's distribution records, credentials from `config`. */
export function storePushDeps(ctx: StoreContext, config: DockerConfig): PushDeps {
  const dist = new Distribution(ctx.layout)
  return {
    async transport(ref, signal) {
      const auth = await config.get(keyForRegistry(ref.domain))
      const client = RegistryClient.open(ctx.layout, ref.domain, auth ? registryAuth(auth) : {}, { noMirrors: true })
      return pushTransport(client, ref.path, signal)
    },
    blobs: {
      async find(layer) {
        if (!layer.compressedDigest) return undefined
        const p = ctx.layout.blob(layer.compressedDigest)
        const head = Buffer.alloc(4)
        let size: number
        try {
          const fh = await fs.open(p, 'r')
          try {
            size = (await fh.stat()).size
            await fh.read(head, 0, 4, 0)
          } finally {
            await fh.close()
          }
        } catch {
          return undefined
        }
        const compression = head[0] === 0x1f && head[1] === 0x8b ? 'gzip' : head.readUInt32LE(0) === 0xfd2fb528 ? 'zstd' : undefined
        return compression ? { path: p, digest: layer.compressedDigest, size, compression } : undefined
      },
      async adopt(layer, file, blob) {
        await adoptBlob(ctx, blob.digest, file)
        await ctx.layers.setCompressedDigest(layer.chainId, asBlobDigest(blob.digest))
      },
    },
    distribution: {
      candidates: async (diffId) => (await dist.metadataOf(diffId)).map((m) => ({ digest: m.Digest, repository: m.SourceRepository })),
      record: (diffId, digest, repository) => dist.add(diffId, digest, repository),
    },
    origin: async (id) => ((await ctx.images.origin(id)) ?? '').startsWith(OCI_PREFIX) ? 'oci' : 'docker',
  }
}

/** What the transport takes from stored credentials. */
export function registryAuth(a: AuthConfig): RegistryAuth {
  if (a.identityToken) return { ...(a.username ? { username: a.username } : {}), identityToken: a.identityToken }
  return { username: a.username ?? '', password: a.password ?? '' }
}

/** The tags to push and the images they name; Docker's messages when there are none. */
async function tagsToPush(ctx: StoreContext, ref: Reference, allTags: boolean): Promise<[string, string][]> {
  const repo = (await ctx.repos.read())[ref.familiarName] ?? {}
  if (allTags) {
    const tags = Object.entries(repo).filter(([k]) => !k.includes('@')).map(([k, id]) => [k.slice(ref.familiarName.length + 1), id] as [string, string])
    if (tags.length === 0) throw new StrataError('ImageNotFound', `An image does not exist locally with the tag: ${ref.familiarName}`)
    return tags.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  }
  const tag = ref.tag ?? 'latest'
  const id = repo[`${ref.familiarName}:${tag}`]
  if (id === undefined) {
    if (Object.keys(repo).length === 0) throw new StrataError('ImageNotFound', `An image does not exist locally with the tag: ${ref.familiarName}`)
    throw new StrataError('ImageNotFound', `tag does not exist: ${ref.familiarName}:${tag}`)
  }
  return [[tag, id]]
}

export async function pushImage(ctx: StoreContext, deps: PushDeps, target: string, opts: PushOptions = {}): Promise<PushResult> {
  const ref = parseNormalizedNamed(target)
  if (ref.digest !== undefined) throw new StrataError('InvalidReference', 'cannot push a digest reference')
  if (opts.allTags && ref.tag !== undefined) throw new StrataError('InvalidArgument', "tag can't be used with --all-tags/-a")
  return Operation.run(ctx, opts.signal, (op) => pushIn(op, deps, ref, opts))
}

/**
 * Progress as the caller sees it: the callback inside `try` (what it throws fails the push), and
 * per layer only forward — `Pushing` bytes never go back, nothing after `Pushed` or `Layer
 * already exists`; the last `Pushing` before `Pushed` shows the whole layer (a layer compressed
 * while it uploads counts compressed bytes against its content size, and would end short).
 */
function forwardOnly(op: Operation, onProgress: PushOptions['onProgress']): (e: PushProgress) => void {
  const report = op.callback(onProgress)
  if (!report) return () => undefined
  const sent = new Map<string, number>()
  const finished = new Set<string>()
  let lastTotal = new Map<string, number>()
  return (e) => {
    if (e.kind === 'tag') {
      sent.clear()
      finished.clear()
      lastTotal = new Map()
    } else if (e.kind === 'layer') {
      if (finished.has(e.id)) return
      if (e.status === 'Pushing') {
        const n = e.current ?? 0
        if (n <= (sent.get(e.id) ?? -1)) return
        sent.set(e.id, n)
        if (e.total !== undefined) lastTotal.set(e.id, e.total)
      } else if (e.status === 'Pushed' || e.status === 'Layer already exists' || e.status === 'Mounted from') {
        finished.add(e.id)
        const total = lastTotal.get(e.id)
        if (e.status === 'Pushed' && total !== undefined && (sent.get(e.id) ?? 0) < total) {
          report({ kind: 'layer', id: e.id, status: 'Pushing', current: total, total })
        }
      }
    }
    report(e)
  }
}

/** One tag's layers as read from the store, and what pushing them did. */
interface Sending {
  diffIds: string[]
  infos: LayerInfo[]
  layers: LayerToPush[]
  sent: TagPushed
}

async function pushIn(op: Operation, deps: PushDeps, ref: Reference, opts: PushOptions): Promise<PushResult> {
  const ctx = op.ctx
  const signal = op.signal
  const emit = forwardOnly(op, opts.onProgress)
  const result: PushResult = { repository: ref.name, tags: [] }
  const tags = await op.locked('shared', () => tagsToPush(ctx, ref, Boolean(opts.allTags)))
  const transport = await deps.transport(ref, signal)
  const staging = await ctx.staging('push', op)
  try {
    for (const [tag, id] of tags) {
      // The image and its layers, read and leased under the lock: an rmi meanwhile leaves the
      // layers until the upload is done. (No room for a lease on a full disk: the upload then
      // runs under the shared lock, as a save does.)
      const pushed: { sending?: Promise<Sending>; send?: () => Promise<Sending>; lease?: Lease } = await op.locked('shared', async () => {
        const img = await ctx.images.get(id)
        if (!img) throw new StrataError('ImageNotFound', `No such image: ${ref.familiarName}:${tag}`)
        const diffIds = img.config.rootfs.diff_ids
        const chainIds = chainIdsOf(diffIds)
        const infos: LayerInfo[] = []
        const layers: LayerToPush[] = []
        for (let i = 0; i < diffIds.length; i++) {
          const info = await ctx.layers.must(chainIds[i])
          infos.push(info)
          const blob = await deps.blobs.find(info)
          layers.push({
            diffId: diffIds[i],
            ...(blob ? { blob } : {}),
            candidates: await deps.distribution.candidates(diffIds[i]),
            diffDir: ctx.layers.diffDir(info),
            tarSplit: ctx.layers.tarSplitPath(info.chainId),
            contentSize: info.size,
            keep: path.join(staging.dir, `${hex(diffIds[i])}.gz`),
          })
        }
        const send = async (): Promise<Sending> => ({ diffIds, infos, layers, sent: await pushTag(transport, ref, tag, { raw: img.raw, id }, layers, await deps.origin(id), emit, signal) })
        const lease = leaseIfRoom(ctx, [id], chainIds)
        if (!lease) {
          const sending = send()
          await sending
          return { sending }
        }
        return { send, lease }
      })
      let done: Sending
      if (pushed.sending) {
        done = await pushed.sending
      } else {
        try {
          done = await pushed.send!()
        } finally {
          pushed.lease!.release()
        }
      }
      op.check()
      const { diffIds, infos, layers, sent } = done
      await op.locked('exclusive', () => op.commit(async () => {
        for (const [i, blob] of sent.compressed) {
          if (await ctx.layers.has(infos[i].chainId)) await deps.blobs.adopt(infos[i], layers[i].keep, blob)
        }
        for (let i = 0; i < diffIds.length; i++) await deps.distribution.record(diffIds[i], sent.layerDigests[i].digest, ref.name)
        // The RepoDigest, when the image is still there (an rmi may have raced the push).
        if (await ctx.images.has(id)) {
          const repos = await ctx.repos.read()
          ;(repos[ref.familiarName] ??= {})[`${ref.familiarName}@${sent.digest}`] = id
          await writeAll((w) => ctx.repos.stage(w, repos))
        }
      }))
      result.tags.push({ tag: sent.tag, digest: sent.digest, size: sent.size })
    }
  } finally {
    await staging.dispose()
  }
  return result
}
