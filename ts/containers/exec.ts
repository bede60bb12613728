/**
 * `docker exec`: another process in a running container, through `runc exec`. The process
 * inherits the container's spec (namespaces, capabilities, cgroup — `bundle/config.json` as the
 * start wrote it) with its own args, env, user, working dir and terminal, as the daemon builds
 * them: env = PATH, HOSTNAME (TERM=xterm with a terminal), the container's Env, then the exec's
 * `-e` (replacing or appending), HOME last from the user's passwd entry.
 *
 * No store lock is held while the process runs (an exec can last hours).
 */
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import * as os from 'node:os'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import type { Readable, Writable } from 'node:stream'
import { StoreContext } from '../context'
import { StrataError } from '../errors'
import { randomHex, readFileIfExists } from '../fsx'
import { UnionView } from '../view'
import { ContainerPaths } from './layout'
import { ContainerRecord } from './record'
import { processEnv, resolveUser, withUserEnv } from './spec'
import { Runtime, runtimeMessage } from './runtime'
import { ReapedProcess, exitCodeOf } from './reaped'
import { runOnTerminal } from './terminal'
import type { ConsoleSize } from './console'
import type { Handoff } from './adopt'

export interface ExecOptions {
  /** `-u USER[:GROUP]` (default: the container's user). */
  user?: string
  /** `-w DIR` (default: the container's working dir). */
  workdir?: string
  /** `-e K=V` (a bare `K` takes this process's value, as the docker CLI does). */
  env?: string[]
  /** `-t`: a pseudo-terminal (stdout and stderr become one stream: `stdout`). */
  tty?: boolean
  /** With `tty`: the window size, followed while the process runs. */
  console?: ConsoleSize | { rows: number; cols: number }
  /** `-i`: the process's stdin (with `tty`: the keyboard). */
  stdin?: Readable
  /** Where output goes as it comes; when absent it is collected into the result. */
  stdout?: Writable
  stderr?: Writable
  /** `-d`: start it and return; nobody waits for it (its output goes nowhere). */
  detach?: boolean
  /** With `tty` and `stdin`: docker's detach keys (`ctrl-p,ctrl-q`); typed, the exec runs on unattended. */
  detachKeys?: string
}

export interface ExecResult {
  exitCode: number
  /** Collected output (empty when a stream was given, or detached). */
  stdout: Buffer
  stderr: Buffer
  /** Why the process could not be started (exit 126, as Docker): `OCI runtime exec failed: ...`. */
  error?: string
  /** The caller detached (`detachKeys`): the process runs on; `exitCode` is 0. */
  detached?: boolean
}

/** The env of an exec'd process (see the module docs). */
export function execEnv(configEnv: readonly string[], execEnvs: readonly string[], hostname: string, home: string, tty: boolean): string[] {
  return processEnv(withUserEnv(configEnv, execEnvs), hostname, home, tty)
}

interface Prepared {
  processFile: string
  runtimeLog: string
}

async function prepare(p: ContainerPaths, rec: ContainerRecord, lowers: () => Promise<string[]>, cmd: string[], opts: ExecOptions): Promise<Prepared> {
  const spec = JSON.parse(await fs.readFile(path.join(p.bundle, 'config.json'), 'utf8').catch(() => {
    throw new StrataError('NotRunning', `Container ${rec.ID} is not running`)
  })) as { process: Record<string, unknown> }
  // Users are looked up in the container's own files, resolved inside its root (a symlink in
  // the container cannot point the lookup at the host's /etc).
  const view = await UnionView.open({ lowers: await lowers() })
  const read = async (f: string) => view.readFile(f, 'utf8').catch(() => undefined)
  const user = resolveUser(opts.user ?? rec.Config.User ?? '', await read('/etc/passwd'), await read('/etc/group'))
  const hostname = rec.Config.Hostname ?? rec.ID.slice(0, 12)
  const tty = Boolean(opts.tty)
  const proc = {
    ...spec.process,
    terminal: tty,
    args: cmd,
    env: execEnv(rec.Config.Env ?? [], opts.env ?? [], hostname, user.home, tty),
    cwd: opts.workdir || rec.Config.WorkingDir || '/',
    user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) },
    ...(tty && opts.console && opts.console.rows > 0 && opts.console.cols > 0
      ? { consoleSize: { height: opts.console.rows, width: opts.console.cols } } : {}),
  }
  if (!tty) delete (proc as { consoleSize?: unknown }).consoleSize
  const tag = randomHex(6)
  const processFile = path.join(p.bundle, `exec-${tag}.json`)
  await fs.writeFile(processFile, JSON.stringify(proc))
  return { processFile, runtimeLog: path.join(p.bundle, `exec-${tag}.log`) }
}

/** What the runtime logged as errors: Docker's `OCI runtime exec failed: <msg>: unknown`. */
async function runtimeError(runtimeLog: string): Promise<string | undefined> {
  const errs = ((await readFileIfExists(runtimeLog)) ?? '').split('\n').filter((l) => /"level":"(error|fatal)"/.test(l))
  return errs.length ? `OCI runtime exec failed: ${runtimeMessage(errs.join('\n'))}: unknown` : undefined
}

/**
 * Runs `cmd` in the running container `rec`. `lowers` gives the dirs (top first) of a read-only
 * view of its filesystem (for user lookups).
 */
