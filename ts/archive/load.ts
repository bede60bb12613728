/**
 * `load`: docker-archive or OCI layout (tar, compressed tar, directory, or a stream) → images.
 *
 * 1. read the manifests and configs (image ID = sha256 of the config bytes);
 * 2. work out which layers (by ChainID) the store lacks — those already present are not extracted;
 * 3. extract the missing ones natively, all in parallel, each in one streaming pass into its own
 *    staging dir, with DiffIDs (and blob digests, where named) checked against the config;
 * 4. under the store lock, register layers bottom-up (a compressed blob goes into the content store
 *    with its layer, so the layer can be pushed again with its original digest), then the image
 *    configs, then the tags.
 * Any failure before step 4 leaves the store untouched (the staging dir is removed). An abort or a
 * throwing `onProgress` before step 4 rejects at once (../internal/operation.ts): a streamed source is
 * destroyed, extraction stops, the staging dir goes in the background.
 */
import path = require('node:path')
import { createWriteStream, createReadStream } from 'node:fs'
import type { Readable } from 'node:stream'
import { StoreContext, Staging } from '../internal/context'
import { Operation } from '../internal/operation'
import { spool } from '../internal/streams'
import { native } from '../internal/native'
import { call, ioError, StrataError } from '../errors'
import { TarSource, DirSource, ArchiveSource } from './source'
import { readArchiveImages, ArchiveImage } from './manifest'
import { parseConfig, imageIdOf } from '../internal/imagedb'
import { asBlobDigest, chainIdsOf, type ChainId, type DiffId } from '../internal/chain'
import { LayerRegistrar, PlannedLayer as Planned } from '../internal/register'
import { setTags } from '../internal/tags'
import { allOrNothing } from '../internal/rollback'
import { DIFF_DIR } from '../internal/layout'
import { fsp as fs, streamPromises } from '../internal/lazy'

export interface LoadProgress {
  /** Index of the layer among those being extracted. */
  layer: number
  layers: number
  diffId: DiffId
  /** Bytes of the layer blob read so far, and its total size. */
  current: number
  total: number
  status: 'Loading layer' | 'Loaded' | 'Already exists'
}

export interface LoadOptions {
  /** Called as layers are read; what it throws rejects the load (nothing is loaded). */
  onProgress?: (p: LoadProgress) => void
  /** Aborting rejects with `Aborted` at once and loads nothing (until the images are being registered). */
  signal?: AbortSignal
}

export interface LoadedImage {
  id: string
  tags: string[]
}

export interface LoadResult {
  images: LoadedImage[]
  /** Docker's output lines: `Loaded image: busybox:latest` / `Loaded image ID: sha256:...`. */
  lines: string[]
}

export type LoadInput = string | Readable

const GZIP = [0x1f, 0x8b]
const ZSTD = [0x28, 0xb5, 0x2f, 0xfd]

async function magicOf(file: string): Promise<'gzip' | 'zstd' | 'none'> {
  const fh = await fs.open(file, 'r')
  try {
    const b = Buffer.alloc(4)
    const { bytesRead } = await fh.read(b, 0, 4, 0)
    if (bytesRead >= 2 && b[0] === GZIP[0] && b[1] === GZIP[1]) return 'gzip'
    if (bytesRead >= 4 && ZSTD.every((v, i) => b[i] === v)) return 'zstd'
    return 'none'
  } finally {
    await fh.close()
  }
}

/** Opens the input as an archive source, spooling streams and decompressing into `staging`. */
async function openSource(op: Operation, input: LoadInput, staging: Staging): Promise<ArchiveSource> {
  let file: string
  if (typeof input === 'string') {
    let st
    try {
      st = await fs.stat(input)
    } catch (e) {
      throw ioError(e as NodeJS.ErrnoException, `open ${input}: ${(e as Error).message}`)
    }
    if (st.isDirectory()) return DirSource.open(input)
    file = input
  } else {
    file = path.join(staging.dir, 'input.tar')
    await spool(op, input, file, 'load source')
  }
  if ((await magicOf(file)) !== 'none') {
    const plain = path.join(staging.dir, 'input.decompressed.tar')
    await call(() => native.decompressFile(file, plain, op.cancel))
    file = plain
  }
  return TarSource.open(file)
}

