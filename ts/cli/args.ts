/**
 * Docker-style argument parsing: flags before positionals (everything after the first
 * positional belongs to it when `stopAtPositional`), `--flag=value`, `--flag value`, `-f value`,
 * combined short booleans (`-aq`), repeatable flags, `--` ends flags.
 */
import { StrataError } from '../errors'

/** A command line docker's flag parser would refuse (unknown flag, missing value): exit status 125. */
export class FlagError extends StrataError {
  constructor(message: string) {
    super('InvalidArgument', message)
  }
}

export interface FlagSpec {
  /** Long name without dashes. */
  name: string
  short?: string
  /** Takes a value. */
  value?: boolean
  /** May be given more than once (values collected in order). */
  multi?: boolean
}

export interface Parsed {
  /** A boolean flag given as `false` (`--human=false`, `-H=false`) is present with `false`. */
  flags: Map<string, string[] | boolean>
  args: string[]
}

export function parseArgs(argv: string[], specs: FlagSpec[], stopAtPositional = false): Parsed {
  const byLong = new Map(specs.map((s) => [s.name, s]))
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]))
  const flags = new Map<string, string[] | boolean>()
  const args: string[] = []
  const set = (spec: FlagSpec, v?: string) => {
    if (!spec.value) {
      flags.set(spec.name, true)
      return
    }
    const prev = flags.get(spec.name)
    flags.set(spec.name, spec.multi && Array.isArray(prev) ? [...prev, v!] : [v!])
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') {
      args.push(...argv.slice(i + 1))
      break
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=')
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq)
      const spec = byLong.get(name)
      if (!spec) throw new FlagError(`unknown flag: --${name}`)
      if (spec.value) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i]
        if (v === undefined) throw new FlagError(`flag needs an argument: --${name}`)
        set(spec, v)
      } else {
        if (eq >= 0 && !['true', 'false'].includes(a.slice(eq + 1))) throw new FlagError(`invalid boolean value for --${name}`)
        if (eq < 0 || a.slice(eq + 1) === 'true') set(spec)
        else flags.set(spec.name, false)
      }
      continue
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const spec = byShort.get(a[j])
        if (!spec) throw new FlagError(`unknown shorthand flag: '${a[j]}' in ${a}`)
        if (spec.value) {
          const rest = a.slice(j + 1).replace(/^=/, '')
          const v = rest !== '' ? rest : argv[++i]
          if (v === undefined) throw new FlagError(`flag needs an argument: '${a[j]}' in ${a}`)
          set(spec, v)
          break
        }
        if (a[j + 1] === '=') {
          // `-H=false`: a boolean short flag given a value (pflag's ParseBool spellings).
          const v = a.slice(j + 2)
          if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) set(spec)
          else if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) flags.set(spec.name, false)
          else throw new StrataError('InvalidArgument', `invalid argument "${v}" for "-${a[j]}, --${spec.name}" flag: strconv.ParseBool: parsing "${v}": invalid syntax`)
          break
        }
        set(spec)
      }
      continue
    }
    args.push(a)
    if (stopAtPositional) {
      args.push(...argv.slice(i + 1))
      break
    }
  }
  return { flags, args }
}

export function flag(p: Parsed, name: string): boolean {
  return p.flags.get(name) === true
}

export function value(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name)
  return Array.isArray(v) ? v[v.length - 1] : undefined
}

export function values(p: Parsed, name: string): string[] {
  const v = p.flags.get(name)
  return Array.isArray(v) ? v : []
}
