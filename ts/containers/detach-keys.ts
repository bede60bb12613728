/**
 * Docker's detach keys: typed on an attached terminal (`run -it`, `start -ai`, `exec -it`),
 * the sequence (default Ctrl-P Ctrl-Q) leaves the process running and returns the caller's
 * terminal. `parseDetachKeys` reads `--detach-keys` as docker's `term.ToBytes` does;
 * `DetachScanner` watches the keyboard's bytes: a partial match is held back, a broken one
 * passed on, a complete one ends the session and never reaches the container.
 */
import { StrataError } from '../errors'

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q'

/** `ctrl-a`…`ctrl-z`, `ctrl-@`, `ctrl-[`, `ctrl-\`, `ctrl-]`, `ctrl-^`, `ctrl-_`, or single characters, comma-separated. */
export function parseDetachKeys(keys: string): Buffer {
  const out: number[] = []
  for (const key of keys.split(',')) {
    if (key.length === 1) {
      out.push(key.charCodeAt(0))
      continue
    }
    const k = key.toLowerCase()
    const m = /^ctrl-(.)$/.exec(k)
    const special: Record<string, number> = { '@': 0, '[': 27, '\\': 28, ']': 29, '^': 30, _: 31 }
    if (m && m[1] >= 'a' && m[1] <= 'z') out.push(m[1].charCodeAt(0) - 96)
    else if (m && m[1] in special) out.push(special[m[1]])
    else throw new StrataError('InvalidArgument', `Invalid detach keys (${keys}) provided`)
  }
  return Buffer.from(out)
}

export class DetachScanner {
  readonly #seq: Buffer
  /** How much of the sequence the held bytes match. */
  #pos = 0

  constructor(seq: Buffer) {
    this.#seq = seq
  }

  /** The bytes to pass on, and whether the sequence is now complete (later bytes are dropped). */
  feed(chunk: Buffer): { pass: Buffer; detached: boolean } {
    if (this.#seq.length === 0) return { pass: chunk, detached: false }
    const pass: number[] = []
    for (const b of chunk) {
      if (b === this.#seq[this.#pos]) {
        this.#pos++
        if (this.#pos === this.#seq.length) {
          this.#pos = 0
          return { pass: Buffer.from(pass), detached: true }
        }
        continue
      }
      // Not the sequence after all: what was held goes on, then this byte (which may start a new match).
      pass.push(...this.#seq.subarray(0, this.#pos))
      this.#pos = 0
      if (b === this.#seq[0]) this.#pos = 1
      else pass.push(b)
    }
    return { pass: Buffer.from(pass), detached: false }
  }
}
