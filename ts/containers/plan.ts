/**
 * Pure planning for container layers (no syscalls, testable without root): the overlay mount plan
 * of a writable layer, the `lower` chains, and the init layer's entries.
 */
import path = require('node:path')
import { Layout, LINK_DIR } from '../layout'

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
 * Options Docker's overlay2 driver mounts a container's rootfs with: `index=off` (no inode index,
 * so layers can be shared and copied between stores). No nosuid/nodev: the rootfs must run
 * setuid binaries and hold device nodes; `userxattr` only when rootless (never here).
 */
export const CONTAINER_MOUNT_OPTIONS: readonly string[] = ['index=off']

/** The kernel's limit on lower dirs in one overlay mount (OVL_MAX_STACK). */
export const MAX_LOWER_DIRS = 500

/** The `lower` value of a layer on top of a layer with short link `short` and lower chain `belowLower`. */
export function lowerChain(short: string, belowLower: string | undefined): string {
  const link = `${LINK_DIR}/${short}`
  return belowLower ? `${link}:${belowLower}` : link
}

/** Resolves a `lower` file value (`l/A:l/B`) to absolute lowerdirs, top first. */
export function lowerDirs(layout: Layout, lower: string): string[] {
  return lower.trim().split(':').filter(Boolean).map((l) => path.join(layout.overlay, l))
}

/** The overlay mount of a container's writable layer `mountId`, whose `lower` file says `lower`. */
export function containerMountPlan(layout: Layout, mountId: string, lower: string): MountPlan {
  return {
    lowerdirs: lowerDirs(layout, lower),
    upperdir: layout.diffDir(mountId),
    workdir: layout.workDir(mountId),
    target: layout.mergedDir(mountId),
    options: [...CONTAINER_MOUNT_OPTIONS],
  }
}

export type InitEntry = { path: string; type: 'dir' | 'file'; target?: undefined } | { path: string; type: 'symlink'; target: string }

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
