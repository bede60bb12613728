/**
 * CLI: `create`, `run`, `start`, `stop`, `kill`, `wait`, `logs`, `rm`, `ps`, `diff`, `commit`,
 * `export`, `mount`, `umount` — docker's flags and output. Listed in ./commands.ts.
 */
import { Writable } from 'node:stream'
import type { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs, flag, value, values, FlagSpec, Parsed } from './args'
import { Io, processIo } from './io'
import { printFormatted } from './output'
import { renderTable } from '../format/table'
import { ago, truncateId, ellipsis } from '../format/units'
import { goQuote } from '../format/gofmt'
import type { CreateOptions } from '../containers/containers'
import type { Container } from '../containers/container'
import type { NetworkMode } from '../containers/record'

const CREATE_FLAGS: FlagSpec[] = [
  { name: 'name', value: true }, { name: 'env', short: 'e', value: true, multi: true }, { name: 'workdir', short: 'w', value: true },
  { name: 'user', short: 'u', value: true }, { name: 'entrypoint', value: true }, { name: 'network', value: true },
  { name: 'net', value: true }, { name: 'rm' }, { name: 'interactive', short: 'i' }, { name: 'runtime', value: true },
  { name: 'tty', short: 't' },
]

function createOptions(p: Parsed): CreateOptions {
  const network = (value(p, 'network') ?? value(p, 'net')) as NetworkMode | undefined
  const entrypoint = value(p, 'entrypoint')
  const o: CreateOptions = {
    env: values(p, 'env'), autoRemove: flag(p, 'rm'), openStdin: flag(p, 'interactive'), cmd: p.args.slice(1),
  }
  const name = value(p, 'name')
  if (name !== undefined) o.name = name
  const w = value(p, 'workdir')
  if (w !== undefined) o.workdir = w
  const u = value(p, 'user')
  if (u !== undefined) o.user = u
  if (entrypoint !== undefined) o.entrypoint = entrypoint
  if (network !== undefined) o.network = network
  const rt = value(p, 'runtime')
  if (rt !== undefined) o.runtime = rt
  return o
}

/** A Writable over the CLI's Io (tests), or the real stdio (bytes as they are). */
function sink(io: Io, which: 'out' | 'err'): Writable {
  if (io === processIo) {
    const s = which === 'out' ? process.stdout : process.stderr
    s.on('error', () => undefined) // EPIPE when the reader goes away; the process still runs to its end
    return s
  }
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      io[which](chunk.toString('utf8'))
      cb()
    },
  })
}

/** Runs `fn` for each named container, printing docker's per-container errors; exit 1 if any failed. */
async function each(names: string[], io: Io, fn: (name: string) => Promise<void>): Promise<number> {
  let rc = 0
  for (const n of names) {
    try {
      await fn(n)
    } catch (e) {
      if (!(e instanceof StrataError)) throw e
      io.err(`Error response from daemon: ${e.message}\n`)
      rc = 1
    }
  }
  return rc
}

function need(p: Parsed, cmd: string, n: number, usage: string): void {
  if (p.args.length < n) throw new StrataError('InvalidArgument', `"${cmd}" requires at least ${n} argument${n > 1 ? 's' : ''}.\nSee 'strata ${cmd} --help'.\n\nUsage:  strata ${usage}`)
}

/** No pseudo-terminal support (runc's console socket is not wired up): say so and go on without one. */
function warnTty(p: Parsed, io: Io): void {
  if (flag(p, 'tty')) io.err('WARNING: strata does not allocate a pseudo-TTY (-t); running with plain stdio\n')
}

export async function createCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, CREATE_FLAGS, true)
  warnTty(p, io)
  need(p, 'create', 1, 'create [OPTIONS] IMAGE [COMMAND] [ARG...]')
  const c = await store.containers.create(p.args[0], createOptions(p))
  io.out(`${c.id}\n`)
  return 0
}

/** Forwards SIGINT/SIGTERM/SIGHUP to the container while it runs in the foreground (docker's sig-proxy). */
function proxySignals(c: Container): () => void {
  const handlers: [NodeJS.Signals, () => void][] = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((s) => [s, () => { void c.kill(s).catch(() => undefined) }])
  for (const [s, h] of handlers) process.on(s, h)
  return () => { for (const [s, h] of handlers) process.off(s, h) }
}

