/**
 * The store lock: readers (shared) and writers (exclusive) of one store root, within a process
 * and across processes.
 *
 * Across processes, `<root>/lock` is `flock`ed (shared or exclusive). Within a process, every
 * `Store` of a root shares one queue (`RootLock`, keyed by the root's device and inode), and only
 * the group at the head of that queue touches the `flock`:
 *
 * - callers never contend on the `flock` among themselves, so no caller of this process ever
 *   waits for a `flock` that another caller of this process holds;
 * - a free lock is taken on the JS thread (one non-blocking `flock`); waiting for another
 *   process happens on a thread of its own (`native.waitLock`), never on a libuv pool thread, so
 *   the holder's file I/O always finds a pool thread (the old design blocked one pool thread per
 *   waiter: five concurrent writers hung Node's four-thread pool for good);
 * - the queue is fair: callers are served in arrival order; consecutive readers at its head form
 *   one group that holds the lock together; a reader that arrives while a writer waits queues
 *   behind it, so writers are not starved by a stream of readers, nor readers by writers;
 * - across processes, a process that has to wait marks itself with a shared `flock` on
 *   `<root>/lock.wait`; a process about to take the lock again first checks for such a mark
 *   and, if there is one, queues in the kernel behind the waiter instead of re-taking the lock
 *   at once (a busy service would otherwise starve a CLI command: the kernel does not hand a
 *   released `flock` to the process that waited longest).
 *
 * Re-entrancy: a section knows it holds the lock (AsyncLocalStorage); a lock request made
 * inside a section of the same root runs at once when the section covers it (anything inside an
 * exclusive section, shared inside shared), instead of queueing behind itself. Asking for the
 * exclusive lock inside a shared section cannot be granted without a deadlock and throws.
 * The AsyncLocalStorage is enabled only while some section of this process runs: enabled, it
 * makes Node run promise hooks for every promise of the process (some 5% of a CLI build's CPU
 * when it was on from the first section to the exit), and while no section runs there is
 * nothing for it to carry (the holds it would show are all over).
 *
 * Readers without the `flock` (`StoreLock.optimistic`, set by the CLI's read-only commands,
 * whose shared sections only read): a writer counts `<root>/lock.gen` up to an odd number once
 * it holds the `flock` exclusive, before its first change, and to the next even number after its
 * last, before it lets the `flock` go (if it cannot be written the file is removed instead). A reader reads the number, runs its section without the
 * `flock`, and reads it again: the same even number both times means no writer held the lock at
 * any moment in between, so what the section read is what a shared `flock` would have shown.
 * Otherwise (odd, missing, changed) the section runs again under the shared `flock`, as every
 * reader does without `optimistic`. An optimistic section is not a section in the sense of
 * re-entrancy above: it holds nothing, so what runs inside it asks for the lock afresh. The point is the native addon: the `flock` needs it, and
 * loading it is a good part of a read-only command's start-up (bench/cli.js).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import fs = require('node:fs')
import { native } from './native'
import { toStrataError, StrataError } from '../errors'

export type LockMode = 'shared' | 'exclusive'

type NativeLock = InstanceType<typeof native.NativeLock>

/** A caller waiting in the queue. */
interface Waiter {
  mode: LockMode
  grant(): void
  fail(e: Error): void
}

/** A running section, found again by the code it runs (re-entrancy). */
interface Hold {
  key: string
  mode: LockMode
  /** False once the section has ended: work it left running is not covered any more. */
  active: boolean
  parent?: Hold
}

const sections = new AsyncLocalStorage<Hold>()

/**
 * Sections of this process under way (every root's). At 0 `sections` is disabled, which turns
 * Node's promise hooks off again when nothing else uses them; its next `run` enables it. What a
 * disabled storage's resources kept (holds of sections that have ended) reads back once it is
 * enabled again, and is skipped as inactive.
 */
let sectionsUnderWay = 0

