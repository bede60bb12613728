/** The invariants a store must satisfy after any crash, once it is reopened (cleanup has run). */
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { ExecutionContext } from 'ava'
import { Store } from '../../ts'
import { native } from '../../ts/internal/native'

export async function checkConsistent(t: ExecutionContext, root: string): Promise<void> {
  await Store.open({ root })
  const layerdb = path.join(root, 'image/overlay2/layerdb/sha256')
  const referenced = new Set<string>()
  for (const chain of fs.readdirSync(layerdb)) {
    const cacheId = fs.readFileSync(path.join(layerdb, chain, 'cache-id'), 'utf8')
    referenced.add(cacheId)
    t.true(fs.existsSync(path.join(root, 'overlay2', cacheId, 'committed')), `layer ${chain} complete`)
    t.true(fs.existsSync(path.join(layerdb, chain, 'tar-split.json.gz')), `layer ${chain} has its tar-split`)
  }
  const mounts = path.join(root, 'image/overlay2/layerdb/mounts')
  for (const cid of fs.readdirSync(mounts)) {
    t.true(fs.existsSync(path.join(root, 'containers', cid, 'config.v2.json')), `mount record ${cid} has a container`)
    for (const f of ['mount-id', 'init-id']) {
      // No init-id: a container of an image as deep as the kernel allows has no init layer.
      if (f === 'mount-id' || fs.existsSync(path.join(mounts, cid, f))) referenced.add(fs.readFileSync(path.join(mounts, cid, f), 'utf8'))
    }
  }
  for (const d of fs.readdirSync(path.join(root, 'overlay2'))) if (d !== 'l') t.true(referenced.has(d), `overlay2/${d} referenced`)
  // Staging of a live process (its `.lock` held: a store this test still has open) stays.
  const tmp = path.join(root, 'tmp')
  const held = (name: string): boolean => {
    const lock = fs.existsSync(path.join(tmp, `${name}.lock`)) ? native.tryLock(path.join(tmp, `${name}.lock`), true) : undefined
    lock?.release()
    return lock === null
  }
  const left = fs.readdirSync(tmp).filter((n) => !held(n.replace(/\.lock$/, '')))
  t.deepEqual(left, [], 'no staging left')
  t.deepEqual(fs.readdirSync(path.join(root, 'image/overlay2/layerdb/tmp')), [], 'no layerdb write-set left')
  for (const l of fs.readdirSync(path.join(root, 'overlay2/l'))) t.true(fs.existsSync(path.join(root, 'overlay2/l', l)), `l/${l} resolves`)
  // Every image's layers exist.
  const s = await Store.open({ root })
  for (const img of await s.images.list({ all: true })) t.truthy(await s.images.inspect(img.id))
}
