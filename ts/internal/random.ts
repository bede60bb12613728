/**
 * Random bytes for unique names (layer cache-ids, temp files, staging dirs), read from the
 * kernel's `/dev/urandom` a block at a time and handed out in order. node:crypto's randomBytes
 * gives the same bytes but costs a CLI command the module's load (it pulls in the stream and
 * cipher modules: 4-10 ms), and a build needs nothing else of it; the Web Crypto global is
 * dearer still. Where `/dev/urandom` cannot be read, node:crypto it is.
 */
import fs = require('node:fs')
import { crypto } from './lazy'

const BLOCK = 512
let pool = Buffer.alloc(0)
let used = 0

function refill(size: number): void {
  const block = Buffer.alloc(size)
  try {
    const fd = fs.openSync('/dev/urandom', 'r')
    try {
      for (let got = 0; got < size;) {
        const n = fs.readSync(fd, block, got, size - got, null)
        if (n <= 0) throw new Error('short read of /dev/urandom')
        got += n
      }
    } finally {
      fs.closeSync(fd)
    }
    pool = block
  } catch {
    pool = crypto.randomBytes(size)
  }
  used = 0
}

/** `n` random bytes (a new buffer: the caller may keep it). */
export function randomBytes(n: number): Buffer {
  if (used + n > pool.length) refill(Math.max(BLOCK, n))
  const out = Buffer.from(pool.subarray(used, used + n))
  used += n
  return out
}