/**
 * `lock.gen` holds the number twice, each 20 decimal digits, then a newline: always the same
 * 42 bytes, overwritten in place, so a writer never needs a new block (a full disk must not stop
 * a writer that would free space), and a reader that reads while a writer writes sees two halves
 * that differ (a torn read) and takes it for no number at all.
 */
const GEN_DIGITS = 20

function encodeGeneration(value: bigint): Buffer {
  const n = value.toString().padStart(GEN_DIGITS, '0')
  return Buffer.from(`${n} ${n}\n`, 'latin1')
}

/** The write generation in `file`, or undefined when it is missing, torn or not one. */
function readGeneration(file: string): bigint | undefined {
  let text: string
  try {
    text = fs.readFileSync(file, 'latin1')
  } catch {
    return undefined
  }
  const m = /^(\d{20}) (\d{20})\n$/.exec(text)
  return m && m[1] === m[2] ? BigInt(m[1]) : undefined
}

/**
 * Whether the write generation in `file` is even: no writer holds the lock now, and none died
 * holding it since the last one let it go (a missing or torn file says neither).
 */
export function noWriterMidChange(file: string): boolean {
  return isEven(readGeneration(file))
}

/** Whether a generation read was whole and even (no writer inside its exclusive section). */
function isEven(gen: bigint | undefined): gen is bigint {
  return gen !== undefined && gen % 2n === 0n
}

/**
 * Overwrites the generation in `file` with `value`; if that fails, removes the file, so readers
 * take the `flock`. Returns false if neither worked (the file may still hold an even number).
 */
function writeGeneration(file: string, value: bigint): boolean {
  try {
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644)
    try {
      const buf = encodeGeneration(value)
      if (fs.writeSync(fd, buf, 0, buf.length, 0) !== buf.length) throw new Error(`short write to ${file}`)
      // Whatever longer thing was there before (shrinking needs no space).
      fs.ftruncateSync(fd, buf.length)
    } finally {
      fs.closeSync(fd)
    }
    return true
  } catch {
    try {
      fs.rmSync(file, { force: true })
      return true
    } catch {
      return false
    }
  }
}

/**
 * A writer's start: the generation becomes odd (the next odd number; from a clock-derived even
 * number when there is none, so that a re-made file does not repeat a number a reader may hold).
 * Throws when the readers cannot be told (the file can be neither written nor removed): then
 * no change may start.
 */
function beginWrites(file: string): bigint {
  const now = readGeneration(file) ?? BigInt(Date.now()) * 2000n
  const odd = now % 2n === 0n ? now + 1n : now + 2n
  if (!writeGeneration(file, odd)) throw new StrataError('Io', `cannot write ${file}`)
  return odd
}

function aborted(): StrataError {
  return new StrataError('Aborted', 'operation aborted')
}

/** The in-process queue of one store root, in front of its `flock`. */
class RootLock {
  #mode?: LockMode
  #holders = 0
  #flock?: NativeLock
  readonly #queue: Waiter[] = []
  /** A native wait for the `flock` is under way (on its own thread). */
  #waiting = false
  /** Keeps the event loop alive while a caller waits for another process (the wait thread does not). */
  #keepAlive?: NodeJS.Timeout

  /** The odd generation written when this process took the `flock` exclusive (see the top). */
  #writing?: bigint

  constructor(
    readonly file: string,
    readonly markFile: string,
    readonly genFile: string,
    private readonly idle: () => void,
  ) {}

