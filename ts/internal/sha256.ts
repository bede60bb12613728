/**
 * sha256 on the JS side's small inputs (cache keys, record names, config bytes), by the core's
 * sha256 through the native addon, which every path that hashes has loaded anyway: `node:crypto`
 * would cost a CLI command its load (it pulls in streams and the cipher modules, ~5 ms).
 */
import { native } from './native'

/** `sha256:<hex>` of `data` (a string is hashed as its UTF-8 bytes, as `hash.update(s)` does). */
export function sha256(data: string | Uint8Array): string {
  return native.sha256Buffer(typeof data === 'string' ? Buffer.from(data, 'utf8') : data)
}

/** The hex digits of `sha256(data)`. */
export function sha256Hex(data: string | Uint8Array): string {
  return sha256(data).slice(7)
}
