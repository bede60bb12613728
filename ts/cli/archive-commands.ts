/** CLI: `load`, `save`, `import`. */
import type { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs, flag, value, values } from './args'
import { Io } from './io'
import { LoadProgress } from '../archive/load'
import { humanSize } from '../format/units'
import { hex } from '../internal/layout'

/** Docker-like per-layer progress lines on a terminal: `abc123def456: Loading layer [==>   ]  1.2MB/3.4MB`. */
export function progressPrinter(io: Io): ((p: LoadProgress) => void) | undefined {
  if (!io.isTty) return undefined
  const lines = new Map<string, number>()
  let last = 0
  return (p) => {
    if (p.status === 'Already exists') return
    const id = hex(p.diffId).slice(0, 12)
    const width = 50
    const done = p.total > 0 ? Math.min(width, Math.round((p.current / p.total) * width)) : width
    const bar = p.status === 'Loaded' ? '' : ` [${'='.repeat(Math.max(0, done - 1))}${done > 0 && done < width ? '>' : done === width ? '=' : ''}${' '.repeat(width - done)}]  ${humanSize(p.current)}/${humanSize(p.total)}`
    const text = `${id}: ${p.status === 'Loaded' ? 'Loading layer' : p.status}${bar}`
    const now = Date.now()
    if (p.status === 'Loading layer' && now - last < 100 && lines.has(id)) return
    last = now
    if (!lines.has(id)) {
      lines.set(id, lines.size)
      io.err(`${text}\n`)
    } else {
      const up = lines.size - lines.get(id)!
      io.err(`\x1b[${up}A\r\x1b[2K${text}\x1b[${up}B\r`)
    }
  }
}

export async function loadCommand(store: Store, argv: string[], io: Io, stdin: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin): Promise<number> {
  const p = parseArgs(argv, [{ name: 'input', short: 'i', value: true }, { name: 'quiet', short: 'q' }])
  if (p.args.length > 0) throw new StrataError('InvalidArgument', '"load" accepts no arguments.')
  const input = value(p, 'input')
  if (!input && stdin.isTTY) throw new StrataError('InvalidArgument', 'requested load from stdin, but stdin is empty')
  const res = await store.load(input ?? (stdin as import('node:stream').Readable), { onProgress: flag(p, 'quiet') ? undefined : progressPrinter(io) })
  for (const l of res.lines) io.out(`${l}\n`)
  return 0
}

export async function saveCommand(store: Store, argv: string[], io: Io, stdout: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout): Promise<number> {
  const p = parseArgs(argv, [{ name: 'output', short: 'o', value: true }, { name: 'format', value: true }])
  if (p.args.length === 0) throw new StrataError('InvalidArgument', '"save" requires at least 1 argument.')
  const format = value(p, 'format') ?? 'docker'
  if (format !== 'docker' && format !== 'oci') throw new StrataError('InvalidArgument', `invalid --format ${format}: docker or oci`)
  const out = value(p, 'output')
  if (!out && stdout.isTTY) throw new StrataError('InvalidArgument', 'cowardly refusing to save to a terminal. Use the -o flag or redirect')
  await store.save(p.args, out ?? (stdout as import('node:stream').Writable), { format })
  void io
  return 0
}

export async function importCommand(store: Store, argv: string[], io: Io, stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const p = parseArgs(argv, [{ name: 'message', short: 'm', value: true }, { name: 'change', short: 'c', value: true, multi: true }, { name: 'platform', value: true }])
  if (p.args.length < 1 || p.args.length > 2) throw new StrataError('InvalidArgument', '"import" requires 1 or 2 arguments.\nUsage:  strata import [OPTIONS] file|- [REPOSITORY[:TAG]]')
  const [src, ref] = p.args
  const platform = value(p, 'platform')
  const [os, architecture] = platform ? platform.split('/') : []
  const id = await store.import(src === '-' ? (stdin as import('node:stream').Readable) : src, {
    ref, message: value(p, 'message'), changes: values(p, 'change'), sourceName: src,
    ...(platform ? { platform: { os, architecture } } : {}),
  })
  io.out(`${id}\n`)
  return 0
}