/**
 * Copies a layer's compressed bytes to `dest`, for the content store (../content.ts) to keep so
 * the layer can be pushed again unchanged. A blob that is a whole file (an OCI layout dir) is
 * copied by the kernel (`fs.copyFile`: no trip through user space, about a quarter of a
 * stream's CPU); a blob inside an archive is streamed out of its byte range.
 */
async function keepBlob(op: Operation, file: string, start: number, size: number, dest: string): Promise<void> {
  try {
    if (start === 0 && (await fs.stat(file)).size === size) {
      await fs.copyFile(file, dest)
      await fs.chmod(dest, 0o600)
    } else {
      await streamPromises.pipeline(createReadStream(file, { start, end: start + size - 1 }), createWriteStream(dest, { mode: 0o600 }), { signal: op.signal })
    }
  } catch (e) {
    op.check()
    throw e instanceof StrataError ? e : ioError(e as NodeJS.ErrnoException, `keeping the compressed blob of ${file}: ${(e as Error).message}`)
  }
}

interface PlannedLayer extends Planned {
  source: ArchiveImage['layers'][number]
}

export function load(ctx: StoreContext, input: LoadInput, opts: LoadOptions = {}): Promise<LoadResult> {
  return Operation.run(ctx, opts.signal, (op) => loadIn(op, input, opts))
}