export async function execProcess(ctx: StoreContext, runtime: Runtime, p: ContainerPaths, rec: ContainerRecord, lowers: () => Promise<string[]>, cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (cmd.length === 0) throw new StrataError('InvalidArgument', 'no command specified')
  if (!rec.State.Running) throw new StrataError('NotRunning', `Container ${rec.ID} is not running`)
  if (rec.State.Paused) throw new StrataError('Conflict', `Container ${rec.Name.slice(1)} is paused, unpause the container before exec`)
  const prep = await prepare(p, rec, lowers, cmd, opts)
  const pidFile = `${prep.processFile}.pid`
  const base = ['--log', prep.runtimeLog, '--log-format', 'json', 'exec', '--process', prep.processFile, '--pid-file', pidFile]
  const none = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) }
  try {
    if (opts.detach && !opts.tty) {
      const reaped = await ReapedProcess.spawn(runtime.binary, ['--root', runtime.stateRoot, ...base, '-d', rec.ID])
      const status = await reaped.runtimeExit
      reaped.close()
      if (status !== 0) throw new StrataError('RuntimeFailed', (await runtimeError(prep.runtimeLog)) ?? `exec failed: ${runtime.binary} exited with status ${exitCodeOf(status)}`)
      return { exitCode: 0, ...none }
    }
    if (opts.tty) {
      const out: Buffer[] = []
      const detach = Boolean(opts.detach)
      const detachKeys = opts.detachKeys && opts.stdin && !detach ? (require('./detach-keys') as typeof import('./detach-keys')).parseDetachKeys(opts.detachKeys) : undefined
      // Detached (now with -d, or later by the keys): a shim reads its terminal until it ends.
      const onDetach = async (h: Handoff) => (require('./adopt') as typeof import('./adopt')).handOff(ctx, 'drain', rec.ID, h)
      const run = await runOnTerminal(ctx, runtime, (sock) => [...base, '-d', '--console-socket', sock, rec.ID], pidFile, {
        ...(opts.stdin && !detach ? { stdin: opts.stdin } : {}), ...(opts.console ? { console: opts.console } : {}),
        ...(detach ? {} : { stdout: opts.stdout }), onOutput: opts.stdout || detach ? undefined : (d) => out.push(d),
        ...(detach ? { detachAtStart: true, onDetach } : {}), ...(detachKeys ? { detachKeys, onDetach } : {}),
      })
      if (run.detached) return { exitCode: 0, ...none, ...(detach ? {} : { detached: true }) }
      if (run.status < 0) {
        const error = (await runtimeError(prep.runtimeLog)) ?? `OCI runtime exec failed: ${runtime.binary} exited with status ${exitCodeOf(run.runtimeStatus)}: unknown`
        if (detach) throw new StrataError('RuntimeFailed', error)
        return { exitCode: 126, ...none, error }
      }
      // -d: it ended before it could be handed over.
      if (detach) return { exitCode: 0, ...none }
      return { exitCode: exitCodeOf(run.status), stdout: Buffer.concat(out), stderr: Buffer.alloc(0) }
    }
    return await execPiped(runtime, [...base, rec.ID], prep.runtimeLog, pidFile, opts)
  } finally {
    await Promise.all([prep.processFile, pidFile, prep.runtimeLog].map((f) => fs.rm(f, { force: true })))
  }
}

/** `runc exec` in the foreground: it waits for the process and exits with its status. */
async function execPiped(runtime: Runtime, args: string[], runtimeLog: string, pidFile: string, opts: ExecOptions): Promise<ExecResult> {
  const child = spawn(runtime.binary, ['--root', runtime.stateRoot, ...args], { stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout!.on('data', (d: Buffer) => forwardOne(d, opts.stdout, out, child.stdout!))
  // runc prints its own failure on the stderr it shares with the process (it is in its log
  // too). The process exists once runc has written its pid file: what comes before is held
  // back, and dropped when the start failed.
  let held: Buffer[] | undefined = []
  const emitErr = (d: Buffer) => forwardOne(d, opts.stderr, err, child.stderr!)
  child.stderr!.on('data', (d: Buffer) => {
    if (held && existsSync(pidFile)) {
      for (const h of held) emitErr(h)
      held = undefined
    }
    if (held) held.push(d)
    else emitErr(d)
  })
  if (child.stdin && opts.stdin) {
    child.stdin.on('error', () => undefined)
    opts.stdin.pipe(child.stdin)
  }
  const code = await new Promise<number>((resolve) => {
    child.on('error', () => resolve(-1))
    child.on('close', (c, signal) => resolve(c ?? (signal ? 128 + (exitSignal(signal) ?? 0) : 255)))
  })
  if (opts.stdin && child.stdin) opts.stdin.unpipe(child.stdin)
  const error = code === -1 ? `OCI runtime exec failed: cannot run ${runtime.binary}: unknown` : code !== 0 ? await runtimeError(runtimeLog) : undefined
  if (held && !error) for (const h of held) emitErr(h)
  return { exitCode: error ? 126 : code, stdout: Buffer.concat(out), stderr: Buffer.concat(err), ...(error ? { error } : {}) }
}

/** Passes `d` on to `to` (pausing `from` while `to` is full), or collects it when there is no `to`. */
function forwardOne(d: Buffer, to: Writable | undefined, bufs: Buffer[], from: Readable): void {
  if (!to) {
    bufs.push(d)
    return
  }
  if (to.destroyed || to.writableEnded) return
  if (!to.write(d)) {
    from.pause()
    const resume = () => {
      to.off('drain', resume).off('error', resume).off('close', resume)
      from.resume()
    }
    to.on('drain', resume).on('error', resume).on('close', resume)
  }
}

function exitSignal(name: NodeJS.Signals): number | undefined {
  return os.constants.signals[name]
}
