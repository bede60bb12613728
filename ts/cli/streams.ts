/** Writables over the CLI's output: the real stdio (bytes as they are), or the Io of a test. */
import type { Writable } from 'node:stream'
import { stream } from '../lazy'
import { Io, processIo } from './io'

/** A Writable over the CLI's Io (tests), or the real stdio (bytes as they are). */
export function sink(io: Io, which: 'out' | 'err'): Writable {
  if (io === processIo) {
    const s = which === 'out' ? process.stdout : process.stderr
    s.on('error', () => undefined) // EPIPE when the reader goes away; the process still runs to its end
    return s
  }
  return new stream.Writable({
    write(chunk: Buffer, _enc, cb) {
      io[which](chunk.toString('utf8'))
      cb()
    },
  })
}
