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
import { goUnitsHumanSize } from '../format/units'

/**
 * jsonmessage's `JSONProgress.String()`: the bar only on a terminal wider than 110 columns
 * (`[=====>      ] `, 50 steps, the `>` always drawn), then `%8v/%v` of go-units `HumanSize`.
 */
export function progressBar(current: number, total: number, columns: number): string {
  if (current <= 0 && total <= 0) return ''
  if (total <= 0) return goUnitsHumanSize(current).padStart(8)
  const pct = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2))
  const bar = columns > 110 ? `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}] ` : ''
  const numbers = current > total ? '' : `${goUnitsHumanSize(current).padStart(8)}/${goUnitsHumanSize(total)}`
  return bar + numbers
}

/** Renders pull events as `DisplayJSONMessagesStream` does, to `write`. */
export function pullRenderer(write: (s: string) => void, isTerminal: boolean, columns = 80): (e: PullEvent) => void {
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
    const text = progress ? `${e.id}: ${e.status} ${progressBar(e.current!, e.total!, columns)}` : `${e.id}: ${e.status}`
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

/**
 * The renderer for a pull's or a push's events on `io`: Docker's terminal view when stdout is a
 * terminal (as wide as it is: the bars need more than 110 columns), its plain lines otherwise.
 */
export function progressRenderer(io: Io): (e: PullEvent) => void {
  const terminal = io.isTty && Boolean(process.stdout.isTTY)
  return pullRenderer((s) => io.out(s), terminal, terminal ? process.stdout.columns ?? 80 : 80)
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
    ...(quiet ? {} : { onProgress: progressRenderer(io) }),
  })
  io.out(`${res.reference}\n`)
  return 0
}
