/**
 * CLI: `create`, `run`, `start`, `stop`, `kill`, `wait`, `logs`, `rm`, `ps`, `diff`, `commit`,
 * `export`, `mount`, `umount` — docker's flags and output. Listed in ./commands.ts.
 */
import type { Store } from '../store'
import { fsp } from '../internal/lazy'
import { StrataError } from '../errors'
import { parseArgs, flag, value, values, FlagSpec, Parsed } from './args'
import { Io, processIo } from './io'
import { printFormatted } from './output'
import { sink } from './streams'
import { readEnvFiles } from './envfile'
import { ago, truncateId, ellipsis, humanSizeWithPrecision } from '../format/units'
import { parseFilterArgs } from '../containers/filters'
import { goQuote } from '../format/gofmt'
import type { CreateOptions, ContainerSummary } from '../containers/containers'
import type { Container } from '../containers/container'
import type { NetworkMode } from '../containers/record'

const CREATE_FLAGS: FlagSpec[] = [
  { name: 'name', value: true }, { name: 'env', short: 'e', value: true, multi: true }, { name: 'workdir', short: 'w', value: true },
  { name: 'user', short: 'u', value: true }, { name: 'entrypoint', value: true }, { name: 'network', value: true },
  { name: 'net', value: true }, { name: 'rm' }, { name: 'interactive', short: 'i' }, { name: 'runtime', value: true },
  { name: 'tty', short: 't' }, { name: 'label', short: 'l', value: true, multi: true }, { name: 'env-file', value: true, multi: true },
  { name: 'security-opt', value: true, multi: true },
]

/**
 * `--security-opt` as the docker CLI sends it: `seccomp=FILE` becomes `seccomp=` and the file's
 * JSON (compacted); `seccomp=unconfined` and anything else pass as given (create checks them).
 */
async function securityOpts(p: Parsed): Promise<string[]> {
  const out: string[] = []
  for (const o of values(p, 'security-opt')) {
    const m = /^seccomp[=:]([\s\S]+)$/.exec(o)
    if (!m || m[1] === 'unconfined') {
      out.push(o)
      continue
    }
    let text: string
    try {
      text = await fsp.readFile(m[1], 'utf8')
    } catch (e) {
      throw new StrataError('InvalidArgument', `opening seccomp profile (${m[1]}) failed: ${(e as Error).message}`, { cause: e })
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      throw new StrataError('InvalidArgument', `compacting json for seccomp profile (${m[1]}) failed: ${(e as Error).message}`, { cause: e })
    }
    out.push(`seccomp=${JSON.stringify(json)}`)
  }
  return out
}

/** `-l KEY=VALUE` (a bare `KEY` has the empty value), as docker's ConvertKVStringsToMap. */
function labelsOf(p: Parsed): Record<string, string> {
  const out: Record<string, string> = {}
  for (const l of values(p, 'label')) {
    const eq = l.indexOf('=')
    if (eq < 0) out[l] = ''
    else out[l.slice(0, eq)] = l.slice(eq + 1)
  }
  return out
}

async function createOptions(p: Parsed, attach = true): Promise<CreateOptions> {
  const network = (value(p, 'network') ?? value(p, 'net')) as NetworkMode | undefined
  const entrypoint = value(p, 'entrypoint')
  const o: CreateOptions = {
    env: [...(await readEnvFiles(values(p, 'env-file'))), ...values(p, 'env')], autoRemove: flag(p, 'rm'), openStdin: flag(p, 'interactive'),
    cmd: p.args.slice(1), tty: flag(p, 'tty'), labels: labelsOf(p), attach,
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
  const so = await securityOpts(p)
  if (so.length) o.securityOpt = so
  return o
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

export async function createCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, CREATE_FLAGS, true)
  need(p, 'create', 1, 'create [OPTIONS] IMAGE [COMMAND] [ARG...]')
  const c = await store.containers.create(p.args[0], await createOptions(p))
  io.out(`${c.id}\n`)
  return 0
}

