/** What a store holds, to assert that a failed operation left it exactly as it was. */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import type { Store } from '../../ts'

const NOT_CONTENT = new Set(['lock', 'lock.wait', 'lock.gen', 'tmp', 'leases'])

/**
 * Every entry of the store (type, mode, owner, content hash, link target) but the lock files,
 * staging (`tmp/`) and leases, which are not store content.
 */
export function storeContent(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      if (!rel && NOT_CONTENT.has(name)) continue
      const r = rel ? `${rel}/${name}` : name
      const p = path.join(root, r)
      const st = fs.lstatSync(p)
      let what = `${st.mode.toString(8)} ${st.uid}:${st.gid}`
      if (st.isFile()) what += ` ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`
      if (st.isSymbolicLink()) what += ` -> ${fs.readlinkSync(p)}`
      out[r] = what
      if (st.isDirectory()) walk(r)
    }
  }
  walk('')
  return out
}
/** Entries left under `tmp/` and `leases/` once the store's background work is done. */
export async function leftovers(store: Store): Promise<string[]> {
  await store.close()
  return ['tmp', 'leases'].flatMap((d) => fs.readdirSync(path.join(store.root, d)).map((n) => `${d}/${n}`))
}
