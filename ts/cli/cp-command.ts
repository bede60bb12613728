/**
 * CLI: `cp [-a] [-L] [-q] CONTAINER:SRC DEST|-` and `cp [-a] [-L] [-q] SRC|- CONTAINER:DEST`.
 * The copy itself is the API's (`Container.copyFrom` / `copyTo`); here: which side is the
 * container (docker's `splitCpArg`), docker's errors (the daemon's prefixed "Error response from
 * daemon: "), and the progress docker shows on a terminal ("Successfully copied 2.05kB to ...").
 */
import type { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs, flag } from './args'
import { Io, processIo } from './io'
import { sink } from './streams'
import { humanSizeWithPrecision } from '../format/units'

/** Errors the daemon's half of a copy reports (docker prints them after "Error response from daemon: "). */
const DAEMON_CODES = new Set(['ContainerNotFound', 'AmbiguousReference', 'PathNotFound', 'NotADirectory', 'UnsafeLayerEntry', 'CorruptArchive', 'Conflict'])

/** docker `splitCpArg`: `CONTAINER:PATH`, unless the argument is an absolute or `./` path. */
export function splitCpArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/')) return { path: arg }
  const i = arg.indexOf(':')
  if (i < 0 || arg.slice(0, i).startsWith('.')) return { path: arg }
  return { container: arg.slice(0, i), path: arg.slice(i + 1) }
}

/** What docker draws on a terminal while it copies (cursor saved, a line rewritten, then a summary). */
class Progress {
  readonly #write: (s: string) => void
  #timer?: NodeJS.Timeout
  #shown = -1

  constructor(write: (s: string) => void, header: string, bytes: () => number) {
    this.#write = write
    write('\x1b[sPreparing to copy...')
    write(`\x1b[?25l\x1b[u\x1b[2K${header}${humanSizeWithPrecision(0, 3)}`)
    this.#timer = setInterval(() => {
      const n = bytes()
      if (n === this.#shown) return
      this.#shown = n
      write(`\x1b[${header.length + 1}G\x1b[0K${humanSizeWithPrecision(n, 3)}`)
    }, 75)
  }

  done(summary: string): void {
    clearInterval(this.#timer)
    this.#write(`\x1b[?25h\x1b[u\x1b[2K${summary}\n`)
  }
}

export async function cpCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'archive', short: 'a' }, { name: 'follow-link', short: 'L' }, { name: 'quiet', short: 'q' }])
  if (p.args.length !== 2) {
    throw new StrataError('InvalidArgument', `"cp" requires exactly 2 arguments.\nSee 'strata cp --help'.\n\nUsage:  strata cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tstrata cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH`)
  }
  const fail = (msg: string): number => {
    io.err(`${msg}\n`)
    return 1
  }
  if (p.args[0] === '') return fail('source can not be empty')
  if (p.args[1] === '') return fail('destination can not be empty')
  const src = splitCpArg(p.args[0])
  const dst = splitCpArg(p.args[1])
  if (src.container !== undefined && dst.container !== undefined) return fail('copying between containers is not supported')
  if (src.container === undefined && dst.container === undefined) return fail('must specify at least one container source')
  // docker: progress unless -q, and never without a terminal on stdout.
  const quiet = flag(p, 'quiet') || !(io === processIo ? process.stdout.isTTY : io.isTty)
  const counted = { bytes: 0 }
  try {
    if (src.container !== undefined) {
      const c = await store.containers.get(src.container)
      if (dst.path === '-') {
        await c.copyFrom(src.path, sink(io, 'out'), { followLink: flag(p, 'follow-link') })
        return 0
      }
      const progress = quiet ? undefined : new Progress((s) => io.err(s), 'Copying from container - ', () => counted.bytes)
      const res = await c.copyFrom(src.path, dst.path, { followLink: flag(p, 'follow-link'), onProgress: (n) => { counted.bytes = n } })
      progress?.done(`Successfully copied ${humanSizeWithPrecision(res.bytes, 3)} to ${res.destination}`)
      return 0
    }
    const c = await store.containers.get(dst.container!)
    const input = src.path === '-' ? process.stdin : src.path
    const progress = quiet ? undefined : new Progress((s) => io.err(s), 'Copying to container - ', () => counted.bytes)
    const res = await c.copyTo(input, dst.path, { followLink: flag(p, 'follow-link'), copyUIDGID: flag(p, 'archive'), onProgress: (n) => { counted.bytes = n } })
    progress?.done(`Successfully copied ${humanSizeWithPrecision(res.bytes, 3)} to ${res.destination}`)
    return 0
  } catch (e) {
    if (!(e instanceof StrataError)) throw e
    return fail(DAEMON_CODES.has(e.code) ? `Error response from daemon: ${e.message}` : e.message)
  }
}
