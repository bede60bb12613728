/**
 * The caller's streams: a source read into a staging file (load, import) and a staged file
 * copied into a destination (save, export). Both go through `stream.pipeline`, so every stream
 * has an error listener while in use (a stream error never reaches the event loop) and a failed
 * or aborted operation destroys them (a source that never ends stops being read at once).
 * Their errors become `StrataError('Io')` with the errno name in `syscode` when the error has
 * one, and the original error as `cause`.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { streamPromises } from './lazy'
import type { Readable, Writable } from 'node:stream'
import { StrataError } from './errors'
import type { Operation } from './operation'

/** A stream's error as a StrataError: `Io`, its errno name in `syscode`, the original as `cause`. */
export function streamError(e: unknown, what: string): StrataError {
  if (e instanceof StrataError) return e
  const err = e as Partial<NodeJS.ErrnoException> | undefined
  const message = err instanceof Error ? err.message : String(e)
  const syscode = typeof err?.code === 'string' && /^E[A-Z0-9]+$/.test(err.code) ? err.code : undefined
  const errno = typeof err?.errno === 'number' ? Math.abs(err.errno) : undefined
  return new StrataError('Io', `${what}: ${message}`, { syscode, errno, path: err?.path, cause: e })
}

/** Reads the caller's `source` to its end into `file` (created, mode 0600). */
export async function spool(op: Operation, source: Readable, file: string, what: string): Promise<void> {
  op.source(source)
  const sink = createWriteStream(file, { mode: 0o600 })
  try {
    await streamPromises.pipeline(source, sink, { signal: op.signal })
  } catch (e) {
    op.check()
    const fromSource = source.errored === e || !sink.errored
    throw streamError(e, fromSource ? `reading the ${what} stream` : `writing ${file}`)
  }
}

/** Copies `file` into the caller's `dest` (which is not ended: the caller may write more). */
export async function copyToStream(op: Operation, file: string, dest: Writable, what: string): Promise<void> {
  const src = createReadStream(file)
  try {
    await streamPromises.pipeline(src, dest, { end: false, signal: op.signal })
  } catch (e) {
    op.check()
    const fromFile = src.errored === e
    throw streamError(e, fromFile ? `reading ${file}` : `writing the ${what} stream`)
  }
}