  /** Enters now if that is fair and possible (no queue, a compatible holder or a free flock). */
  tryEnter(mode: LockMode): boolean {
    if (this.#queue.length > 0 || this.#waiting) return false
    if (this.#holders > 0) {
      if (this.#mode !== 'shared' || mode !== 'shared') return false
      this.#holders++
      return true
    }
    const lock = this.#take(mode)
    if (!lock) return false
    this.#hold(lock, mode)
    this.#holders++
    return true
  }

  /** Queues; resolves once the caller holds the lock (rejects `Aborted` if `signal` fires first). */
  enter(mode: LockMode, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(aborted())
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#queue.indexOf(w)
        if (i < 0) return
        this.#queue.splice(i, 1)
        reject(aborted())
        this.#pump()
      }
      const w: Waiter = {
        mode,
        grant: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        fail: (e) => {
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#queue.push(w)
      this.#pump()
    })
  }

  /** One holder leaves; the last one releases the `flock` and the next group is served. */
  leave(): void {
    if (--this.#holders > 0) return
    if (this.#writing !== undefined) {
      // Best effort: a failure leaves the number odd (or the file gone), and readers take the flock.
      writeGeneration(this.genFile, this.#writing + 1n)
      this.#writing = undefined
    }
    this.#flock?.release()
    this.#flock = undefined
    this.#mode = undefined
    this.#pump()
  }

  #hold(lock: NativeLock, mode: LockMode): void {
    if (mode === 'exclusive') {
      try {
        this.#writing = beginWrites(this.genFile)
      } catch (e) {
        lock.release()
        throw e
      }
    }
    this.#flock = lock
    this.#mode = mode
  }

  /**
   * The `flock` if it can be had now: not while another process has marked itself waiting
   * (then this process queues in the kernel behind it), else one non-blocking `flock`.
   */
  #take(mode: LockMode): NativeLock | null {
    let probe: NativeLock | null | undefined
    try {
      probe = native.tryLock(this.markFile, true)
    } catch {
      /* no mark file (say, a full disk): nobody can have marked it either */
    }
    if (probe === null) return null
    probe?.release()
    try {
      return native.tryLock(this.file, mode === 'exclusive')
    } catch (e) {
      throw toStrataError(e)
    }
  }

  /** Serves the queue: grants what can be granted, or starts waiting for another process. */
  #pump(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]
      if (this.#holders > 0) {
        // Readers that queued behind a writer who gave up join the readers holding the lock.
        if (this.#mode !== 'shared' || head.mode !== 'shared') break
        this.#grantHead()
        continue
      }
      if (this.#waiting) break
      let lock: NativeLock | null
      try {
        lock = this.#take(head.mode)
      } catch (e) {
        this.#queue.shift()
        head.fail(e as Error)
        continue
      }
      if (!lock) {
        this.#wait(head.mode)
        break
      }
      try {
        this.#hold(lock, head.mode)
      } catch (e) {
        this.#queue.shift()
        head.fail(e as Error)
        continue
      }
      this.#grantHead()
    }
    this.#settleKeepAlive()
    if (this.#holders === 0 && !this.#waiting && this.#queue.length === 0) this.idle()
  }

  #grantHead(): void {
    this.#holders++
    this.#queue.shift()!.grant()
  }

  /** Waits for another process on a native thread; `#pump` continues when the flock is ours. */
  #wait(mode: LockMode): void {
    this.#waiting = true
    let mark: NativeLock | null = null
    try {
      mark = native.tryLock(this.markFile, false)
    } catch {
      /* unmarked: the wait still ends when the holder releases, only without precedence */
    }
    native.waitLock(this.file, mode === 'exclusive', (err, lock) => {
      this.#waiting = false
      mark?.release()
      if (err) {
        const head = this.#queue.shift()
        head?.fail(toStrataError(err))
      } else {
        const head = this.#queue[0]
        // An exclusive flock covers readers too; a shared one does not cover a writer that got
        // to the head while we waited (the writer it was taken for gave up): wait again.
        if (head && (mode === 'exclusive' || head.mode === 'shared')) {
          try {
            this.#hold(lock, head.mode)
            this.#grantHead()
          } catch (e) {
            this.#queue.shift()
            head.fail(e as Error)
          }
        } else {
          lock.release()
        }
      }
      this.#pump()
    })
  }