/** Forwards SIGINT/SIGTERM/SIGHUP to the container while it runs in the foreground (docker's sig-proxy). */
function proxySignals(c: Container): () => void {
  const handlers: [NodeJS.Signals, () => void][] = (['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]).map((s) => [s, () => { void c.kill(s).catch(() => undefined) }])
  for (const [s, h] of handlers) process.on(s, h)
  return () => { for (const [s, h] of handlers) process.off(s, h) }
}

/**
 * Runs the container's process attached to our stdio. With a terminal (created with `-t`) its
 * output is one stream; with `-i` too our terminal goes raw and the keyboard reaches it
 * (Ctrl-C as a byte: its line discipline signals its process group); with `-t` alone our own
 * signals are proxied to it, as docker's sig-proxy does.
 */
async function attachRun(c: Container, io: Io, interactive: boolean, sigProxy = true, detachKeys = 'ctrl-p,ctrl-q'): Promise<number> {
  const tty = Boolean((await c.info()).Config.Tty)
  const real = io === processIo
  const session = tty && real ? (require('./terminal') as typeof import('./terminal')).openTerminalSession(interactive) : undefined
  const unproxy = real && sigProxy && !(tty && interactive) ? proxySignals(c) : () => undefined
  try {
    const res = await c.run({
      stdout: sink(io, 'out'), ...(tty ? {} : { stderr: sink(io, 'err') }), ...(interactive ? { stdin: process.stdin } : {}),
      ...(session?.console ? { console: session.console } : {}), ...(tty && interactive ? { detachKeys } : {}),
    })
    // Detached with the keys: the container runs on, docker says nothing and exits 0.
    if (res.detached) return 0
    if (res.error) io.err(`strata: Error response from daemon: failed to start container: ${res.error}\n`)
    return res.exitCode
  } finally {
    session?.restore()
    unproxy()
    // The process is gone: stop reading our stdin, or the CLI would wait for its EOF.
    if (interactive && real) process.stdin.destroy()
  }
}

export async function runCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [...CREATE_FLAGS, { name: 'detach', short: 'd' }, { name: 'detach-keys', value: true }, { name: 'sig-proxy' }], true)
  need(p, 'run', 1, 'run [OPTIONS] IMAGE [COMMAND] [ARG...]')
  // Docker refuses `-it` without a terminal before it creates anything.
  if (!flag(p, 'detach') && io === processIo && flag(p, 'tty') && flag(p, 'interactive') && !process.stdin.isTTY) {
    io.err(`${(require('./terminal') as typeof import('./terminal')).NOT_A_TTY}\n`)
    return 1
  }
  let c: Container
  try {
    c = await store.containers.create(p.args[0], await createOptions(p, !flag(p, 'detach')))
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
  return attachRun(c, io, flag(p, 'interactive'), p.flags.has('sig-proxy') ? flag(p, 'sig-proxy') : true, value(p, 'detach-keys'))
}

export async function startCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'attach', short: 'a' }, { name: 'interactive', short: 'i' }, { name: 'detach-keys', value: true }])
  need(p, 'start', 1, 'start [OPTIONS] CONTAINER [CONTAINER...]')
  if (flag(p, 'attach')) {
    if (p.args.length > 1) throw new StrataError('InvalidArgument', 'you cannot start and attach multiple containers at once')
    return attachRun(await store.containers.get(p.args[0]), io, flag(p, 'interactive'), true, value(p, 'detach-keys'))
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
  LocalVolumes: 'LOCAL VOLUMES', Platform: 'PLATFORM',
}

const PS_TABLE = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}'

/**
 * docker's ContainerContext for one row: its fields in the order `{{json .}}` prints them
 * (sorted, as docker's MarshalJSON), `Label` a method (`{{.Label "k"}}`).
 */
export function psContext(r: ContainerSummary, trunc: boolean, now: number): Record<string, unknown> {
  const labels = Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).sort()
  const rw = humanSizeWithPrecision(r.sizeRw ?? 0, 3)
  return {
    Command: goQuote(trunc ? ellipsis(r.command, 20) : r.command),
    CreatedAt: goTimeString(r.created),
    ID: trunc ? truncateId(r.id) : r.id,
    Image: r.image,
    Labels: labels.join(','),
    LocalVolumes: '0',
    Mounts: '',
    Names: r.names.join(','),
    Networks: r.network,
    Platform: null,
    Ports: '',
    RunningFor: ago(r.created, now),
    Size: (r.sizeRootFs ?? 0) > 0 ? `${rw} (virtual ${humanSizeWithPrecision(r.sizeRootFs!, 3)})` : rw,
    State: r.state,
    Status: r.status,
    Label: (name: string) => r.labels[name] ?? '',
  }
}

/** Go's `time.Time.String()` of a whole-second time in UTC (`2026-11-30 14:13:36 +0000 UTC`). */
function goTimeString(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000 UTC')
}

export async function psCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [
    { name: 'all', short: 'a' }, { name: 'quiet', short: 'q' }, { name: 'no-trunc' }, { name: 'format', value: true },
    { name: 'latest', short: 'l' }, { name: 'last', short: 'n', value: true }, { name: 'size', short: 's' },
    { name: 'filter', short: 'f', value: true, multi: true },
  ])
  if (p.args.length > 0) throw new StrataError('InvalidArgument', '"ps" accepts no arguments.')
  const quiet = flag(p, 'quiet')
  const format = value(p, 'format') ?? ''
  const last = value(p, 'last')
  if (last !== undefined && !/^-?\d+$/.test(last)) throw new StrataError('InvalidArgument', `invalid argument "${last}" for "-n, --last" flag: strconv.ParseInt: parsing ${goQuote(last)}: invalid syntax`)
  const limit = flag(p, 'latest') ? 1 : last !== undefined ? Number(last) : -1
  // docker asks for sizes with -s, or when a custom format uses .Size.
  const size = flag(p, 'size') || (!quiet && /\.Size\b/.test(format))
  let rows: ContainerSummary[]
  try {
    rows = await store.containers.list({ all: flag(p, 'all'), limit, size, filters: parseFilterArgs(values(p, 'filter')) })
  } catch (e) {
    if (!(e instanceof StrataError) || e.message.startsWith('bad format of filter')) throw e
    io.err(`Error response from daemon: ${e.message}\n`)
    return 1
  }
  const trunc = !flag(p, 'no-trunc')
  const now = Date.now()
  const data = rows.map((r) => psContext(r, trunc, now))
  if (quiet) {
    for (const d of data) io.out(`${d.ID}\n`)
    return 0
  }
  const tpl = format === '' || format === 'table' ? PS_TABLE + (flag(p, 'size') ? '\t{{.Size}}' : '') : format
  printFormatted(io, tpl, data, PS_HEADERS)
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
