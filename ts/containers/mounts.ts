/**
 * Reference-counted overlay mounts of container layers. The references are recorded in
 * `containers/<id>/mount.json` and checked against the kernel (`native.isMountPoint`), so any
 * process — including one started after a crash — knows what is mounted and by whom:
 * `{kind:'user'}` refs come from `strata mount` and last until `umount`; `{kind:'process',pid}`
 * refs are held by a running process (a `run`, an `export`) and are stale once that pid is gone.
 * All changes happen under the store lock; the syscalls are the native core's.
 */
import fs = require('node:fs')
import { StoreContext } from '../internal/context'
import { native } from '../internal/native'
import { call } from '../errors'
import { mustRead, readIfExists } from '../internal/fsx'
import { ContainerPaths } from './layout'
import { readRecord } from './record'
import { containerMountPlan, MountPlan } from './plan'
import path = require('node:path')
import { Layout, LOWER_FILE } from '../internal/layout'

/** The overlay plan of writable layer `mountId`, from its `lower` file (what mount, view and diff use). */
export async function readMountPlan(layout: Layout, mountId: string): Promise<MountPlan> {
  const lower = (await mustRead(path.join(layout.layerDir(mountId), LOWER_FILE))).trim()
  return containerMountPlan(layout, mountId, lower)
}

export type MountRef = { kind: 'user' } | { kind: 'process'; pid: number }

export async function readRefs(p: ContainerPaths): Promise<MountRef[]> {
  const raw = await readIfExists(p.mountRefs)
  if (!raw) return []
  try {
    const v = JSON.parse(raw) as { refs?: MountRef[] }
    return Array.isArray(v.refs) ? v.refs : []
  } catch {
    return []
  }
}

/**
 * Written in place, not synced: refs describe kernel mounts, which a crash takes away with
 * them, and a torn file reads as no refs; `reconcile` squares both with the kernel on open.
 * A few dozen bytes into the page cache: written on the calling thread (as `readIfExists` reads).
 */
async function writeRefs(p: ContainerPaths, refs: MountRef[]): Promise<void> {
  const data = Buffer.from(refsFileData(refs))
  const fd = fs.openSync(p.mountRefs, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644)
  try {
    if (fs.fstatSync(fd).size > data.length) fs.ftruncateSync(fd, data.length)
    fs.writeSync(fd, data, 0, data.length, 0)
  } finally {
    fs.closeSync(fd)
  }
}

const REFS_PAD = 256

/**
 * mount.json's contents: padded with spaces to a multiple of 256 bytes, so the size rarely
 * changes and the file is overwritten in place (truncating and refilling it costs ext4 a block
 * free and allocation).
 */
function refsFileData(refs: MountRef[]): string {
  const json = JSON.stringify({ refs })
  return json.padEnd(Math.ceil((json.length + 1) / REFS_PAD) * REFS_PAD, ' ')
}

/** mount.json of a container nothing has mounted (a new container's). */
export function emptyRefsFile(): string {
  return refsFileData([])
}

/**
 * Whether something is mounted on `dir`, without the native addon: a mount point's device
 * differs from its parent's (an overlay has an anonymous device of its own).
 */
export function mountedAt(dir: string): boolean {
  const st = fs.statSync(dir, { throwIfNoEntry: false })
  if (!st) return false
  return st.dev !== fs.statSync(path.dirname(dir)).dev
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** When process `pid` started (clock ticks since boot, `/proc/<pid>/stat` field 22); undefined if it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 2 (the command) is in parentheses and may hold spaces: count from after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

/** Whether the process recorded as `pid` (started at `start`, when known) still runs. */
export function processLives(pid: number, start?: string): boolean {
  if (!pidAlive(pid)) return false
  return start === undefined || processStartTime(pid) === start
}

/**
 * Refs still held: user refs, and process refs whose process lives. While the container runs,
 * a process ref stays even if its supervisor died: the container still runs on that rootfs.
 */
export function liveRefs(refs: MountRef[], containerRunning = false): MountRef[] {
  return refs.filter((r) => r.kind === 'user' || containerRunning || pidAlive(r.pid))
}

async function running(p: ContainerPaths): Promise<boolean> {
  return (await readRecord(p))?.State.Running ?? false
}

export class MountManager {
  constructor(private readonly ctx: StoreContext) {}

  /**
   * Takes a reference, mounting if this is the first live one; returns MergedDir. Caller holds
   * the store lock; `isRunning` is the record's state when the caller has just read it.
   */
  async acquire(p: ContainerPaths, mountId: string, ref: MountRef, isRunning?: boolean): Promise<string> {
    const [plan, held, run] = await Promise.all([readMountPlan(this.ctx.layout, mountId), readRefs(p), isRunning ?? running(p)])
    const refs = liveRefs(held, run)
    if (!native.isMountPoint(plan.target)) {
      fs.mkdirSync(plan.target, { recursive: true })
      await call(() => native.mountOverlay(plan))
    }
    refs.push(ref)
    await writeRefs(p, refs)
    return plan.target
  }

  /** Drops one matching reference; unmounts when none is left. Caller holds the store lock. */
  async release(p: ContainerPaths, mountId: string, ref: MountRef): Promise<boolean> {
    const refs = liveRefs(await readRefs(p), await running(p))
    const i = refs.findIndex((r) => r.kind === ref.kind && (r.kind === 'user' || (ref.kind === 'process' && r.pid === ref.pid)))
    if (i >= 0) refs.splice(i, 1)
    const target = this.ctx.layout.mergedDir(mountId)
    let unmounted = false
    if (refs.length === 0 && native.isMountPoint(target)) {
      await call(() => native.unmount(target, false)).catch(() => call(() => native.unmount(target, true)))
      unmounted = true
    }
    await writeRefs(p, refs)
    return unmounted
  }

  /**
   * Unmounts the rootfs whatever the refs say (rm: the refs go with the container's dir, and
   * `reconcile` drops refs to a mount that is gone). Caller holds the store lock.
   */
  async releaseAll(mountId: string): Promise<void> {
    const target = this.ctx.layout.mergedDir(mountId)
    if (native.isMountPoint(target)) {
      await call(() => native.unmount(target, false)).catch(() => call(() => native.unmount(target, true)))
    }
  }

  /** Makes mount.json and the kernel agree (after a crash). Caller holds the store lock. */
  async reconcile(p: ContainerPaths, mountId: string): Promise<{ unmounted: boolean; droppedRefs: number }> {
    const all = await readRefs(p)
    const refs = liveRefs(all, await running(p))
    const target = this.ctx.layout.mergedDir(mountId)
    const mounted = native.isMountPoint(target)
    let unmounted = false
    if (mounted && refs.length === 0) {
      await call(() => native.unmount(target, true))
      unmounted = true
    }
    const keep = mounted || refs.length === 0 ? refs : []
    if (keep.length !== all.length) await writeRefs(p, keep)
    return { unmounted, droppedRefs: all.length - keep.length }
  }

  isMounted(mountId: string): boolean {
    return native.isMountPoint(this.ctx.layout.mergedDir(mountId))
  }
}