  /** The loop stays alive while someone waits for another process, and only then. */
  #settleKeepAlive(): void {
    const needed = this.#waiting && this.#queue.length > 0
    if (needed && !this.#keepAlive) this.#keepAlive = setInterval(() => undefined, 1 << 30)
    if (!needed && this.#keepAlive) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = undefined
    }
  }
}

/** Every root's queue in this process; an idle queue is dropped and made again when needed. */
const REGISTRY = Symbol.for('strata.rootLocks.v2')
type Registry = Map<string, RootLock>
const registry: Registry = ((globalThis as Record<symbol, unknown>)[REGISTRY] as Registry | undefined) ?? new Map()
;(globalThis as Record<symbol, unknown>)[REGISTRY] = registry

/**
 * The lock of one store root as a `Store` uses it. Every `StoreLock` of the same root in this
 * process shares one queue, however the root was named (`key`: the root's device and inode).
 */
export class StoreLock {
  constructor(
    /** `<dev>:<ino>` of the store root. */
    readonly key: string,
    readonly file: string,
    readonly markFile: string,
    readonly genFile: string,
  ) {}

  /**
   * Shared sections first run without the `flock`, checked against the write generation (see
   * the top of this file). Only for callers whose shared sections only read — nothing they do
   * may need undoing when the section runs again under the `flock` (the CLI's read-only commands).
   */
  optimistic = false

  #queue(): RootLock {
    let q = registry.get(this.key)
    if (!q) {
      const made: RootLock = new RootLock(this.file, this.markFile, this.genFile, () => {
        if (registry.get(this.key) === made) registry.delete(this.key)
      })
      q = made
      registry.set(this.key, q)
    }
    return q
  }

  /** Runs `fn` holding the lock in `mode`; `signal` aborts the wait (not `fn`). */
  async run<T>(mode: LockMode, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let h = sections.getStore(); h; h = h.parent) {
      if (h.key !== this.key || !h.active) continue
      if (h.mode === 'exclusive' || mode === 'shared') return fn()
      throw new StrataError('Locked', 'strata: the exclusive store lock was asked for inside a shared section (it would wait for itself)')
    }
    if (signal?.aborted) throw aborted()
    if (mode === 'shared' && this.optimistic) {
      const before = readGeneration(this.genFile)
      if (isEven(before)) {
        // Not marked as a section (no AsyncLocalStorage, whose promise hooks would slow the
        // whole read): a shared section inside it checks the generation around itself in turn,
        // and one that falls back to the flock holds it for itself; this one holds nothing a
        // section inside could wait for.
        let out: { value: T } | { error: unknown }
        try {
          out = { value: await fn() }
        } catch (error) {
          // What a writer was changing under the read can fail it (a file gone): decided below.
          out = { error }
        }
        if (readGeneration(this.genFile) === before) {
          if ('error' in out) throw out.error
          return out.value
        }
      }
    }
    const q = this.#queue()
    if (!q.tryEnter(mode)) await q.enter(mode, signal)
    const hold: Hold = { key: this.key, mode, active: true, parent: sections.getStore() }
    sectionsUnderWay++
    try {
      return await sections.run(hold, fn)
    } finally {
      hold.active = false
      if (--sectionsUnderWay === 0) sections.disable()
      q.leave()
    }
  }

  /** Whether the calling code runs inside a section of this root that holds it in `mode` (or stronger). */
  held(mode: LockMode = 'shared'): boolean {
    if (sectionsUnderWay === 0) return false
    for (let h = sections.getStore(); h; h = h.parent) {
      if (h.key === this.key && h.active && (h.mode === 'exclusive' || mode === 'shared')) return true
    }
    return false
  }
}

/** Runs `fn` outside any lock section (for background work started from inside one). */
export function detached<T>(fn: () => T): T {
  // `exit` enables the storage again when `fn` returns: not while nothing needs it.
  return sectionsUnderWay === 0 ? fn() : sections.exit(fn)
}
