/**
 * The user's terminal while a container process has one of its own (`run -it`, `exec -it`,
 * `start -ai`): raw mode on our stdin (keystrokes — Ctrl-C included — go to the container's
 * terminal, whose line discipline makes signals of them), the window size followed (SIGWINCH
 * arrives as the stdout stream's 'resize'), and the terminal put back as it was on every way
 * out: normal return, thrown error, and signals (restored, then the signal re-raised so the exit
 * status still says what killed us). Node restores its stdio's mode at exit too; this does not
 * rely on that.
 *
 * Raw mode is docker's (cfmakeraw, set natively): Node's `setRawMode` keeps output processing
 * on, so the container's own `\r\n` would reach the screen as `\r\r\n`.
 */
import type * as tty from 'node:tty'
import { ConsoleSize } from '../containers/console'
import { native } from '../native'

/** Docker's words when `-it` is asked for with a stdin that is not a terminal. */
export const NOT_A_TTY = 'the input device is not a TTY'

export interface TerminalSession {
  /** The size to give the container's terminal (followed while the session lasts). */
  console?: ConsoleSize
  /** Puts everything back (idempotent). */
  restore(): void
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']

/**
 * Starts a session: raw mode when `raw` (and stdin is a terminal), the size of stdout's
 * terminal (when it is one) followed.
 */
export function openTerminalSession(raw: boolean, stdin: NodeJS.ReadStream = process.stdin, stdout: NodeJS.WriteStream = process.stdout): TerminalSession {
  const undo: (() => void)[] = []
  let restored = false
  const restore = () => {
    if (restored) return
    restored = true
    for (const u of undo.reverse()) {
      try { u() } catch { /* the terminal may be gone */ }
    }
  }
  let size: (ConsoleSize & { stop(): void }) | undefined
  if (stdout.isTTY) {
    size = ConsoleSize.follow(stdout as tty.WriteStream)
    undo.push(() => size!.stop())
  }
  if (raw && stdin.isTTY) {
    const fd = (stdin as unknown as { fd?: number }).fd ?? 0
    const saved = native.makeTerminalRaw(fd)
    undo.push(() => native.restoreTerminal(fd, saved))
    const onExit = () => restore()
    process.on('exit', onExit)
    undo.push(() => process.off('exit', onExit))
    for (const sig of SIGNALS) {
      const h = () => {
        restore()
        process.kill(process.pid, sig)
      }
      process.once(sig, h)
      undo.push(() => process.off(sig, h))
    }
  }
  return { ...(size ? { console: size } : {}), restore }
}
