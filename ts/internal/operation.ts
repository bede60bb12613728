/**
 * One API call's lifetime, so that nothing the caller hands in can hurt the caller:
 *
 * - the caller's `AbortSignal`: one listener per signal however many calls share it (a service
 *   passes one signal to thousands of calls), removed when the last of them settles;
 * - abort or a throwing callback *fails* the operation: native tasks see their cancel flag, source
 *   streams are destroyed, lock waits give up, and the caller's promise rejects (with `Aborted`,
 *   or with what the callback threw) once the work has unwound (staged files removed) or a
 *   second has passed, whichever comes first; what is left of the unwinding goes on in the background
 *   and `Store.close()` waits for it;
 * - user callbacks (`onProgress`) run inside `try`: what they throw never reaches the event loop;
 * - once the operation starts making its result visible (`commit`), failing no longer interrupts
 *   it: the caller gets the result, never a rejection for work that was done.
 */
import type { Readable } from 'node:stream'
import { native } from './native'
import { StrataError, CallerThrew } from '../errors'
import { LockMode } from './lock'
import type { StoreContext } from './context'

type NativeCancel = InstanceType<typeof native.NativeCancel>

/**
 * How long a failed operation waits for its work to unwind before it rejects anyway. Unwinding
 * takes a few ms (a native task stops at its next 1 MiB chunk, one native task removes the
 * staged files), so an abort is answered well within 100 ms with the store as it was; on a
 * machine so loaded that it takes longer, the answer comes after this and the rest goes on in
 * the background.
 */
const UNWIND_GRACE_MS = 1000

/** The operations sharing one caller signal, and the one listener they share. */
interface SignalUsers {
  ops: Set<Operation>
  listener: () => void
}

const bySignal = new WeakMap<AbortSignal, SignalUsers>()

function watch(signal: AbortSignal, op: Operation): void {
  let users = bySignal.get(signal)
  if (!users) {
    const ops = new Set<Operation>()
    const listener = (): void => {
      for (const o of [...ops]) o.fail(new StrataError('Aborted', 'operation aborted'))
    }
    users = { ops, listener }
    bySignal.set(signal, users)
    signal.addEventListener('abort', listener, { once: true })
  }
  users.ops.add(op)
}

function unwatch(signal: AbortSignal, op: Operation): void {
  const users = bySignal.get(signal)
  if (!users) return
  users.ops.delete(op)
  if (users.ops.size === 0) {
    signal.removeEventListener('abort', users.listener)
    bySignal.delete(signal)
  }
}

export class Operation {
  /** Polled by native tasks; set when the operation fails. */
  readonly cancel: NativeCancel = new native.NativeCancel()
  readonly #inner = new AbortController()
  #failure: { error: unknown } | undefined
  /** False once the result is being made visible: failing no longer interrupts. */
  #interruptible = true
  #reject?: (e: unknown) => void
  /** The caller's source streams: destroyed if the operation fails before reading them to the end. */
  readonly #sources: Readable[] = []
  /** The caller has its answer: callbacks are not called any more (late progress from a native queue). */
  #answered = false

  private constructor(readonly ctx: StoreContext) {}

