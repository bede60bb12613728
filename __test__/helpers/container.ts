/** Container test helpers: a store with busybox-based images loaded, run/CLI shorthands. */
import * as path from 'node:path'
import type { ExecutionContext } from 'ava'
import { Store } from '../../ts'
import { tmpDir } from './fs'
import { tar, TarEntry } from './tar'
import { buildImage, busyboxEntries, writeArchive, BuiltImage } from './image'

/** busybox + a layer with files the diff/commit tests change, add to and delete. */
export function appImage(tags = ['app:1'], config: Record<string, unknown> = {}): BuiltImage {
  const app: TarEntry[] = [
    { name: 'opt/', type: 'dir' }, { name: 'opt/app/', type: 'dir' },
    { name: 'opt/app/old.txt', data: 'old\n' }, { name: 'opt/app/keep.txt', data: 'keep\n' },
    { name: 'srv/', type: 'dir' }, { name: 'srv/data.txt', data: 'data\n' },
    { name: 'etc/', type: 'dir' }, { name: 'etc/motd', data: 'hello from the app layer\n' },
  ]
  return buildImage({
    layers: [tar(busyboxEntries()), tar(app)], tags, config,
    createdBy: ['/bin/sh -c #(nop) ADD file:busybox in / ', '/bin/sh -c #(nop) COPY dir:app in / '],
  })
}

/** An image of `n` layers: busybox at the bottom, then layer i adds /layers/<i> and overwrites /top. */
export function manyLayerImage(n: number, tags = ['many:1']): BuiltImage {
  const layers: Buffer[] = [tar(busyboxEntries())]
  for (let i = 1; i < n; i++) {
    layers.push(tar([{ name: 'layers/', type: 'dir' }, { name: `layers/${i}`, data: `${i}\n` }, { name: 'top', data: `layer ${i}\n` }]))
  }
  return buildImage({ layers, tags })
}


export interface Fixture {
  dir: string
  root: string
  store: Store
}

/** A fresh store under a tmp dir with `images` loaded. */
export async function storeWith(t: ExecutionContext, images: BuiltImage[]): Promise<Fixture> {
  const dir = tmpDir(t, 'strata-ctr-')
  const root = path.join(dir, 'root')
  writeArchive(path.join(dir, 'images.tar'), images, 'docker25')
  const store = await Store.open({ root })
  await store.load(path.join(dir, 'images.tar'))
  t.teardown(async () => {
    // Containers still running at the end of a test: kill them so tmpDir can unmount and delete.
    try {
      const s = await Store.open({ root })
      for (const c of await s.containers.list({ all: true })) await s.containers.remove(c.id, { force: true }).catch(() => undefined)
    } catch { /* store gone */ }
  })
  return { dir, root, store }
}
