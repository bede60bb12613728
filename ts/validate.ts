/**
 * Argument checks for the public API boundary (ts/boundary.ts): small composable checks that
 * throw `InvalidArgument` with the argument's name, what it must be, and what it got, before any
 * work starts. Option objects are strict: an unknown key is a typo the caller wants to hear about
 * (`{ froce: true }` would otherwise remove nothing silently).
 */
import { StrataError } from './errors'

/** Throws `InvalidArgument` unless `value` is acceptable as the argument or option `name`. */
export type Check = (value: unknown, name: string) => void

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  switch (typeof v) {
    case 'string': return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`
    case 'number': case 'bigint': case 'boolean': return `${typeof v} ${String(v)}`
    case 'undefined': return 'undefined'
    case 'function': return 'a function'
    case 'symbol': return 'a symbol'
    default: return `an object (${(v as object).constructor?.name ?? 'null prototype'})`
  }
}

function fail(name: string, expected: string, got: unknown): never {
  throw new StrataError('InvalidArgument', `${name} must be ${expected}, got ${describe(got)}`)
}

/** A check from a predicate and what it expects (`'a string'`). */
export function check(test: (v: unknown) => boolean, expected: string): Check {
  const c: Check = (v, name) => { if (!test(v)) fail(name, expected, v) }
  return Object.assign(c, { expected })
}

function expectedOf(c: Check): string {
  return (c as Check & { expected?: string }).expected ?? 'valid'
}

export const string = check((v) => typeof v === 'string', 'a string')
export const nonEmptyString = check((v) => typeof v === 'string' && v.length > 0, 'a non-empty string')
export const boolean = check((v) => typeof v === 'boolean', 'a boolean')
export const count = check((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0, 'an integer >= 0')
export const nonNegative = check((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0, 'a finite number >= 0')
export const func = check((v) => typeof v === 'function', 'a function')
export const signal = check((v) => v instanceof AbortSignal, 'an AbortSignal')
export const bytes = check((v) => typeof v === 'string' || v instanceof Uint8Array, 'a string or a Uint8Array')
export const encoding = check((v) => typeof v === 'string' && Buffer.isEncoding(v), 'a Buffer encoding')
export const date = check((v) => v instanceof Date && !Number.isNaN(v.getTime()), 'a valid Date')
/** A readable stream (anything `pipeline` can read: `pipe`/`on`, or async iterable). */
export const readable = check(
  (v) => typeof v === 'object' && v !== null && typeof (v as { on?: unknown }).on === 'function' && typeof (v as { pipe?: unknown }).pipe === 'function',
  'a readable stream',
)
export const writable = check(
  (v) => typeof v === 'object' && v !== null && typeof (v as { write?: unknown }).write === 'function' && typeof (v as { on?: unknown }).on === 'function',
  'a writable stream',
)

/** `undefined` or what `c` accepts. */
export function optional(c: Check): Check {
  return Object.assign((v: unknown, name: string) => { if (v !== undefined) c(v, name) }, { expected: expectedOf(c) })
}

/** One of the given literal values. */
export function oneOf(...values: readonly (string | number)[]): Check {
  return check((v) => values.includes(v as string | number), `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`)
}

/** Accepted by one of the checks. */
export function either(...cs: Check[]): Check {
  const expected = cs.map(expectedOf).join(' or ')
  return check((v) => cs.some((c) => { try { c(v, ''); return true } catch { return false } }), expected)
}

/** An array whose every element `c` accepts. */
export function arrayOf(c: Check): Check {
  const expected = `an array of ${expectedOf(c).replace(/^an? /, '')}s`
  return Object.assign((v: unknown, name: string) => {
    if (!Array.isArray(v)) fail(name, expected, v)
    v.forEach((x, i) => c(x, `${name}[${i}]`))
  }, { expected })
}

/** A plain object of known keys, each checked by its own check (a missing key is `undefined`). */
export function options(shape: Record<string, Check>): Check {
  return Object.assign((v: unknown, name: string) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(name, 'an options object', v)
    for (const k of Object.keys(v)) {
      if (!Object.hasOwn(shape, k)) throw new StrataError('InvalidArgument', `${name}: unknown option ${JSON.stringify(k)} (known: ${Object.keys(shape).join(', ')})`)
    }
    for (const [k, c] of Object.entries(shape)) c((v as Record<string, unknown>)[k], `${name}.${k}`)
  }, { expected: 'an options object' })
}

/** A terminal size: `{ rows, cols }` (a `ConsoleSize`, which may change later, is one). */
export const consoleSize = check(
  (v) => typeof v === 'object' && v !== null && [(v as { rows?: unknown }).rows, (v as { cols?: unknown }).cols].every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0),
  'a { rows, cols } terminal size',
)

/** A record of string keys whose values `c` accepts. */
export function recordOf(c: Check): Check {
  return Object.assign((v: unknown, name: string) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(name, 'an object', v)
    for (const [k, x] of Object.entries(v)) c(x, `${name}.${k}`)
  }, { expected: 'an object' })
}

/** The checks of a method's positional arguments; extra arguments are refused too. */
export type Signature = readonly (readonly [name: string, check: Check])[]

export function checkArgs(method: string, sig: Signature, args: readonly unknown[]): void {
  if (args.length > sig.length && args.slice(sig.length).some((a) => a !== undefined)) {
    throw new StrataError('InvalidArgument', `${method} takes ${sig.length} argument${sig.length === 1 ? '' : 's'}, got ${args.length}`)
  }
  sig.forEach(([name, c], i) => c(args[i], `${method}: ${name}`))
}
