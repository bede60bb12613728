/**
 * CLI: `exec [-d] [-i] [-t] [-u USER] [-w DIR] [-e K=V] [--env-file F] CONTAINER COMMAND [ARG...]`.
 * Exit codes as docker's: the command's own; 126 when it could not be started (the runtime's
 * error printed as docker prints it: on stdout, no prefix, `\r\n`); 1 for daemon errors (no
 * such container, not running, paused) and for `-d` failures.
 */
import type { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs, flag, value, values, FlagSpec } from './args'
import { Io, processIo } from './io'
import { sink } from './streams'
import { openTerminalSession, NOT_A_TTY } from './terminal'
import { readEnvFiles } from './envfile'
import type { ExecOptions } from '../containers/exec'

const EXEC_FLAGS: FlagSpec[] = [
  { name: 'detach', short: 'd' }, { name: 'interactive', short: 'i' }, { name: 'tty', short: 't' },
  { name: 'user', short: 'u', value: true }, { name: 'workdir', short: 'w', value: true },
  { name: 'env', short: 'e', value: true, multi: true }, { name: 'env-file', value: true, multi: true },
  { name: 'detach-keys', value: true }, { name: 'privileged' },
]

export async function execCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, EXEC_FLAGS, true)
  if (p.args.length < 2) {
    throw new StrataError('InvalidArgument', `"exec" requires at least 2 arguments.\nSee 'strata exec --help'.\n\nUsage:  strata exec [OPTIONS] CONTAINER COMMAND [ARG...]`)
  }
  const tty = flag(p, 'tty')
  const interactive = flag(p, 'interactive')
  const detach = flag(p, 'detach')
  const daemonError = (e: unknown): number => {
    if (!(e instanceof StrataError)) throw e
    io.err(`Error response from daemon: ${e.message}\n`)
    return 1
  }
  let c
  try {
    c = await store.containers.get(p.args[0])
  } catch (e) {
    return daemonError(e)
  }
  if (!detach && io === processIo && tty && interactive && !process.stdin.isTTY) {
    io.err(`${NOT_A_TTY}\n`)
    return 1
  }
  const opts: ExecOptions = {
    tty, detach, env: [...(await readEnvFiles(values(p, 'env-file'))), ...values(p, 'env')],
    ...(value(p, 'user') !== undefined ? { user: value(p, 'user')! } : {}),
    ...(value(p, 'workdir') !== undefined ? { workdir: value(p, 'workdir')! } : {}),
  }
  const session = !detach && tty && io === processIo ? openTerminalSession(interactive) : undefined
  try {
    if (!detach) {
      opts.stdout = sink(io, 'out')
      if (!tty) opts.stderr = sink(io, 'err')
      if (interactive) opts.stdin = process.stdin
      if (session?.console) opts.console = session.console
      if (tty && interactive) opts.detachKeys = value(p, 'detach-keys') ?? 'ctrl-p,ctrl-q'

    }
    let res
    try {
      res = await c.exec(p.args.slice(1), opts)
    } catch (e) {
      if (!(e instanceof StrataError)) throw e
      // Before the process: the daemon's refusals exit 1; a user that cannot be resolved is
      // the exec's own failure (126), reported as the start failures below.
      if (!detach && e.code === 'InvalidArgument') {
        io.out(`${e.message}\r\n`)
        return 126
      }
      return daemonError(e)
    }
    // docker: a start failure comes through the attached stream, on stdout, as `...\r\n`.
    if (res.error) io.out(`${res.error}\r\n`)
    return res.exitCode
  } finally {
    session?.restore()
    // The process is gone: stop reading our stdin, or the CLI would wait for its EOF.
    if (interactive && !detach && io === processIo) process.stdin.destroy()
  }
}
