/** A store on a small tmpfs (16 MiB) with busybox loaded, and a way to fill that file system to the last byte. */
import type { ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Store } from '../../ts'
import { tmpDir } from './fs'
import { writeArchive } from './image'
import { busyboxImage } from './fixtures'

export interface FullDisk {
  /** Outside the tmpfs: archives to load from. */
  dir: string
  /** The tmpfs. */
  fsDir: string
  root: string
  store: Store
  /** Fills the tmpfs to the last byte. */
  fill(): void
  /** Frees the space `fill` took. */
  free(): void
}

export async function fullDisk(t: ExecutionContext, prepare: (s: Store, d: { dir: string }) => Promise<void> = async () => undefined): Promise<FullDisk> {
  const dir = tmpDir(t, 'strata-full-')
  const fsDir = path.join(dir, 'tmpfs')
  fs.mkdirSync(fsDir)
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', fsDir])
  const root = path.join(fsDir, 'root')
  writeArchive(path.join(dir, 'bb.tar'), [busyboxImage(['bb:1'])], 'docker25')
  const store = await Store.open({ root })
  await store.load(path.join(dir, 'bb.tar'))
  await prepare(store, { dir })
  const filler = path.join(fsDir, 'filler')
  return {
    dir, fsDir, root, store,
    fill() {
      const fd = fs.openSync(filler, 'a')
      try {
        for (const chunk of [1 << 20, 1 << 12, 1]) {
          const buf = Buffer.alloc(chunk)
          for (;;) {
            try {
              fs.writeSync(fd, buf)
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e
              break
            }
          }
        }
      } finally {
        fs.closeSync(fd)
      }
    },
    free() {
      fs.rmSync(filler, { force: true })
    },
  }
}