  /**
   * Runs `work` as one operation: resolves with its result, or rejects as soon as the operation
   * fails (abort, a throwing callback) while it can still be interrupted.
   */
  static async run<T>(ctx: StoreContext, signal: AbortSignal | undefined, work: (op: Operation) => Promise<T>): Promise<T> {
    if (signal?.aborted) throw new StrataError('Aborted', 'operation aborted')
    const op = new Operation(ctx)
    const failed = new Promise<never>((_, reject) => { op.#reject = reject })
    failed.catch(() => undefined)
    if (signal) watch(signal, op)
    let settled = false
    const done = (async () => {
      try {
        return await work(op)
      } finally {
        settled = true
      }
    })()
    try {
      const value = await Promise.race([done, failed])
      return value
    } catch (e) {
      for (const s of op.#sources) if (!s.readableEnded) s.destroy()
      // Give the work a moment to unwind (its native task stops at the next chunk, the source is
      // destroyed, staged files go), so that the store is as it was when the caller hears of it;
      // what takes longer goes on in the background.
      if (!settled) {
        let timer: NodeJS.Timeout | undefined
        await Promise.race([done.catch(() => undefined), new Promise<void>((r) => { timer = setTimeout(r, UNWIND_GRACE_MS) })])
        clearTimeout(timer)
      }
      throw op.#failure ? op.#failure.error : e
    } finally {
      op.#answered = true
      if (signal) unwatch(signal, op)
      // Rejected early: the work unwinds in the background (the store's drain() waits for it).
      if (!settled) ctx.background(done.then(() => undefined, () => undefined))
    }
  }

  /** An AbortSignal internal to strata that fires when the operation fails (lock waits, pipelines). */
  get signal(): AbortSignal {
    return this.#inner.signal
  }

  get failed(): boolean {
    return this.#failure !== undefined
  }

  /** Fails the operation with `error` (the first failure wins). */
  fail(error: unknown): void {
    if (this.#failure) return
    this.#failure = { error }
    this.cancel.cancel()
    this.#inner.abort(error)
    if (this.#interruptible) {
      for (const s of this.#sources) if (!s.readableEnded) s.destroy()
      this.#reject?.(error)
    }
  }

  /** Takes the caller's source stream: a failed operation destroys it (it will not be read any more). */
  source(stream: Readable): void {
    if (typeof stream?.destroy !== 'function' || this.#sources.includes(stream)) return
    this.#sources.push(stream)
    if (this.#failure) stream.destroy()
  }

  /** Throws the failure, if any (between steps). */
  check(): void {
    if (this.#failure) throw this.#failure.error
  }

  /**
   * Wraps a user callback: it runs inside `try`; what it throws fails the operation (and is what
   * the caller's promise rejects with). After a failure, or once the caller has its answer, it
   * is not called any more.
   */
  callback<A extends unknown[]>(fn: ((...args: A) => void) | undefined): ((...args: A) => void) | undefined {
    if (!fn) return undefined
    return (...args: A) => {
      if (this.#failure || this.#answered) return
      try {
        fn(...args)
      } catch (e) {
        this.fail(new CallerThrew(e))
      }
    }
  }

  /** Runs `fn` under the store lock; the wait gives up when the operation fails. */
  locked<T>(mode: LockMode, fn: () => Promise<T>): Promise<T> {
    const run = mode === 'exclusive' ? this.ctx.exclusive.bind(this.ctx) : this.ctx.shared.bind(this.ctx)
    return run(async () => {
      this.check()
      return fn()
    }, this.signal)
  }

  /**
   * Runs `fn`, which makes the result visible (the caller holds the exclusive lock), past the
   * point of no return: a failure from now on does not interrupt the operation.
   */
  commit<T>(fn: () => Promise<T>): Promise<T> {
    this.check()
    this.#interruptible = false
    return fn()
  }

  /**
   * Makes a load or pull visible once every layer it needs is at hand: under the exclusive
   * lock, `missing` lists what is lacking; when nothing is, `commit` runs (past the point of no return, as `commit`).
   * Another process may have removed a layer found present before (an rmi racing this
   * operation): then `fetch` brings it again and the check is repeated, five times at most.
   * Nothing is registered until every layer is at hand.
   */
  async commitWhenComplete<L extends { chainId: string }>(
    doing: string,
    missing: () => Promise<L[]>,
    fetch: (gone: L[]) => Promise<void>,
    commit: () => Promise<void>,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const gone = await this.locked('exclusive', async () => {
        const lacking = await missing()
        if (lacking.length === 0) await this.commit(commit)
        return lacking
      })
      if (gone.length === 0) return
      if (attempt >= 5) throw new StrataError('LayerNotFound', `layers keep vanishing while ${doing}: ${gone.map((p) => p.chainId).join(', ')}`)
      await fetch(gone)
    }
  }
}