async function loadIn(op: Operation, input: LoadInput, opts: LoadOptions): Promise<LoadResult> {
  const ctx = op.ctx
  if (typeof input !== 'string') op.source(input)
  const report = op.callback(opts.onProgress)
  const staging = await ctx.staging('load', op)
  try {
    const src = await openSource(op, input, staging)
    op.check()
    const archived = await readArchiveImages(src)
    if (archived.length === 0) throw new StrataError('CorruptArchive', `${src.description}: archive holds no image`)

    // Configs, image IDs, the layer plan.
    const images: { raw: Buffer; id: string; chainIds: ChainId[]; tags: string[]; mediaType?: string }[] = []
    const plan = new Map<ChainId, PlannedLayer>()
    for (const a of archived) {
      const raw = await src.read(a.configName)
      const id = imageIdOf(raw)
      if (a.configDigest && a.configDigest !== id) {
        throw new StrataError('DigestMismatch', `config ${a.configName}: expected ${a.configDigest}, found ${id}`)
      }
      const config = parseConfig(raw, a.configName)
      const diffIds = config.rootfs.diff_ids
      if (diffIds.length !== a.layers.length) {
        throw new StrataError('CorruptArchive', `image ${id}: config lists ${diffIds.length} layers, manifest ${a.layers.length}`)
      }
      const chainIds = chainIdsOf(diffIds)
      chainIds.forEach((chainId, i) => {
        if (!plan.has(chainId)) {
          plan.set(chainId, { chainId, diffId: diffIds[i], parentChainId: chainIds[i - 1], source: a.layers[i] })
        }
      })
      images.push({ raw, id, chainIds, tags: a.tags, ...(a.manifestMediaType ? { mediaType: a.manifestMediaType } : {}) })
    }

    // Extract what the store lacks, in parallel.
    let round = 0
    const extract = async (todo: PlannedLayer[]): Promise<void> => {
      const requests = await Promise.all(todo.map(async (p, i) => {
        const loc = await src.locate(p.source.name)
        const dir = path.join(staging.dir, `layer-${round}-${i}`)
        await fs.mkdir(dir)
        return {
          blobPath: loc.path, offset: loc.offset, length: loc.length,
          dest: path.join(dir, DIFF_DIR),
          tarSplit: path.join(staging.dir, `layer-${round}-${i}.tar-split.json.gz`),
          expectedDiffId: p.diffId,
          ...(p.source.digest ? { expectedDigest: p.source.digest } : {}),
          total: loc.length,
        }
      }))
      round++
      // Called on the JS thread by the native task's threadsafe function: `report` never throws.
      // Reports only go forward, and none comes for a layer after its 'Loaded' (a late one from
      // the native queue is dropped).
      const reported = requests.map(() => -1)
      const onProgress = report
        ? (index: number, bytes: number) => {
            if (bytes <= reported[index]) return
            reported[index] = bytes
            report({ layer: index, layers: todo.length, diffId: todo[index].diffId, current: bytes, total: requests[index].total, status: 'Loading layer' })
          }
        : undefined
      const results = await call(() => native.applyLayers(requests.map(({ total: _t, ...r }) => r), onProgress, op.cancel))
      op.check()
      await Promise.all(results.map(async (r, i) => {
        // The compressed bytes, kept to push the layer again unchanged (ts/internal/content.ts).
        let blob: string | undefined
        if (r.compression !== 'none') {
          blob = path.join(staging.dir, `blob-${round}-${i}`)
          await keepBlob(op, requests[i].blobPath, requests[i].offset ?? 0, r.blobSize, blob)
        }
        todo[i].staged = {
          dir: path.dirname(requests[i].dest), tarSplit: requests[i].tarSplit, size: r.size,
          ...(r.compression !== 'none' ? { compressedDigest: asBlobDigest(r.digest) } : {}),
          ...(blob ? { blob } : {}),
        }
      }))
      op.check()
      results.forEach((_r, i) => {
        reported[i] = Infinity
        report?.({ layer: i, layers: todo.length, diffId: todo[i].diffId, current: requests[i].total, total: requests[i].total, status: 'Loaded' })
      })
      op.check()
    }
    const missing = async (): Promise<PlannedLayer[]> => {
      const out: PlannedLayer[] = []
      for (const p of plan.values()) if (!p.staged && !(await ctx.layers.has(p.chainId))) out.push(p)
      return out
    }
    const first = await missing()
    for (const p of plan.values()) {
      if (!first.includes(p)) report?.({ layer: -1, layers: first.length, diffId: p.diffId, current: 0, total: 0, status: 'Already exists' })
    }
    op.check()
    if (first.length > 0) await extract(first)

    // Make it visible: layers bottom-up, images, tags.
    const lines: string[] = []
    const loaded: LoadedImage[] = []
    await op.commitWhenComplete('loading', missing, extract, commit)
    return { images: loaded, lines }

    /**
     * Layers bottom-up, then image configs, then every tag in one write of repositories.json;
     * all or nothing: a failure (a full disk) takes back the layers and images it made.
     */
    async function commit(): Promise<void> {
      await allOrNothing(async (undo) => {
        const registrar = new LayerRegistrar(ctx, (c) => plan.get(c), 'loading', undo)
        for (const img of images) {
          for (const c of img.chainIds) await registrar.layer(c)
          if (!(await ctx.images.has(img.id))) {
            await ctx.images.put(img.raw)
            undo.add(`image ${img.id}`, () => ctx.images.delete(img.id))
          }
          if (img.mediaType) await ctx.images.setOrigin(img.id, img.mediaType)
        }
        const tagged = await setTags(ctx, images.flatMap((img) => img.tags.map((target) => ({ target, id: img.id }))))
        let next = 0
        for (const img of images) {
          const tags: string[] = []
          for (const _ of img.tags) {
            const r = tagged[next++]
            if (r.replaced) lines.push(`The image ${r.familiar} already exists, renaming the old one with ID ${r.replaced} to empty string`)
            tags.push(r.familiar)
            lines.push(`Loaded image: ${r.familiar}`)
          }
          if (tags.length === 0) lines.push(`Loaded image ID: ${img.id}`)
          loaded.push({ id: img.id, tags })
        }
      })
    }
  } finally {
    await staging.dispose()
  }
}
