/** Builds small overlay-format layer stacks for the union view tests. Needs root (whiteouts). */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as os from 'node:os'
import { native } from '../../ts/native'
import { testing } from './testing'

export type Spec = Record<string, string | { dir: true; opaque?: boolean } | { whiteout: true } | { symlink: string }>

export interface Stack {
  root: string
  /** Lower dirs, top first. */
  lowers: string[]
  upper: string
  work: string
  mnt: string
  cleanup(): void
}

/** `layers` are given top first, like overlay's lowerdir. */
export function makeStack(layers: Spec[], base = os.tmpdir()): Stack {
  const root = fs.mkdtempSync(path.join(base, 'strata-union-'))
  const lowers = layers.map((spec, i) => {
    const dir = path.join(root, `l${i}`)
    fs.mkdirSync(dir)
    for (const [rel, v] of Object.entries(spec)) {
      const p = path.join(dir, rel)
      fs.mkdirSync(path.dirname(p), { recursive: true })
      if (typeof v === 'string') fs.writeFileSync(p, v)
      else if ('dir' in v) {
        fs.mkdirSync(p, { recursive: true })
        if (v.opaque) testing.unionSetOpaque(p)
      } else if ('whiteout' in v) testing.unionMakeWhiteout(p)
      else fs.symlinkSync(v.symlink, p)
    }
    return dir
  })
  const [upper, work, mnt] = ['upper', 'work', 'merged'].map((n) => path.join(root, n))
  for (const d of [upper, work, mnt]) fs.mkdirSync(d)
  return {
    root,
    lowers,
    upper,
    work,
    mnt,
    cleanup() {
      try {
        testing.unionUmount(mnt, true)
      } catch {
        /* not mounted */
      }
      fs.rmSync(root, { recursive: true, force: true })
    },
  }
}

/** Mounts the stack with the options of a container's rootfs (the native core's plan); read-only without the upper. */
export function mount(s: Stack, withUpper = true): void {
  const options = native.containerMountPlan(s.lowers, s.upper, s.work, s.mnt).options ?? []
  testing.unionMountOverlay(s.lowers, withUpper ? s.upper : undefined, withUpper ? s.work : undefined, options, s.mnt)
}

export function umount(s: Stack): void {
  testing.unionUmount(s.mnt, false)
}
