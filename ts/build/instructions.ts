/**
 * strata's semantic pass over the parsed Dockerfile: each `Node` becomes a typed command,
 * checked against the whitelist of instructions and of each instruction's flags, with Docker's
 * per-instruction rules and messages (BuildKit's `frontend/dockerfile/instructions`), and the
 * commands are grouped into stages (`FROM ... [AS name]`; ARGs before the first FROM are the
 * global "meta" args). Every error is a `BuildError('DockerfileParse')` carrying the line.
 *
 * Nothing is substituted here: variables are expanded per step by the planner (./plan.ts),
 * with the ENV and ARG values in scope at that step.
 */
import { Node, Heredoc, ParsedDockerfile, nodeFromLine } from './dockerfile'
import { BuildError } from './errors'

interface Base {
  line: number
  endLine: number
  /** The logical line as written (continuations joined). */
  original: string
}

export interface EnvCommand extends Base { kind: 'env'; pairs: [string, string][] }
export interface LabelCommand extends Base { kind: 'label'; pairs: [string, string][] }
export interface MaintainerCommand extends Base { kind: 'maintainer'; maintainer: string }
export interface CopyCommand extends Base {
  kind: 'copy' | 'add'
  /** Sources and destination, unexpanded; the last is the destination. */
  sourcesAndDest: string[]
  chown: string
  chmod: string
  /** COPY --from: a stage name, stage index or image. */
  from: string
  heredocs: Heredoc[]
}
export interface RunCommand extends Base {
  kind: 'run'
  cmdLine: string[]
  prependShell: boolean
  /** `--network=` of this step: default (the build's), none or host. */
  network: 'default' | 'none' | 'host'
  heredocs: Heredoc[]
}
export interface WorkdirCommand extends Base { kind: 'workdir'; path: string }
export interface CmdCommand extends Base { kind: 'cmd' | 'entrypoint'; cmdLine: string[] | null; prependShell: boolean }
export interface HealthcheckCommand extends Base {
  kind: 'healthcheck'
  test: string[]
  /** Nanoseconds, 0 = inherit. */
  interval: number
  timeout: number
  startPeriod: number
  retries: number
  /** The flag values as written (for the history line). */
  raw: { interval: string; timeout: string; startPeriod: string; retries: string }
}
export interface ExposeCommand extends Base { kind: 'expose'; ports: string[] }
export interface UserCommand extends Base { kind: 'user'; user: string }
export interface VolumeCommand extends Base { kind: 'volume'; volumes: string[] }
export interface StopSignalCommand extends Base { kind: 'stopsignal'; signal: string }
export interface ArgCommand extends Base { kind: 'arg'; args: { key: string; value?: string }[] }
export interface ShellCommand extends Base { kind: 'shell'; shell: string[] }
export interface OnbuildCommand extends Base { kind: 'onbuild'; expression: string }

export type Command = EnvCommand | LabelCommand | MaintainerCommand | CopyCommand | RunCommand | WorkdirCommand
  | CmdCommand | HealthcheckCommand | ExposeCommand | UserCommand | VolumeCommand | StopSignalCommand | ArgCommand
  | ShellCommand | OnbuildCommand

export interface Stage {
  /** Lower-cased `AS` name, or '' */
  name: string
  /** The image (unexpanded: meta args apply) or an earlier stage's name. */
  baseName: string
  platform: string
  line: number
  commands: Command[]
  /** Index among the stages. */
  index: number
}

export interface Instructions {
  stages: Stage[]
  /** ARGs before the first FROM. */
  metaArgs: ArgCommand[]
  escape: string
}

/** Instructions strata knows (Docker's list). */
export const INSTRUCTIONS = ['add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label',
  'maintainer', 'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir'] as const

const GO_DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }

