/**
 * A runtime started under a subreaper (crates/strata-core/src/reaper.rs): `runc run -d` and
 * `runc exec -d` start the process and exit, and the process they leave is re-parented to the
 * reaper, which reports every exit on a pipe. Read here with a libuv pipe (no pool thread
 * waits, however long the process runs).
 */
import * as net from 'node:net'
import * as os from 'node:os'
import { native } from '../native'
import { call } from '../errors'

const EVENT_LEN = 12

/** A wait status as a shell reports it: the exit code, or 128 + the signal. */
export function exitCodeOf(status: number): number {
  const sig = status & 0x7f
  return sig === 0 ? (status >> 8) & 0xff : 128 + sig
}

export interface ReapedOptions {
  env?: NodeJS.ProcessEnv
  /** Fds for the program's stdin/stdout/stderr; absent ones are /dev/null. */
  stdio?: [number | null, number | null, number | null]
}

export class ReapedProcess {
  /** The runtime's own exit (its wait status); -1 when it could not be executed. */
  readonly runtimeExit: Promise<number>
  /** Resolves once the reaper has no children left (every process it adopted has ended). */
  readonly done: Promise<void>
  #runtimePid = 0
  #exits = new Map<number, number>()
  #waiters = new Map<number, (status: number) => void>()
  #others: { pid: number; status: number }[] = []
  #socket: net.Socket

  private constructor(fd: number) {
    this.#socket = new net.Socket({ fd, readable: true, writable: false })
    let resolveRuntime!: (s: number) => void
    this.runtimeExit = new Promise((r) => { resolveRuntime = r })
    let buf = Buffer.alloc(0)
    this.#socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= EVENT_LEN) {
        const kind = buf.readUInt32LE(0)
        const pid = buf.readInt32LE(4)
        const value = buf.readInt32LE(8)
        buf = buf.subarray(EVENT_LEN)
        if (kind === 1) this.#runtimePid = pid
        else if (kind === 3) resolveRuntime(-1)
        else if (kind === 2) {
          if (pid === this.#runtimePid) resolveRuntime(value)
          else this.#exited(pid, value)
        }
      }
    })
    this.done = new Promise((resolve) => {
      const end = () => {
        resolveRuntime(-1)
        resolve()
      }
      this.#socket.on('close', end)
      this.#socket.on('error', () => undefined)
    })
  }

  /** Starts `program args...` under a new reaper. */
  static async spawn(program: string, args: string[], opts: ReapedOptions = {}): Promise<ReapedProcess> {
    const env = Object.entries(opts.env ?? process.env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`)
    const [i, o, e] = opts.stdio ?? [null, null, null]
    const fd = await call(() => native.spawnReapedProcess(program, args, env, i, o, e))
    return new ReapedProcess(fd)
  }

  /** Reads an event pipe handed over by another process (a shim adopting a container). */
  static fromFd(fd: number): ReapedProcess {
    return new ReapedProcess(fd)
  }

  /**
   * Stops reading events, so another process can take the pipe over; returns its fd (still
   * open here until `close`). Events already read stay known to this object.
   */
  hold(): number {
    this.#socket.pause()
    return (this.#socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1
  }

  /** Whether the exit of `pid` has been seen. */
  hasExited(pid: number): boolean {
    return this.#exits.has(pid)
  }

  #exited(pid: number, status: number): void {
    this.#exits.set(pid, status)
    this.#others.push({ pid, status })
    this.#waiters.get(pid)?.(status)
  }

  /**
   * The wait status of `pid` (a process the runtime left), once it has ended; or, when the
   * reaper ends without having seen `pid`, of the last other process it reaped (-1: none).
   */
  exitOf(pid: number): Promise<number> {
    const known = this.#exits.get(pid)
    if (known !== undefined) return Promise.resolve(known)
    return new Promise((resolve) => {
      this.#waiters.set(pid, resolve)
      void this.done.then(() => resolve(this.#exits.get(pid) ?? this.#others[this.#others.length - 1]?.status ?? -1))
    })
  }

  /** Stops reading (the reaper itself goes on reaping). */
  close(): void {
    this.#socket.destroy()
  }
}

/** Signal name → number on this platform. */
export function signalNumber(name: string): number | undefined {
  return os.constants.signals[name as NodeJS.Signals]
}
