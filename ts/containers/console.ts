/**
 * Terminals of container processes: the console socket the runtime sends a pty master to
 * (`--console-socket`; received natively, Node cannot take fds from a socket), the master as a
 * stream, and window sizes. `ConsoleSize` is the public handle a caller uses to say how big its
 * terminal is and when it changes (the CLI follows its own terminal's SIGWINCH with it).
 */
import { EventEmitter } from 'node:events'
import * as fs from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'
import * as tty from 'node:tty'
import { StoreContext, Staging } from '../context'
import { native } from '../native'
import { call, StrataError } from '../errors'

/** The size of a terminal, and its changes: `resize()` emits `'resize'`. */
export class ConsoleSize extends EventEmitter {
  constructor(public rows: number, public cols: number) {
    super()
  }

  resize(rows: number, cols: number): void {
    if (rows === this.rows && cols === this.cols) return
    this.rows = rows
    this.cols = cols
    this.emit('resize', rows, cols)
  }

  /** Follows a terminal's size (`process.stdout` when it is a TTY); `stop()` ends that. */
  static follow(stream: tty.WriteStream): ConsoleSize & { stop(): void } {
    const size = new ConsoleSize(stream.rows ?? 0, stream.columns ?? 0) as ConsoleSize & { stop(): void }
    const onResize = () => size.resize(stream.rows ?? 0, stream.columns ?? 0)
    stream.on('resize', onResize)
    size.stop = () => { stream.off('resize', onResize) }
    return size
  }
}

/** The longest unix socket path (sun_path holds 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 107

/** How long a runtime may take from its start to sending the terminal. */
const RECEIVE_TIMEOUT_MS = 60_000

/** A console socket runc connects to; `receive()` yields the master of the new terminal. */
export class ConsoleSocket {
  readonly path: string
  #native: InstanceType<typeof native.NativeConsoleSocket>
  #dispose: () => Promise<void>
  #cancel = new native.NativeCancel()

  private constructor(p: string, n: InstanceType<typeof native.NativeConsoleSocket>, dispose: () => Promise<void>) {
    this.path = p
    this.#native = n
    this.#dispose = dispose
  }

  /** A socket in a private dir of the store's tmp (or of the system's, when that path is too long). */
  static async open(ctx: StoreContext): Promise<ConsoleSocket> {
    let staging: Staging | undefined = await ctx.staging('console')
    let dir = staging.dir
    if (path.join(dir, 'c.sock').length > MAX_SOCKET_PATH) {
      await staging.dispose()
      staging = undefined
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-console-'))
    }
    const sockPath = path.join(dir, 'c.sock')
    const dispose = async () => {
      if (staging) await staging.dispose()
      else await fs.rm(dir, { recursive: true, force: true })
    }
    try {
      return new ConsoleSocket(sockPath, await call(() => native.NativeConsoleSocket.bind(sockPath)), dispose)
    } catch (e) {
      await dispose()
      throw e
    }
  }

  /** Waits for the runtime to send the terminal; `cancel()` (the runtime failed) ends the wait. */
  async receive(): Promise<PtyMaster> {
    const fd = await call(() => this.#native.receive(RECEIVE_TIMEOUT_MS, this.#cancel))
    return new PtyMaster(fd)
  }

  cancel(): void {
    this.#cancel.cancel()
  }

  /** Removes the socket and its dir. */
  async close(): Promise<void> {
    this.#cancel.cancel()
    this.#native.close()
    await this.#dispose()
  }
}

/** The master side of a container's terminal: what the process writes, and its keyboard. */
export class PtyMaster {
  readonly fd: number
  /** Reads the terminal's output and writes its input (libuv tty handle: no pool thread). */
  readonly stream: tty.ReadStream
  #closed = false

  constructor(fd: number) {
    this.fd = fd
    this.stream = new tty.ReadStream(fd)
    // A master reads EIO once the last slave fd is closed (the process ended): that is EOF.
    this.stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EIO') this.stream.push(null)
    })
  }

  resize(rows: number, cols: number): void {
    if (this.#closed || rows <= 0 || cols <= 0) return
    try {
      native.setWindowSize(this.fd, rows, cols)
    } catch (e) {
      throw new StrataError('Io', `cannot resize the terminal: ${(e as Error).message}`, { cause: e })
    }
  }

  /** Applies `size` now and on every change (a `ConsoleSize`), until the terminal is closed. */
  follow(size: ConsoleSize | { rows: number; cols: number } | undefined): void {
    if (!size) return
    this.resize(size.rows, size.cols)
    if (!(size instanceof EventEmitter)) return
    const onResize = (rows: number, cols: number) => { try { this.resize(rows, cols) } catch { /* closed under us */ } }
    size.on('resize', onResize)
    this.stream.once('close', () => size.off('resize', onResize))
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.stream.destroy()
  }
}
