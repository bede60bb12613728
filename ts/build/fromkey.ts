/**
 * The cache key part of a `COPY --from` (another stage, or an image): the *content* of the
 * files it selects, as for context sources — so a source stage rebuilt into a new layer with
 * the same files (other mtimes, another ChainID) still gives the same key, and the steps after
 * the COPY hit.
 *
 * The rows are those of a context source (./copy.ts `describeSource`: path below the source,
 * type, mode — left out under `--chmod` —, symlink target, sha256 of a file's content) plus the
 * owner (uid, gid) unless `--chown` is given, because a `COPY --from` keeps owners. Never mtimes.
 *
 * Computing them reads the selected files through a read-only mount of the stage's layers.
 * The result depends only on immutable things (the layers under a ChainID never change), so
 * it is kept, as a memo, in `<root>/builder/fromkeys/<hex>.json`, where `<hex>` is the sha256
 * of `[version, top ChainID, sources, withMode, withOwner]`:
 *
 * ```
 * {"v":1,"digest":"sha256:…"}      the sha256 of the JSON rows
 * ```
 *
 * A rebuild whose source stage hit the cache finds the memo and mounts nothing. The memo is a
 * cache: torn or unreadable means absent; it is written atomically and never needs a lock.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { sha256 as sha } from '../internal/sha256'
import { native } from '../internal/native'
import { call } from '../errors'
import { writeHint } from '../internal/metawrites'
import { toBytes } from '../internal/bytepath'
import { planSources, describeSource, filesOf, dirTree, PlannedSource } from './copy'

const VERSION = 1

export interface FromKeyRequest {
  /** Where memos live (`layout.fromKeys`). */
  dir: string
  /** Top ChainID of the source filesystem ('' for an empty one). */
  chainId: string
  sources: string[]
  /** Modes count (no `--chmod`). */
  withMode: boolean
  /** Owners count (no `--chown`). */
  withOwner: boolean
  line: number
}

function memoFile(req: FromKeyRequest): string {
  return path.join(req.dir, `${sha(JSON.stringify([VERSION, req.chainId, req.sources, req.withMode, req.withOwner])).slice(7)}.json`)
}

/** The memo of `req`, if one was written. */
export function cachedFromKey(req: FromKeyRequest): string | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(memoFile(req), 'utf8')) as { v?: number; digest?: unknown }
    if (v.v === VERSION && typeof v.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(v.digest)) return v.digest
  } catch { /* none yet */ }
  return undefined
}

/** Rows of the planned sources of a `COPY --from`: a context source's rows, with owners when they count. */
export function describeFrom(planned: PlannedSource[], digests: Map<string, string>, withMode: boolean, withOwner: boolean): unknown[] {
  const owners = new Map<string, [number, number]>()
  for (const p of planned) for (const it of p.items) for (const e of [it.entry, ...it.children]) owners.set(e.rel, [e.uid, e.gid])
  return planned.map((p) => {
    const rows = describeSource(p, withMode, digests) as [string, unknown[]][]
    if (!withOwner) return [p.src, rows]
    // describeSource's rows are in item order, each item's entry first and then its children.
    const flat = p.items.flatMap((it) => [it.entry, ...it.children])
    return [p.src, rows.map(([at, row], i) => [at, [...row, ...(owners.get(flat[i].rel) ?? [0, 0])]])]
  })
}

/**
 * The content digest of `req.sources` in the filesystem at `root` (a mount of the source's
 * layers), written to the memo.
 */
export async function computeFromKey(req: FromKeyRequest, root: string, cancel?: InstanceType<typeof native.NativeCancel>): Promise<string> {
  const tree = dirTree(root)
  const planned = await planSources(tree, req.sources, req.line)
  const files = [...new Set(filesOf(planned))]
  const digests = new Map<string, string>()
  if (files.length > 0) {
    const r = await call(() => native.hashFiles(root, files.map(toBytes), cancel))
    files.forEach((f, i) => digests.set(f, r.digests[i]))
  }
  const digest = sha(JSON.stringify(describeFrom(planned, digests, req.withMode, req.withOwner)))
  // A memo that cannot be written is recomputed next time.
  writeHint(memoFile(req), JSON.stringify({ v: VERSION, digest }))
  return digest
}
