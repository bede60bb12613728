/**
 * File names are bytes; JavaScript strings are UTF-16. A name that is valid UTF-8 is its
 * decoded string; a name that is not (a Latin-1 `caf\xe9.txt` from an old archive or file
 * system) is carried as the *surrogate-escape* string Python uses: each byte that is not part
 * of a valid UTF-8 sequence becomes the lone surrogate U+DC80 + (byte - 0x80). The mapping is
 * one-to-one (decoded UTF-8 never holds a lone surrogate), so such names round-trip to the
 * same bytes, sort and compare like strings, and hash in cache keys (JSON escapes a lone
 * surrogate as `\udcXX`).
 *
 * Across the napi boundary (where a string is converted to UTF-8 and a lone surrogate would
 * become U+FFFD) they travel as `Buffer`s (`toBytes`) or, inside JSON, as a string when the
 * name is valid Unicode and `{"b": "<base64 of the bytes>"}` when it is not (`toWire` /
 * `fromWire`, read by crates/strata-napi's `WirePath`).
 */

/** Whether `s` holds no lone surrogate (so UTF-8 encodes it faithfully). */
export function isWellFormed(s: string): boolean {
  // In a `u` regexp a surrogate pair is one code point: only lone surrogates match.
  return !/\p{Cs}/u.test(s)
}

/** A path as the native side sends it in JSON. */
export type WirePath = string | { b: string }

/** Bytes → string (UTF-8, undecodable bytes surrogate-escaped). */
export function fromBytes(b: Uint8Array): string {
  let out = ''
  let i = 0
  while (i < b.length) {
    const c = b[i]
    if (c < 0x80) {
      // ASCII runs are the common case.
      let j = i + 1
      while (j < b.length && b[j] < 0x80) j++
      out += String.fromCharCode(...b.subarray(i, j))
      i = j
      continue
    }
    const len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0
    let cp = -1
    if (len > 0 && i + len <= b.length) {
      let v = len === 2 ? c & 0x1f : len === 3 ? c & 0x0f : c & 0x07
      let ok = true
      for (let k = 1; k < len; k++) {
        const x = b[i + k]
        if ((x & 0xc0) !== 0x80) { ok = false; break }
        v = (v << 6) | (x & 0x3f)
      }
      // No overlong forms, no surrogates, nothing past U+10FFFF.
      const min = len === 2 ? 0x80 : len === 3 ? 0x800 : 0x10000
      if (ok && v >= min && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff)) cp = v
    }
    if (cp >= 0) {
      out += String.fromCodePoint(cp)
      i += len
    } else {
      out += String.fromCharCode(0xdc00 + c)
      i++
    }
  }
  return out
}

/** String → bytes (the inverse of `fromBytes`). */
export function toBytes(s: string): Buffer {
  if (isWellFormed(s)) return Buffer.from(s, 'utf8')
  const parts: Buffer[] = []
  let run = ''
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i)
    if (u >= 0xd800 && u <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      run += s[i] + s[i + 1]
      i++
    } else if (u >= 0xdc80 && u <= 0xdcff) {
      if (run) parts.push(Buffer.from(run, 'utf8'))
      run = ''
      parts.push(Buffer.from([u - 0xdc00]))
    } else {
      // Any other lone surrogate has no bytes it could stand for: U+FFFD, as UTF-8 encoding does.
      run += s[i]
    }
  }
  if (run) parts.push(Buffer.from(run, 'utf8'))
  return Buffer.concat(parts)
}

/** A path for JSON sent to the native side. */
export function toWire(s: string): WirePath {
  return isWellFormed(s) ? s : { b: toBytes(s).toString('base64') }
}

/** A path from JSON the native side sent. */
export function fromWire(w: WirePath): string {
  return typeof w === 'string' ? w : fromBytes(Buffer.from(w.b, 'base64'))
}
