/** Where CLI commands write (real stdio in the CLI, buffers in tests). */
import fs = require('node:fs')

export interface Io {
  out(s: string): void
  err(s: string): void
  /** Is stdout/stderr a terminal (progress bars only then). */
  readonly isTty: boolean
}

/**
 * Writes all of `s` to `fd` now. Text output goes straight to the file descriptor:
 * `process.stdout` would load Node's stream modules, a good part of a short command's start-up,
 * and on Linux its writes to files, pipes and terminals are synchronous anyway, so the order
 * with commands that do use it (`run`, `export`) is kept.
 */
function writeAll(fd: number, s: string): void {
  const buf = Buffer.from(s)
  let off = 0
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      // A non-blocking pipe that is full: wait a moment for the reader.
      if (code === 'EAGAIN') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1)
      // The reader went away (`strata images | head -1`): nothing more to say.
      else if (code === 'EPIPE') return
      else throw e
    }
  }
}

export const processIo: Io = {
  out: (s) => writeAll(1, s),
  err: (s) => writeAll(2, s),
  get isTty() {
    // node:tty loads the stream modules too: only asked by commands that draw progress.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('node:tty') as typeof import('node:tty')).isatty(2)
  },
}