/** Go's time.ParseDuration, in nanoseconds. */
export function parseGoDuration(s: string): number {
  const orig = s
  let neg = false
  if (s.startsWith('-') || s.startsWith('+')) {
    neg = s[0] === '-'
    s = s.slice(1)
  }
  if (s === '0') return 0
  if (s === '') throw new Error(`time: invalid duration ${JSON.stringify(orig)}`)
  let total = 0
  while (s !== '') {
    const m = /^(\d*)(?:\.(\d*))?/.exec(s)!
    if (m[0] === '' || m[0] === '.') throw new Error(`time: invalid duration ${JSON.stringify(orig)}`)
    s = s.slice(m[0].length)
    const u = /^[^\d.]+/.exec(s)
    if (!u) throw new Error(`time: missing unit in duration ${JSON.stringify(orig)}`)
    const unit = GO_DURATION_UNITS[u[0]]
    if (unit === undefined) throw new Error(`time: unknown unit ${JSON.stringify(u[0])} in duration ${JSON.stringify(orig)}`)
    s = s.slice(u[0].length)
    total += Number(m[1] || '0') * unit + (m[2] ? Math.round(Number(`0.${m[2]}`) * unit) : 0)
  }
  return neg ? -total : total
}

/** Docker's BFlags: `--name=value` / `--name` words checked against the flags an instruction takes. */
class Flags {
  readonly #values = new Map<string, string>()
  constructor(private readonly words: string[], private readonly allowed: Record<string, 'string' | 'bool'>) {}