async function attachRun(c: Container, io: Io, stdin: boolean): Promise<number> {
  const unproxy = io === processIo ? proxySignals(c) : () => undefined
  try {
    const res = await c.run({ stdout: sink(io, 'out'), stderr: sink(io, 'err'), ...(stdin ? { stdin: process.stdin } : {}) })
    if (res.error) io.err(`strata: Error response from daemon: failed to start container: ${res.error}\n`)
    return res.exitCode
  } finally {
    unproxy()
    // The process is gone: stop reading our stdin, or the CLI would wait for its EOF.
    if (stdin) process.stdin.destroy()
  }
}

export async function runCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [...CREATE_FLAGS, { name: 'detach', short: 'd' }], true)
  need(p, 'run', 1, 'run [OPTIONS] IMAGE [COMMAND] [ARG...]')
  warnTty(p, io)
  let c: Container
  try {
    c = await store.containers.create(p.args[0], createOptions(p))
  } catch (e) {
    // docker run: errors of the daemon (before the process) exit 125.
    if (e instanceof StrataError) {
      io.err(`strata: ${e.code === 'ImageNotFound' ? `Unable to find image '${p.args[0]}' locally\n` : ''}Error response from daemon: ${e.message}\n`)
      return 125
    }
    throw e
  }
  if (flag(p, 'detach')) {
    try {
      await c.start()
    } catch (e) {
      if (!(e instanceof StrataError)) throw e
      io.err(`strata: Error response from daemon: ${e.message}\n`)
      return 125
    }
    io.out(`${c.id}\n`)
    return 0
  }
  return attachRun(c, io, flag(p, 'interactive'))
}

export async function startCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'attach', short: 'a' }, { name: 'interactive', short: 'i' }])
  need(p, 'start', 1, 'start [OPTIONS] CONTAINER [CONTAINER...]')
  if (flag(p, 'attach')) {
    if (p.args.length > 1) throw new StrataError('InvalidArgument', 'you cannot start and attach multiple containers at once')
    return attachRun(await store.containers.get(p.args[0]), io, flag(p, 'interactive'))
  }
  return each(p.args, io, async (n) => {
    await (await store.containers.get(n)).start()
    io.out(`${n}\n`)
  })
}

export async function stopCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'time', short: 't', value: true }, { name: 'timeout', value: true }, { name: 'signal', short: 's', value: true }])
  need(p, 'stop', 1, 'stop [OPTIONS] CONTAINER [CONTAINER...]')
  const t = value(p, 'time') ?? value(p, 'timeout')
  return each(p.args, io, async (n) => {
    await (await store.containers.get(n)).stop({ ...(t !== undefined ? { timeout: Number(t) } : {}), ...(value(p, 'signal') ? { signal: value(p, 'signal')! } : {}) })
    io.out(`${n}\n`)
  })
}

export async function killCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'signal', short: 's', value: true }])
  need(p, 'kill', 1, 'kill [OPTIONS] CONTAINER [CONTAINER...]')
  return each(p.args, io, async (n) => {
    await (await store.containers.get(n)).kill(value(p, 'signal') ?? 'SIGKILL')
    io.out(`${n}\n`)
  })
}

export async function waitCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  need(p, 'wait', 1, 'wait CONTAINER [CONTAINER...]')
  return each(p.args, io, async (n) => {
    io.out(`${await (await store.containers.get(n)).wait()}\n`)
  })
}

export async function logsCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'timestamps', short: 't' }, { name: 'tail', short: 'n', value: true }])
  if (p.args.length !== 1) throw new StrataError('InvalidArgument', '"logs" requires exactly 1 argument.')
  let entries = await (await store.containers.get(p.args[0])).logs()
  const tail = value(p, 'tail')
  if (tail !== undefined && tail !== 'all') entries = Number(tail) > 0 ? entries.slice(-Number(tail)) : []
  for (const e of entries) {
    const line = flag(p, 'timestamps') ? `${e.time} ${e.log}` : e.log
    if (e.stream === 'stderr') io.err(line)
    else io.out(line)
  }
  return 0
}

export async function rmCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'force', short: 'f' }, { name: 'volumes', short: 'v' }])
  need(p, 'rm', 1, 'rm [OPTIONS] CONTAINER [CONTAINER...]')
  return each(p.args, io, async (n) => {
    await store.containers.remove(n, { force: flag(p, 'force') })
    io.out(`${n}\n`)
  })
}

