/**
 * The public API boundary. Each public class lists its methods and their argument checks once,
 * next to the class (`expose(Images, { tag: [['source', v.string], ['target', v.string]], ... })`),
 * and `expose` wraps those methods so that
 *  - the arguments are checked before any work starts (ts/internal/validate.ts): a wrong type or value is
 *    an `InvalidArgument` StrataError, never a `TypeError` from deep inside;
 *  - whatever the method throws leaves as a StrataError (`toStrataError`): a native error with its
 *    code, a Node errno error (ENOSPC from a metadata write, ENOENT from a spawn) as `Io` with its
 *    `syscode`, `errno` and `path`, anything else as `Internal`. No raw Node error leaves the API.
 *  - a class's `before` hook runs first (a container thaws if a dead commit left it frozen).
 *    The hook itself leaves alone a call made inside a section of the store lock (`view` asks
 *    `isMounted` under the shared lock), where it could ask for the exclusive lock inside a
 *    shared section (ts/containers/container.ts). Nothing marks the work of a call: an
 *    AsyncLocalStorage did, and its promise hooks slowed every promise of the process for as
 *    long as it lived (some 5% of a CLI build's CPU, with the lock's). In a process that declared
 *    itself the API's sole caller (`declareSoleCaller`), a count of the calls under way keeps the
 *    hook to the outermost call.
 *  - the one exception to the conversion is what the caller's own callback threw (`CallerThrew`,
 *    ./operation.ts): the call rejects with that, as it was.
 * Methods returning a promise reject (also for bad arguments); `sync` methods throw.
 */
import { toStrataError, CallerThrew } from '../errors'

/** What leaves the API: a StrataError, or what the caller's own callback threw, as it was. */
function outgoing(e: unknown): unknown {
  return e instanceof CallerThrew ? e.value : toStrataError(e)
}
import { checkArgs, Signature } from './validate'

/**
 * Calls under way, counted once the process declared itself the sole caller (else undefined):
 * the outermost call is then the one that finds none.
 */
let callsUnderWay: number | undefined

/**
 * For a process that makes one API call at a time and leaves nothing running when it returns
 * (the CLI's read-only commands, from their bundle: ts/cli/read-main.ts): a call made while
 * another is under way is then one that call made, and `before` hooks run for the outermost
 * only (a container's record is read once per command, bench/cli.js). Irrevocable; never for a
 * library's host process.
 */
export function declareSoleCaller(): void {
  callsUnderWay ??= 0
}

/** A method's argument checks; `sync` for methods that return a value rather than a promise. */
export type MethodSpec = Signature | { args: Signature; sync: true }

/** What `expose` recorded, for the tests that check every public method's argument handling. */
export interface ExposedClass {
  name: string
  methods: Record<string, Signature>
  statics: Record<string, Signature>
  sync: Set<string>
}

export const EXPOSED: ExposedClass[] = []

/**
 * Runs before every call of a class's methods (in a sole caller's process: the outermost), with
 * the object called; it must do nothing where it could wait for a lock its caller holds.
 */
export type BeforeHook = (self: never) => Promise<void>

function wrap(label: string, fn: (...a: unknown[]) => unknown, spec: MethodSpec, before?: BeforeHook): (...a: unknown[]) => unknown {
  const sig = Array.isArray(spec) ? spec : (spec as { args: Signature }).args
  if (!Array.isArray(spec)) {
    return function (this: unknown, ...args: unknown[]) {
      try {
        checkArgs(label, sig, args)
        return fn.apply(this, args)
      } catch (e) {
        throw outgoing(e)
      }
    }
  }
  return function (this: unknown, ...args: unknown[]) {
    try {
      checkArgs(label, sig, args)
    } catch (e) {
      return Promise.reject(outgoing(e))
    }
    const run = callsUnderWay !== undefined
      ? async (): Promise<unknown> => {
        const outermost = callsUnderWay === 0
        callsUnderWay!++
        try {
          if (before && outermost) await before(this as never)
          return await fn.apply(this, args)
        } finally {
          callsUnderWay!--
        }
      }
      : async (): Promise<unknown> => {
        if (before) await before(this as never)
        return await fn.apply(this, args)
      }
    return run().catch((e: unknown) => { throw outgoing(e) })
  }
}

type Methods<T> = { [K in keyof T]?: MethodSpec }

/**
 * Wraps the listed instance methods (and `statics`) of `cls` in place. Names must be methods
 * the class defines; a missing one is a mistake in the list and fails at load time.
 */
export function expose<T>(
  cls: { prototype: T; name: string },
  methods: Methods<T>,
  statics: Record<string, MethodSpec> = {},
  before?: (self: T) => Promise<void>,
): void {
  const rec: ExposedClass = { name: cls.name, methods: {}, statics: {}, sync: new Set() }
  const install = (target: Record<string, unknown>, name: string, spec: MethodSpec, into: Record<string, Signature>, label: string): void => {
    const fn = target[name]
    if (typeof fn !== 'function') throw new Error(`expose(${cls.name}): no method ${name}`)
    target[name] = wrap(label, fn as (...a: unknown[]) => unknown, spec, target === cls.prototype ? (before as BeforeHook | undefined) : undefined)
    into[name] = Array.isArray(spec) ? spec : (spec as { args: Signature }).args
    if (!Array.isArray(spec)) rec.sync.add(name)
  }
  const proto = cls.prototype as Record<string, unknown>
  for (const [name, spec] of Object.entries(methods) as [string, MethodSpec][]) install(proto, name, spec, rec.methods, `${cls.name}.${name}`)
  for (const [name, spec] of Object.entries(statics)) install(cls as unknown as Record<string, unknown>, name, spec, rec.statics, `${cls.name}.${name}`)
  EXPOSED.push(rec)
}

/** A synchronous method's spec. */
export function sync(args: Signature): MethodSpec {
  return { args, sync: true }
}