  parse(): void {
    for (const arg of this.words) {
      if (!arg.startsWith('--')) throw new Error(`Arg should start with -- : ${arg}`)
      if (arg === '--') return
      const body = arg.slice(2)
      const eq = body.indexOf('=')
      const name = eq < 0 ? body : body.slice(0, eq)
      const value = eq < 0 ? undefined : body.slice(eq + 1)
      const type = this.allowed[name]
      if (!type) throw new Error(`Unknown flag: ${name}`)
      if (this.#values.has(name)) throw new Error(`Duplicate flag specified: ${name}`)
      if (type === 'bool') {
        const v = (value ?? 'true').toLowerCase()
        if (!['true', 'false', '1', '0', 't', 'f'].includes(v)) throw new Error(`Expecting boolean value for flag ${name}, not: ${value}`)
        this.#values.set(name, v === 'true' || v === '1' || v === 't' ? 'true' : 'false')
        continue
      }
      if (value === undefined) throw new Error(`Missing a value on flag: ${name}`)
      this.#values.set(name, value)
    }
  }

  get(name: string): string {
    return this.#values.get(name) ?? ''
  }
}

function fail(node: Node, message: string): never {
  throw new BuildError('DockerfileParse', `dockerfile parse error line ${node.startLine}: ${message}`, { line: node.startLine })
}

function base(node: Node): Base {
  return { line: node.startLine, endLine: node.endLine, original: node.original }
}

function flags(node: Node, allowed: Record<string, 'string' | 'bool'> = {}): Flags {
  const f = new Flags(node.flags, allowed)
  f.parse()
  return f
}

function kvps(node: Node, name: string): [string, string][] {
  const args = node.values
  if (args.length === 0) throw new Error(`${name} requires at least one argument`)
  if (args.length % 2 !== 0) throw new Error(`Bad input to ${name}, too many arguments`)
  const out: [string, string][] = []
  for (let i = 0; i < args.length; i += 2) {
    if (args[i].length === 0) throw new Error(`${name} names can not be blank`)
    out.push([args[i], args[i + 1]])
  }
  return out
}

function exactlyOne(node: Node, name: string): string {
  if (node.values.length !== 1) throw new Error(`${name} requires exactly one argument`)
  return node.values[0]
}

/** One command from one node (Docker's ParseInstruction, minus FROM). */
export function parseCommand(node: Node): Command | Stage {
  try {
    return parseNode(node)
  } catch (e) {
    if (e instanceof BuildError) throw e
    fail(node, (e as Error).message)
  }
}

function shellDependent(node: Node, emptyAsNil: boolean): { cmdLine: string[] | null; prependShell: boolean } {
  const cmd = node.values
  return { cmdLine: emptyAsNil && cmd.length === 0 ? null : [...cmd], prependShell: !node.json }
}

function parseNode(node: Node): Command | Stage {
  const b = base(node)
  switch (node.keyword) {
    case 'env':
      flags(node)
      return { kind: 'env', ...b, pairs: kvps(node, 'ENV') }
    case 'label':
      flags(node)
      return { kind: 'label', ...b, pairs: kvps(node, 'LABEL') }
    case 'maintainer':
      if (node.values.length !== 1) throw new Error('MAINTAINER requires exactly one argument')
      flags(node)
      return { kind: 'maintainer', ...b, maintainer: node.values[0] }
    case 'add':
    case 'copy': {
      const name = node.keyword.toUpperCase()
      const heredocSources = node.heredocs.length
      if (node.values.length < 2 && !(heredocSources > 0 && node.values.length >= 1)) {
        throw new Error(`${name} requires at least two arguments, but only one was provided. Destination could not be determined.`)
      }
      const f = flags(node, node.keyword === 'copy' ? { chown: 'string', chmod: 'string', from: 'string' } : { chown: 'string', chmod: 'string' })
      const chmod = f.get('chmod')
      if (chmod !== '' && !/^[0-7]{1,4}$/.test(chmod)) throw new Error(`invalid chmod parameter: ${chmod}`)
      return { kind: node.keyword, ...b, sourcesAndDest: [...node.values], chown: f.get('chown'), chmod, from: f.get('from'), heredocs: node.heredocs }
    }
    case 'from': {
      const args = node.values
      let name = ''
      if (args.length === 3 && args[1].toLowerCase() === 'as') {
        name = args[2].toLowerCase()
        if (!/^[a-z][a-z0-9-_.]*$/.test(name)) {
          throw new Error(`invalid name for build stage: ${JSON.stringify(args[2])}, name can't start with a number or contain symbols`)
        }
      } else if (args.length !== 1) throw new Error('FROM requires either one or three arguments')
      const f = flags(node, { platform: 'string' })
      return { name, baseName: args[0], platform: f.get('platform'), line: node.startLine, commands: [], index: -1 }
    }
    case 'onbuild': {
      if (!node.sub) throw new Error('ONBUILD requires at least one argument')
      flags(node)
      const trigger = node.sub.keyword.toUpperCase()
      if (trigger === 'ONBUILD') throw new Error('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed')
      if (trigger === 'MAINTAINER' || trigger === 'FROM') throw new Error(`${trigger} isn't allowed as an ONBUILD trigger`)
      if (!(INSTRUCTIONS as readonly string[]).includes(node.sub.keyword)) throw new Error(`unknown instruction: ${trigger}`)
      parseNode(node.sub) // a trigger must itself be valid now, not when a child image builds
      return { kind: 'onbuild', ...b, expression: node.original.replace(/^\s*ONBUILD\s*/i, '') }
    }
    case 'workdir': {
      const p = exactlyOne(node, 'WORKDIR')
      flags(node)
      return { kind: 'workdir', ...b, path: p }
    }
    case 'run': {
      // Docker 20.10's builder takes RUN --mount (cache, secret, ssh, bind mounts); strata
      // does not (yet): refused as such, not as an unknown flag.
      if (node.flags.some((x) => /^--mount(=|$)/.test(x))) {
        throw new BuildError('InvalidArgument', `dockerfile parse error line ${node.startLine}: RUN --mount is not supported by strata`, { line: node.startLine })
      }
      const f = flags(node, { network: 'string' })
      const network = f.get('network') || 'default'
      if (network !== 'default' && network !== 'none' && network !== 'host') throw new Error(`unsupported network mode: ${network}`)
      const s = shellDependent(node, false)
      if (s.cmdLine!.length === 0 && node.heredocs.length === 0) throw new Error('RUN requires at least one argument')
      return { kind: 'run', ...b, cmdLine: s.cmdLine!, prependShell: s.prependShell, network, heredocs: node.heredocs }
    }
    case 'cmd':
      flags(node)
      return { kind: 'cmd', ...b, ...shellDependent(node, false) }
    case 'entrypoint':
      flags(node)
      return { kind: 'entrypoint', ...b, ...shellDependent(node, true) }
    case 'healthcheck':
      return parseHealthcheck(node, b)
    case 'expose': {
      if (node.values.length === 0) throw new Error('EXPOSE requires at least one argument')
      flags(node)
      return { kind: 'expose', ...b, ports: [...node.values].sort() }
    }
    case 'user': {
      const u = exactlyOne(node, 'USER')
      flags(node)
      return { kind: 'user', ...b, user: u }
    }
    case 'volume': {
      if (node.values.length === 0) throw new Error('VOLUME requires at least one argument')
      flags(node)
      const volumes = node.values.map((v) => v.trim())
      if (volumes.some((v) => v === '')) throw new Error('VOLUME specified can not be an empty string')
      return { kind: 'volume', ...b, volumes }
    }
    case 'stopsignal':
      return { kind: 'stopsignal', ...b, signal: exactlyOne(node, 'STOPSIGNAL') }
    case 'arg': {
      if (node.values.length < 1) throw new Error('ARG requires at least one argument')
      const args = node.values.map((a) => {
        const eq = a.indexOf('=')
        if (eq < 0) return { key: a }
        if (eq === 0) throw new Error('ARG names can not be blank')
        return { key: a.slice(0, eq), value: a.slice(eq + 1) }
      })
      flags(node)
      return { kind: 'arg', ...b, args }
    }
    case 'shell': {
      flags(node)
      if (node.values.length === 0) throw new Error('SHELL requires at least one argument')
      if (!node.json) throw new Error(`SHELL requires the arguments to be in JSON form`)
      return { kind: 'shell', ...b, shell: [...node.values] }
    }
    default:
      throw new Error(`unknown instruction: ${node.keyword.toUpperCase()}`)
  }
}

function parseHealthcheck(node: Node, b: Base): HealthcheckCommand {
  if (node.values.length === 0) throw new Error('HEALTHCHECK requires at least one argument')
  const typ = node.values[0].toUpperCase()
  const args = node.values.slice(1)
  const raw = { interval: '', timeout: '', startPeriod: '', retries: '' }
  if (typ === 'NONE') {
    if (args.length !== 0) throw new Error('HEALTHCHECK NONE takes no arguments')
    return { kind: 'healthcheck', ...b, test: ['NONE'], interval: 0, timeout: 0, startPeriod: 0, retries: 0, raw }
  }
  const f = flags(node, { interval: 'string', timeout: 'string', 'start-period': 'string', retries: 'string' })
  if (typ !== 'CMD') throw new Error(`Unknown type ${JSON.stringify(typ)} in HEALTHCHECK (try CMD)`)
  if (args.length === 0) throw new Error('Missing command after HEALTHCHECK CMD')
  const test = [node.json ? 'CMD' : 'CMD-SHELL', ...args]
  const interval = (name: string): number => {
    const s = f.get(name)
    if (s === '') return 0
    const d = parseGoDuration(s)
    if (d < 1e6) throw new Error(`Interval ${JSON.stringify(name)} cannot be less than 1ms`)
    return d
  }
  raw.interval = f.get('interval')
  raw.timeout = f.get('timeout')
  raw.startPeriod = f.get('start-period')
  raw.retries = f.get('retries')
  let retries = 0
  if (raw.retries !== '') {
    if (!/^[+-]?\d+$/.test(raw.retries)) throw new Error(`strconv.ParseInt: parsing ${JSON.stringify(raw.retries)}: invalid syntax`)
    retries = Number(raw.retries)
    if (retries < 1) throw new Error(`--retries must be at least 1 (not ${retries})`)
  }
  return { kind: 'healthcheck', ...b, test, interval: interval('interval'), timeout: interval('timeout'), startPeriod: interval('start-period'), retries, raw }
}

/** Stages and meta args of a parsed Dockerfile (Docker's instructions.Parse). */
export function toInstructions(parsed: ParsedDockerfile): Instructions {
  const stages: Stage[] = []
  const metaArgs: ArgCommand[] = []
  for (const node of parsed.nodes) {
    const c = parseCommand(node)
    if (stages.length === 0 && 'kind' in c && c.kind === 'arg') {
      metaArgs.push(c)
      continue
    }
    if (!('kind' in c)) {
      c.index = stages.length
      stages.push(c)
      continue
    }
    const cur = stages[stages.length - 1]
    if (!cur) fail(node, 'no build stage in current context')
    cur.commands.push(c)
  }
  return { stages, metaArgs, escape: parsed.escape }
}

/** A trigger of a base image's ONBUILD, as a command of the stage that uses the image. */
export function parseTrigger(expression: string, escape: string, line: number): Command {
  const node = nodeFromLine(expression, escape, line, line)
  const c = parseCommand(node)
  if (!('kind' in c)) throw new BuildError('DockerfileParse', `dockerfile parse error line ${line}: FROM isn't allowed as an ONBUILD trigger`, { line })
  return c
}