const PS_HEADERS: Record<string, string> = {
  ID: 'CONTAINER ID', Names: 'NAMES', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED',
  Ports: 'PORTS', State: 'STATE', Status: 'STATUS', Size: 'SIZE', Labels: 'LABELS', Mounts: 'MOUNTS', Networks: 'NETWORKS',
}

export async function psCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [
    { name: 'all', short: 'a' }, { name: 'quiet', short: 'q' }, { name: 'no-trunc' }, { name: 'format', value: true },
    { name: 'latest', short: 'l' }, { name: 'last', short: 'n', value: true }, { name: 'size', short: 's' },
  ])
  if (p.args.length > 0) throw new StrataError('InvalidArgument', '"ps" accepts no arguments.')
  let rows = await store.containers.list({ all: flag(p, 'all') || flag(p, 'latest') || value(p, 'last') !== undefined })
  if (flag(p, 'latest')) rows = rows.slice(0, 1)
  const last = value(p, 'last')
  if (last !== undefined && Number(last) >= 0) rows = rows.slice(0, Number(last))
  const trunc = !flag(p, 'no-trunc')
  const now = Date.now()
  const data = rows.map((r) => ({
    ID: trunc ? truncateId(r.id) : r.id,
    Image: r.image,
    Command: goQuote(trunc ? ellipsis(r.command, 20) : r.command),
    CreatedAt: r.created.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000 UTC'),
    RunningFor: ago(r.created, now),
    Ports: '',
    State: r.state,
    Status: r.status,
    Size: '',
    Names: r.names.join(','),
    Labels: '',
    Mounts: '',
    Networks: '',
  }))
  if (flag(p, 'quiet')) {
    for (const d of data) io.out(`${d.ID}\n`)
    return 0
  }
  const fmt = value(p, 'format')
  if (fmt && fmt !== 'table') {
    printFormatted(io, fmt, data, PS_HEADERS)
    return 0
  }
  io.out(renderTable([
    ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
    ...data.map((d) => [d.ID, d.Image, d.Command, d.RunningFor, d.Status, d.Ports, d.Names]),
  ]))
  return 0
}

export async function diffCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  if (p.args.length !== 1) throw new StrataError('InvalidArgument', '"diff" requires exactly 1 argument.')
  for (const c of await (await store.containers.get(p.args[0])).diff()) io.out(`${c.kind} ${c.path}\n`)
  return 0
}

export async function commitCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [
    { name: 'message', short: 'm', value: true }, { name: 'author', short: 'a', value: true },
    { name: 'change', short: 'c', value: true, multi: true }, { name: 'pause', short: 'p' },
  ])
  if (p.args.length < 1 || p.args.length > 2) throw new StrataError('InvalidArgument', '"commit" requires at least 1 and at most 2 arguments.\nUsage:  strata commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]')
  const pause = p.flags.has('pause') ? flag(p, 'pause') : true
  const c = await store.containers.get(p.args[0])
  const id = await c.commit({
    ...(p.args[1] ? { ref: p.args[1] } : {}), ...(value(p, 'message') !== undefined ? { message: value(p, 'message') } : {}),
    ...(value(p, 'author') !== undefined ? { author: value(p, 'author') } : {}), changes: values(p, 'change'), pause,
  })
  io.out(`${id}\n`)
  return 0
}

export async function exportCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'output', short: 'o', value: true }])
  if (p.args.length !== 1) throw new StrataError('InvalidArgument', '"export" requires exactly 1 argument.')
  const c = await store.containers.get(p.args[0])
  const out = value(p, 'output')
  if (out) {
    await c.export(out)
    return 0
  }
  if (io === processIo && process.stdout.isTTY) throw new StrataError('InvalidArgument', 'cowardly refusing to save to a terminal. Use the -o flag or redirect')
  try {
    await c.export(sink(io, 'out'))
  } catch (e) {
    // The reader went away (`strata export c | head`): not an error of ours.
    if ((e as NodeJS.ErrnoException).code === 'EPIPE' || (e as StrataError).syscode === 'EPIPE') return 0
    throw e
  }
  return 0
}

export async function mountCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  need(p, 'mount', 1, 'mount CONTAINER [CONTAINER...]')
  return each(p.args, io, async (n) => {
    io.out(`${await (await store.containers.get(n)).mount()}\n`)
  })
}

export async function umountCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  need(p, 'umount', 1, 'umount CONTAINER [CONTAINER...]')
  return each(p.args, io, async (n) => {
    await (await store.containers.get(n)).unmount()
    io.out(`${n}\n`)
  })
}
