/**
 * CLI: `pull [-a|--all-tags] [-q|--quiet] [--platform os/arch[/variant]] NAME[:TAG|@DIGEST]`.
 *
 * Output as the docker CLI writes it to stdout: `Using default tag: latest` when no tag was
 * given, then the daemon's messages (jsonmessage: when stdout is not a terminal, only lines
 * without a progress bar; on a terminal, one line per layer redrawn in place with Docker's bar
 * and byte counts), then the full reference. `-q` prints only the reference.
 */
import { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs, flag, value } from './args'
import { Io } from './io'
import { PullEvent } from '../registry/pull'
import { parseNormalizedNamed } from '../reference'
import { humanSizeWithPrecision } from '../format/units'

/** jsonmessage's `JSONProgress.String()`: `[=====>     ]  1.2MB/3.4MB` (bar width 50). */
export function progressBar(current: number, total: number): string {
  if (total <= 0) return humanSizeWithPrecision(current, 3)
  const width = 50
  const filled = Math.min(width, Math.floor((current / total) * width))
  let bar = '='.repeat(filled)
  if (filled < width) bar += '>' + ' '.repeat(width - filled - 1)
  else bar = '='.repeat(width - 1) + '>'
  const amount = `${humanSizeWithPrecision(current, 3)}/${humanSizeWithPrecision(total, 3)}`
  return `[${bar}] ${amount.padStart(18)}`
}

/** Renders pull events as `DisplayJSONMessagesStream` does, to `write`. */
export function pullRenderer(write: (s: string) => void, isTerminal: boolean): (e: PullEvent) => void {
  // Lines of the layers shown so far (terminal): an id's line is redrawn in place.
  let ids = new Map<string, number>()
  let lastDraw = 0
  return (e) => {
    const progress = e.current !== undefined
    if (!isTerminal) {
      if (progress) return // no progress bars off a terminal
      write(e.id ? `${e.id}: ${e.status}\n` : `${e.status}\n`)
      return
    }
    if (!e.id) {
      ids = new Map()
      write(`${e.status}\n`)
      return
    }
    const now = Date.now()
    if (progress && ids.has(e.id) && now - lastDraw < 100 && e.current! < e.total!) return
    lastDraw = now
    const text = progress ? `${e.id}: ${e.status} ${progressBar(e.current!, e.total!)}` : `${e.id}: ${e.status}`
    let line = ids.get(e.id)
    if (line === undefined) {
      line = ids.size
      ids.set(e.id, line)
      write('\n')
    }
    const up = ids.size - line
    // cursor up to the id's line, clear it, draw, cursor back down
    write(`\x1b[${up}A\r\x1b[2K${text}\r\x1b[${up}B`)
  }
}

export async function pullCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'all-tags', short: 'a' }, { name: 'quiet', short: 'q' }, { name: 'platform', value: true }, { name: 'disable-content-trust' }])
  if (p.args.length !== 1) throw new StrataError('InvalidArgument', '"pull" requires exactly 1 argument.\nSee \'strata pull --help\'.\n\nUsage:  strata pull [OPTIONS] NAME[:TAG|@DIGEST]\n\nDownload an image from a registry')
  const name = p.args[0]
  const quiet = flag(p, 'quiet')
  const all = flag(p, 'all-tags')
  const ref = parseNormalizedNamed(name)
  if (!all && ref.tag === undefined && ref.digest === undefined && !quiet) io.out('Using default tag: latest\n')
  const platform = value(p, 'platform') ?? process.env.DOCKER_DEFAULT_PLATFORM
  const res = await store.pull(name, {
    allTags: all,
    ...(platform ? { platform } : {}),
    ...(quiet ? {} : { onProgress: pullRenderer((s) => io.out(s), io.isTty) }),
  })
  io.out(`${res.reference}\n`)
  return 0
}
