/**
 * Planning for container layers (no syscalls, testable without root): where the overlay mount
 * plan of a writable layer takes its dirs from (the plan itself is the native core's), the
 * `lower` chains, and the init layer's entries.
 */
import path = require('node:path')
import { Layout, LINK_DIR } from '../internal/layout'
import { native } from '../internal/native'

/** What `native.mountOverlay` executes. */
export interface MountPlan {
  /** Top first. */
  lowerdirs: string[]
  upperdir?: string
  workdir?: string
  target: string
  options?: string[]
}

/**
 * The kernel's limit on lower dirs in one overlay mount (`OVL_MAX_STACK`), as the native core has
 * it. A function, not a constant: reading it loads the addon, which a read-only CLI command never
 * needs (./index.ts exports it as the constant `MAX_LOWER_DIRS`).
 */
export function maxLowerDirs(): number {
  return native.OVERLAY_MAX_STACK
}

/** The `lower` value of a layer on top of a layer with short link `short` and lower chain `belowLower`. */
export function lowerChain(short: string, belowLower: string | undefined): string {
  const link = `${LINK_DIR}/${short}`
  return belowLower ? `${link}:${belowLower}` : link
}

/** Resolves a `lower` file value (`l/A:l/B`) to absolute lowerdirs, top first. */
export function lowerDirs(layout: Layout, lower: string): string[] {
  return lower.trim().split(':').filter(Boolean).map((l) => path.join(layout.overlay, l))
}

/**
 * The overlay mount of a container's writable layer `mountId`, whose `lower` file says `lower`.
 * The native core owns the plan (`MountPlan::container`: `index=off,redirect_dir=off,metacopy=off`,
 * which commit and diff rely on) and checks it as the kernel will (`TooManyLayers`, ...); this
 * side only knows where the store keeps the dirs.
 */
export function containerMountPlan(layout: Layout, mountId: string, lower: string): MountPlan {
  return native.containerMountPlan(lowerDirs(layout, lower), layout.diffDir(mountId), layout.workDir(mountId), layout.mergedDir(mountId))
}

export type InitEntry =
  | { path: string; type: 'dir'; target?: undefined }
  | { path: string; type: 'file'; target?: undefined }
  | { path: string; type: 'symlink'; target: string }

/** Docker's init layer (daemon/initlayer): mount points and placeholders every container gets. */
export const INIT_ENTRIES: readonly InitEntry[] = [
  { path: 'dev/pts', type: 'dir' },
  { path: 'dev/shm', type: 'dir' },
  { path: 'proc', type: 'dir' },
  { path: 'sys', type: 'dir' },
  { path: '.dockerenv', type: 'file' },
  { path: 'etc/resolv.conf', type: 'file' },
  { path: 'etc/hosts', type: 'file' },
  { path: 'etc/hostname', type: 'file' },
  { path: 'dev/console', type: 'file' },
  { path: 'etc/mtab', type: 'symlink', target: '/proc/mounts' },
]

/** Paths `diff` leaves out: the init layer's files (Docker bind-mounts over them). */
export const INIT_PATHS: ReadonlySet<string> = new Set(INIT_ENTRIES.map((e) => `/${e.path}`))
