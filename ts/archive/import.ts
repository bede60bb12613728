/**
 * `import`: a rootfs tarball (plain, gzip or zstd; file or stream) → a one-layer image, as
 * `docker import` makes it: history comment `Imported from <source>`, `-m` message, `-c` changes.
 */
import path = require('node:path')
import type { Readable } from 'node:stream'
import { StoreContext } from '../context'
import { Operation } from '../operation'
import { spool } from '../streams'
import { native } from '../native'
import { call, ioError, StrataError } from '../errors'
import { setTag } from '../tags'
import { allOrNothing } from '../rollback'
import { applyChanges } from '../changes'
import { ImageConfig, imageIdOf } from '../imagedb'
import { goArch } from '../platform'
import { parseReference } from '../reference'
import { DIFF_DIR } from '../layout'
import { asBlobDigest, asDiffId, chainIdOf } from '../chain'
import { fsp as fs } from '../lazy'

export interface ImportOptions {
  /** Tag for the new image. */
  ref?: string
  /** Commit message (`-m`): becomes the history comment instead of `Imported from ...`. */
  message?: string
  /** Dockerfile instructions (`-c`). */
  changes?: string[]
  /** Name of the source as shown in the comment (default: the path, or `-` for streams). */
  sourceName?: string
  platform?: { os?: string; architecture?: string }
  /** Bytes of the input read so far; what it throws rejects the import (nothing is imported). */
  onProgress?: (bytes: number, total: number) => void
  /** Aborting rejects with `Aborted` at once and imports nothing (until the image is being registered). */
  signal?: AbortSignal
}

export function importImage(ctx: StoreContext, input: string | Readable, opts: ImportOptions = {}): Promise<string> {
  return Operation.run(ctx, opts.signal, (op) => importIn(op, input, opts))
}

async function importIn(op: Operation, input: string | Readable, opts: ImportOptions): Promise<string> {
  const ctx = op.ctx
  if (typeof input !== 'string') op.source(input)
  const report = op.callback(opts.onProgress)
  if (opts.ref !== undefined) parseReference(opts.ref) // a bad tag fails before anything is written
  applyChanges({}, opts.changes ?? [])
  const staging = await ctx.staging('import', op)
  try {
    let file: string
    if (typeof input === 'string') {
      file = input
      const st = await fs.stat(file).catch((e: NodeJS.ErrnoException) => {
        throw ioError(e, `open ${file}: ${e.message}`)
      })
      if (!st.isFile()) throw new StrataError('InvalidArgument', `${file} is not a file`)
    } else {
      file = path.join(staging.dir, 'input')
      await spool(op, input, file, 'import source')
    }
    const total = (await fs.stat(file)).size
    const dir = path.join(staging.dir, 'layer')
    await fs.mkdir(dir)
    const req = { blobPath: file, offset: 0, length: total, dest: path.join(dir, DIFF_DIR), tarSplit: path.join(staging.dir, 'layer.tar-split.json.gz') }
    // Reports only go forward (a late one from the native queue is dropped), and the last one
    // (all bytes read) comes before the image is registered, so what the callback throws counts.
    let reported = -1
    const progress = report && ((bytes: number): void => {
      if (bytes <= reported) return
      reported = bytes
      report(bytes, total)
    })
    const [res] = await call(() => native.applyLayers([req], progress ? (_i: number, b: number) => progress(b) : undefined, op.cancel))
    progress?.(total)
    op.check()
    const diffId = asDiffId(res.diffId)
    const chainId = chainIdOf(undefined, diffId)
    const created = new Date().toISOString()
    const comment = opts.message ?? `Imported from ${opts.sourceName ?? (typeof input === 'string' ? input : '-')}`
    const config: ImageConfig = {
      architecture: opts.platform?.architecture ?? goArch(),
      comment,
      config: applyChanges({}, opts.changes ?? []),
      created,
      history: [{ created, comment }],
      os: opts.platform?.os ?? 'linux',
      rootfs: { type: 'layers', diff_ids: [diffId] },
    }
    const raw = Buffer.from(JSON.stringify(config))
    // All or nothing: a failure after the layer or the image appeared (a full disk) takes them back.
    return await op.locked('exclusive', () => op.commit(() => allOrNothing(async (undo) => {
      const staged = { dir, tarSplit: req.tarSplit, diffId, size: res.size, ...(res.compression !== 'none' ? { compressedDigest: asBlobDigest(res.digest) } : {}) }
      if (await ctx.layers.register(staged, chainId, undefined)) undo.add(`layer ${chainId}`, () => ctx.layers.remove(chainId))
      const id = imageIdOf(raw)
      if (!(await ctx.images.has(id))) {
        await ctx.images.put(raw)
        undo.add(`image ${id}`, () => ctx.images.delete(id))
      }
      if (opts.ref) await setTag(ctx, opts.ref, id)
      return id
    })))
  } finally {
    await staging.dispose()
  }
}
