/**
 * Incremental COPY: a COPY (or ADD) of context files that misses the cache links the files
 * it would copy unchanged from the layer the last build of the same instruction made, and
 * copies only the others.
 *
 * "The same instruction" is the same platform, kind, sources as written (after substitution),
 * destination, `--chown` and `--chmod`, whatever the sources hold now and on whatever parent
 * (a COPY after a changed step reuses too: what it links is checked file by file, and only into
 * directories the parent layers lack). For each, `<root>/builder/copies/<hex>.json` (`<hex>` the
 * sha256 of `[version, platform, kind, sources, destination, chown, chmod]`) names the last
 * layer such a step made and every regular file it copied from the context:
 *
 * ```
 * {"v":1,"chainId":"sha256:…","files":{"/app/src/a.txt":["sha256:<content>",<mode>,<uid>,<gid>,"<mtime ns>",<xattrs>|null],…}}
 * ```
 *
 * A file of the new step is linked (`native.copyIn`'s reuse root) when its row is the same:
 * the content digest comes from the context's stat index, so nothing is re-read, and the
 * layer's file under that path has those bytes (layers never change). The native side checks
 * the linked inode's type, mode, owner and mtime and copies instead when they differ or the
 * link fails. Linking is limited to files whose directory this COPY creates (one absent from
 * the parent layers), so the new layer holds exactly what the copy through the overlay mount
 * would have put there; the times of the source's directories are set again after the links
 * (a directory the COPY makes for its destination gets the time of the build, as with a full
 * copy). The result is the layer a full copy makes, byte for byte (same DiffID).
 *
 * The file is a hint, written atomically (a temp file beside it, `.<name>.<pid>.<hex>.tmp`, that
 * the cleanup pass removes when its process died) after the layer is registered and never locked: torn,
 * missing or naming a removed layer means no reuse. `builder prune` removes them with the
 * records.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { sha256Hex } from '../internal/sha256'
import { writeHint } from '../internal/metawrites'
import type { ChainId } from '../internal/chain'
import type { CopyStep } from './copy'

const VERSION = 1

type FileRow = [string, number, number, number, string, [string, string][] | null]

export interface LastCopy {
  chainId: ChainId
  files: Record<string, FileRow>
}

/** The name of an instruction's record (see the module comment). */
export function copyLineage(parts: { platform: string; kind: string; sources: string[]; dest: string; chown: string; chmod: number | null }): string {
  const { platform, kind, sources, dest, chown, chmod } = parts
  return sha256Hex(JSON.stringify([VERSION, platform, kind, sources, dest, chown, chmod]))
}

export function readLastCopy(dir: string, lineage: string): LastCopy | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(dir, `${lineage}.json`), 'utf8')) as { v?: number } & LastCopy
    return r.v === VERSION && typeof r.chainId === 'string' && r.files && typeof r.files === 'object' ? r : undefined
  } catch {
    return undefined
  }
}

type FileStep = Extract<CopyStep, { op: 'file' }>

const rowOf = (st: FileStep): FileRow | undefined => (st.expect ? [st.expect, st.mode, st.uid, st.gid, st.mtime, st.xattrs ?? null] : undefined)

/**
 * Whether a record's row (`was`, as read: anything) is the row of `st` (`rowOf`), as their JSON
 * texts would be equal: compared field by field, xattrs (rarely there) as JSON. A COPY of a
 * thousand files compares a thousand rows; two `JSON.stringify` a row were most of its planning.
 */
function sameRow(st: FileStep, was: unknown): boolean {
  if (!st.expect || !Array.isArray(was) || was.length !== 6) return false
  if (was[0] !== st.expect || was[1] !== st.mode || was[2] !== st.uid || was[3] !== st.gid || was[4] !== st.mtime) return false
  const x = st.xattrs ?? null
  return x === null ? was[5] === null : JSON.stringify(x) === JSON.stringify(was[5])
}

/** `path.posix.dirname` of a clean absolute path (what copy steps' destinations are). */
function parentOf(p: string): string {
  const i = p.lastIndexOf('/')
  return i > 0 ? p.slice(0, i) : '/'
}

/**
 * Paths never reused nor recorded: both names of a hard link within the copy (made as a pair),
 * and a path written twice (two sources into one place: the order of the writes decides).
 */
function unsafePaths(steps: CopyStep[]): Set<string> {
  const out = new Set<string>()
  const seen = new Set<string>()
  for (const st of steps) {
    if (st.op === 'dirTimes' || st.op === 'mkdirs') continue
    if (st.op === 'hardlink') out.add(st.target).add(st.dst)
    if (seen.has(st.dst)) out.add(st.dst)
    seen.add(st.dst)
  }
  return out
}

/** What the last layer's record of this copy should say (files copied from the context). */
export function lastCopyOf(chainId: ChainId, steps: CopyStep[]): LastCopy {
  const linked = unsafePaths(steps)
  const files: Record<string, FileRow> = {}
  for (const st of steps) {
    if (st.op !== 'file' || linked.has(st.dst)) continue
    const row = rowOf(st)
    if (row) files[st.dst] = row
  }
  return { chainId, files }
}

/**
 * Writes an instruction's record. A hint: a write that fails (a full disk) leaves none — the
 * next miss copies everything — and never fails the build whose step it describes.
 */
export function writeLastCopy(dir: string, lineage: string, rec: LastCopy): void {
  writeHint(path.join(dir, `${lineage}.json`), JSON.stringify({ v: VERSION, ...rec }))
}

/**
 * Splits a copy's steps: those to run through the overlay mount, and those to run afterwards
 * on the unmounted upper dir with the last layer as reuse root (the reusable files, marked
 * `reuse` in place, then the directories' times again). `isNewDir(dst)`: the directory is absent
 * from the parent layers.
 */
export function splitReuse(steps: CopyStep[], last: LastCopy, isNewDir: (dst: string) => boolean): { mounted: CopyStep[]; after: CopyStep[] } {
  const linked = unsafePaths(steps)
  const newDirs = new Set<string>()
  for (const st of steps) if ((st.op === 'dir' || st.op === 'mkdirs') && !newDirs.has(st.dst) && isNewDir(st.dst)) newDirs.add(st.dst)
  const mounted: CopyStep[] = []
  const reused: CopyStep[] = []
  for (const st of steps) {
    if (st.op === 'file' && !linked.has(st.dst) && newDirs.has(parentOf(st.dst))) {
      if (sameRow(st, last.files[st.dst])) {
        st.reuse = true
        reused.push(st)
        continue
      }
    }
    mounted.push(st)
  }
  if (reused.length === 0) return { mounted: steps, after: [] }
  return { mounted, after: [...reused, ...steps.filter((st) => st.op === 'dirTimes')] }
}
