/**
 * Runs a container process on a terminal of its own (`run -t`, `exec -t`): the runtime is
 * started detached under a subreaper (./reaped.ts) with a console socket (./console.ts); the
 * master it sends carries the process's output (stdout and stderr are one stream on a tty) and
 * takes the caller's keystrokes — Ctrl-C included, which the container's line discipline turns
 * into SIGINT for its foreground process group, as on any terminal. The window size goes in the
 * process spec (`consoleSize`, applied before the process starts) and follows `console` after.
 */
import * as fs from 'node:fs/promises'
import type { Readable, Writable } from 'node:stream'
import { StoreContext } from '../context'
import { StrataError } from '../errors'
import { ConsoleSocket, ConsoleSize, PtyMaster } from './console'
import { ReapedProcess } from './reaped'
import { DetachScanner } from './detach-keys'
import type { Handoff } from './adopt'
import { Runtime } from './runtime'

export interface TerminalIo {
  /** The keyboard: bytes written to the terminal. */
  stdin?: Readable
  /** What the terminal shows. */
  stdout?: Writable
  /** The size to keep the terminal at. */
  console?: ConsoleSize | { rows: number; cols: number }
  /** Every chunk of output (the log). */
  onOutput?: (chunk: Buffer) => void
  /** Keys that, typed on `stdin`, detach (./detach-keys.ts): `onDetach` then takes over. */
  detachKeys?: Buffer
  /** Detach as soon as the process runs (`exec -dt`). */
  detachAtStart?: boolean
  /** Hands the terminal and the process over (./adopt.ts); called once, when detaching. */
  onDetach?: (h: Handoff) => Promise<void>
}

export interface TerminalRun {
  /** The runtime's own wait status: not 0 means it failed (its log says why). */
  runtimeStatus: number
  /** The process's pid (0 when it never ran). */
  pid: number
  /** Wait status of the process; -1 when it never ran, or when detached. */
  status: number
  /** The caller detached: the process runs on, someone else follows it. */
  detached?: boolean
}

/** How long the last output may take to drain once the process has ended. */
const DRAIN_MS = 2000

/**
 * Starts `runtime <args(socket)>` (a `run -d`/`exec -d` with `--console-socket` and
 * `--pid-file pidFile`) and plumbs its terminal until the process ends. `onStarted` gets the
 * pid once the runtime has started it.
 */
export async function runOnTerminal(
  ctx: StoreContext, runtime: Runtime, args: (socket: string) => string[], pidFile: string, io: TerminalIo,
  onStarted?: (pid: number) => void | Promise<void>,
): Promise<TerminalRun> {
  const sock = await ConsoleSocket.open(ctx)
  let reaped: ReapedProcess
  try {
    reaped = await ReapedProcess.spawn(runtime.binary, ['--root', runtime.stateRoot, ...args(sock.path)])
  } catch (e) {
    await sock.close()
    throw e
  }
  void reaped.runtimeExit.then((s) => { if (s !== 0) sock.cancel() })
  let master: PtyMaster
  try {
    master = await sock.receive()
  } catch (e) {
    await sock.close()
    if ((e as StrataError).code !== 'Aborted') throw e
    // The runtime ended without sending a terminal: it failed, and its log says why.
    const runtimeStatus = await reaped.runtimeExit
    reaped.close()
    return { runtimeStatus: runtimeStatus === 0 ? -1 : runtimeStatus, pid: 0, status: -1 }
  }
  await sock.close()
  try {
    return await plumb(master, reaped, pidFile, io, onStarted)
  } finally {
    master.close()
    reaped.close()
  }
}

async function plumb(master: PtyMaster, reaped: ReapedProcess, pidFile: string, io: TerminalIo, onStarted?: (pid: number) => void | Promise<void>): Promise<TerminalRun> {
  master.follow(io.console)
  const ended = new Promise<void>((resolve) => {
    master.stream.once('end', resolve)
    master.stream.once('close', resolve)
  })
  master.stream.on('data', (d: Buffer) => {
    io.onOutput?.(d)
    const out = io.stdout
    if (!out || out.destroyed || out.writableEnded) return
    // Backpressure: a slow reader slows the process's writes (the pty fills), not our memory.
    if (!out.write(d)) {
      master.stream.pause()
      const resume = () => {
        out.off('drain', resume).off('error', resume).off('close', resume)
        master.stream.resume()
      }
      out.on('drain', resume).on('error', resume).on('close', resume)
    }
  })
  const stdin = io.stdin
  const scanner = io.detachKeys?.length && io.onDetach ? new DetachScanner(io.detachKeys) : undefined
  let detach!: () => void
  const detaching = new Promise<'detach'>((resolve) => { detach = () => resolve('detach') })
  if (io.detachAtStart) detach()
  const onKeys = (d: Buffer) => {
    if (master.stream.destroyed) return
    if (!scanner) {
      master.stream.write(d)
      return
    }
    const { pass, detached } = scanner.feed(d)
    if (pass.length) master.stream.write(pass)
    if (detached) detach()
  }
  stdin?.on('data', onKeys)
  try {
    const runtimeStatus = await reaped.runtimeExit
    const pid = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim()) || 0
    if (runtimeStatus !== 0 && pid === 0) return { runtimeStatus, pid: 0, status: -1 }
    await onStarted?.(pid)
    const first = await Promise.race([reaped.exitOf(pid), detaching])
    if (first === 'detach' && io.onDetach && !reaped.hasExited(pid)) {
      // Nothing more is read here: the shim gets the rest (events read so far stay ours).
      stdin?.off('data', onKeys)
      master.stream.pause()
      await io.onDetach({ masterFd: master.fd, eventsFd: reaped.hold(), pid })
      return { runtimeStatus, pid, status: -1, detached: true }
    }
    const status = await reaped.exitOf(pid)
    // The last output is still in the terminal: read it until EOF (the slave is gone with the
    // process), bounded in case something else still holds the slave open.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([ended, new Promise<void>((r) => { timer = setTimeout(r, DRAIN_MS) })])
    clearTimeout(timer)
    return { runtimeStatus, pid, status }
  } finally {
    stdin?.off('data', onKeys)
    stdin?.pause()
  }
}
