/**
 * Running a container's process: mount the rootfs, write the OCI bundle, `runc run` it in the
 * foreground, tee stdout/stderr into the json-file log (and to the caller's streams), record the
 * state transitions (created → running → exited) and drop the mount reference at the end.
 * The CLI's `run` supervises in-process; a detached `start` runs the same code in a small
 * detached shim process (shim.ts), so the exit code is recorded however the caller goes away.
 */
import { fsp as fs, childProcess, os } from '../internal/lazy'
import path = require('node:path')
import { createWriteStream } from 'node:fs'
import type { Readable, Writable } from 'node:stream'
import { StoreContext } from '../internal/context'
import { StrataError } from '../errors'
import { readIfExists, readBytesIfExists, readFileIfExists } from '../internal/fsx'
import { MetaWrites, fsyncDir } from '../internal/metawrites'
import { ContainerPaths, runcRoot } from './layout'
import { MOUNT_FILE } from '../internal/layout'
import { ContainerRecord, parseRecord, readHostConfig } from './record'
import { MountManager, MountRef } from './mounts'
import { buildSpec, CAPS, processEnv, resolveUser } from './spec'
import { seccompFor } from './seccomp'
import { Runtime, defaultRuntime, runtimeMessage } from './runtime'
import { LineSplitter, logLine } from './logfile'
import type { ConsoleSize } from './console'

export interface AttachStreams {
  stdin?: Readable
  /** Output; with a terminal (Config.Tty) stdout and stderr are one stream, this one. */
  stdout?: Writable
  stderr?: Writable
  /** With a terminal: keys that, typed on `stdin`, detach (the process runs on under a shim). */
  detachKeys?: Buffer
  /** With a terminal: its size, followed while the process runs. */
  console?: ConsoleSize | { rows: number; cols: number }
}

export interface ExitInfo {
  exitCode: number
  /** The caller detached (`detachKeys`): the process runs on, a shim records its exit. */
  detached?: boolean
  /** Error the runtime reported before the process ran (exit 126/127 as Docker). */
  error?: string
}

export function runtimeFor(ctx: StoreContext, binary?: string): Runtime {
  return new Runtime(binary || defaultRuntime(), runcRoot(ctx.layout))
}

/** The runtime a container was created with (HostConfig.Runtime; `runc` means the default binary). */
export async function runtimeOf(ctx: StoreContext, p: ContainerPaths): Promise<Runtime> {
  const hc = await readHostConfig(p)
  return runtimeFor(ctx, hc.Runtime === 'runc' ? undefined : hc.Runtime)
}

export async function mountIdOf(p: ContainerPaths): Promise<string> {
  const v = await readIfExists(path.join(p.mountMeta, MOUNT_FILE.mountId))
  if (!v?.trim()) throw new StrataError('ContainerNotFound', `container ${p.id} has no writable layer`)
  return v.trim()
}

/**
 * Applies `fn` to the record and writes it back; returns the new record. Optimistic, so the store
 * lock is held for a compare and a rename only: the record is read and the new one written and
 * fsynced beside it without the lock; under the lock, if the record is still the one `fn` saw,
 * `withLock` runs (what must change together with the record, say a mount) and the new record
 * replaces it; if another writer came first, all of it runs again on the newer record. `fn` must
 * only change the record (it may run more than once); what it throws is thrown.
 */
export async function updateRecord(
  ctx: StoreContext,
  p: ContainerPaths,
  fn: (r: ContainerRecord) => void | Promise<void>,
  withLock?: (r: ContainerRecord) => Promise<void>,
): Promise<ContainerRecord> {
  for (let attempt = 0; ; attempt++) {
    const before = await readBytesIfExists(p.config)
    const r = parseRecord(before)
    if (!r) throw new StrataError('ContainerNotFound', `No such container: ${p.id}`)
    await fn(r)
    const next = new MetaWrites()
    let dirs: string[] | undefined
    try {
      await next.put(p.config, JSON.stringify(r))
      // Written and synced before the lock, which is held for the renames only.
      await next.flush()
      dirs = await ctx.exclusive(async () => {
        const now = await readBytesIfExists(p.config)
        if (!now || !before!.equals(now)) return undefined
        await withLock?.(r)
        return next.publish()
      })
    } finally {
      if (!dirs) await next.discard()
    }
    if (dirs) for (const d of dirs) await fsyncDir(d)
    if (dirs) return r
    if (attempt >= 100) throw new StrataError('Locked', `container ${p.id}: its record keeps changing`)
  }
}

async function waitForFile(p: string, done: () => boolean): Promise<string | undefined> {
  for (let i = 0; i < 500 && !done(); i++) {
    const v = await readIfExists(p)
    if (v?.trim()) return v.trim()
    await new Promise((r) => setTimeout(r, 10))
  }
  return undefined
}

/**
 * Kills the container until it is gone: `runc kill` fails while the runtime has not created it
 * yet (just spawned), so it is asked again until `gone()` says the runtime has exited.
 */
async function killUntilGone(runtime: Runtime, id: string, gone: () => boolean): Promise<void> {
  while (!gone()) {
    const r = await runtime.kill(id, 'SIGKILL').catch(() => undefined)
    if (r?.code === 0) return
    await new Promise((res) => setTimeout(res, 20))
  }
}

/**
 * Runs the container's process to completion. `onRunning` fires once the runtime has been
 * started and the state says running. Throws only for failures before the runtime runs.
 * `signal` kills the container (SIGKILL) if it fires; the state is then recorded as for any
 * exit (137), or, before the runtime ran, put back as it was.
 */
export async function supervise(ctx: StoreContext, p: ContainerPaths, io: AttachStreams = {}, onRunning?: () => void, signal?: AbortSignal): Promise<ExitInfo> {
  const mounts = new MountManager(ctx)
  const me = { kind: 'process' as const, pid: process.pid }
  const hc = await readHostConfig(p)
  const runtime = await runtimeOf(ctx, p)
  const mountId = await mountIdOf(p)
  const runtimeLog = path.join(p.bundle, 'runtime.log')

  // Running, and mounted: one locked step (a compare, a mount, a rename), so two starts cannot
  // both win. The record says running from here on; a crash before the runtime runs leaves a
  // running record with a dead supervisor, which the repair pass turns into an exited one.
  let before!: ContainerRecord['State']
  let merged!: string
  const rec = await updateRecord(ctx, p, (r) => {
    if (r.State.Running) throw new StrataError('Conflict', `container ${p.id} is already running`)
    if (r.State.Status === 'removing' || r.State.Dead) throw new StrataError('Conflict', `container ${p.id} is marked for removal and cannot be started`)
    before = r.State
    r.State = { ...r.State, Status: 'running', Running: true, Paused: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: new Date().toISOString(), FinishedAt: '0001-01-01T00:00:00Z' }
    r.Supervisor = process.pid
  }, async () => { merged = await mounts.acquire(p, mountId, me, false) })

  // The bundle, outside the lock: only this supervisor touches it while the record says running.
  try {
    const passwd = await readFileIfExists(path.join(merged, 'etc/passwd')).catch(() => undefined)
    const group = await readFileIfExists(path.join(merged, 'etc/group')).catch(() => undefined)
    const user = resolveUser(rec.Config.User ?? '', passwd, group)
    const hostname = rec.Config.Hostname ?? p.id.slice(0, 12)
    const spec = buildSpec({
      args: [rec.Path, ...rec.Args], env: processEnv(rec.Config.Env ?? [], hostname, user.home, Boolean(rec.Config.Tty)), cwd: rec.Config.WorkingDir || '/',
      user, hostname, rootPath: merged, network: hc.NetworkMode, hostsPath: p.hosts, hostnamePath: p.hostname,
      resolvConfPath: p.resolvConf, cgroupsPath: `/strata/${p.id}`, openStdin: Boolean(rec.OpenStdin),
      terminal: Boolean(rec.Config.Tty), ...(io.console ? { consoleSize: { rows: io.console.rows, cols: io.console.cols } } : {}),
      seccomp: seccompFor(hc.SecurityOpt ?? [], CAPS) ?? null,
    })
    await fs.mkdir(p.bundle, { recursive: true })
    // Not synced: the bundle is written anew by every start, and a crash stops the container.
    await fs.writeFile(path.join(p.bundle, 'config.json'), JSON.stringify(spec, null, 2))
    await fs.rm(p.pidFile, { force: true })
    await fs.rm(runtimeLog, { force: true })
    // A stale runtime entry (a crash) would make `run` fail with "container exists".
    await runtime.delete(p.id, true)
    if (signal?.aborted) throw new StrataError('Aborted', 'operation aborted')
  } catch (e) {
    await updateRecord(ctx, p, (r) => {
      if (r.Supervisor !== process.pid) return
      r.State = before
      delete r.Supervisor
    }, () => mounts.release(p, mountId, me).then(() => undefined)).catch(() => undefined)
    throw e
  }

  // The caller's streams: while the container runs, an error on one of them (a reader that went
  // away) must not reach the event loop as an uncaught 'error' event; the log still gets the output.
  const ignore = (): void => undefined
  const userStreams = [io.stdin, io.stdout, io.stderr].filter((s): s is Readable | Writable => s !== undefined)
  for (const s of userStreams) s.on('error', ignore)
  const log = createWriteStream(p.log, { flags: 'a', mode: 0o640 })
  const recordPid = async (pid: number) => {
    await updateRecord(ctx, p, (r) => {
      if (r.State.Running && r.Supervisor === process.pid) r.State.Pid = pid
    }).catch(() => undefined)
  }
  onRunning?.()
  let code: number
  if (rec.Config.Tty) {
    const { runOnTerminal } = require('./terminal') as typeof import('./terminal')
    const { exitCodeOf } = require('./reaped') as typeof import('./reaped')
    const out = new LineSplitter((l) => log.write(logLine('stdout', l)))
    // As in the piped run: an abort kills the container until the runtime is gone.
    let ran = false
    let killing: Promise<void> | undefined
    const onAbort = (): void => { killing ??= killUntilGone(runtime, p.id, () => ran) }
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) onAbort()
    const run = await runOnTerminal(ctx, runtime, (sock) => ['--log', runtimeLog, '--log-format', 'json', 'run', '-d', '--console-socket', sock, '--bundle', p.bundle, '--pid-file', p.pidFile, p.id], p.pidFile, {
      ...(rec.OpenStdin && io.stdin ? { stdin: io.stdin } : {}), ...(io.stdout ? { stdout: io.stdout } : {}), ...(io.console ? { console: io.console } : {}),
      onOutput: (d) => out.push(d),
      ...(io.detachKeys ? { detachKeys: io.detachKeys, onDetach: async (h) => (require('./adopt') as typeof import('./adopt')).handOff(ctx, 'adopt', p.id, h) } : {}),
    }, recordPid).finally(() => {
      ran = true
      signal?.removeEventListener('abort', onAbort)
    })
    await killing
    out.end()
    if (run.detached) {
      // The shim holds the container now (its own mount reference, its pid as supervisor).
      for (const s of userStreams) s.off('error', ignore)
      await new Promise<void>((r) => log.end(r))
      await ctx.exclusive(() => mounts.release(p, mountId, me)).catch(() => undefined)
      return { exitCode: 0, detached: true }
    }
    code = run.status >= 0 ? exitCodeOf(run.status) : run.runtimeStatus === -1 ? -1 : 255
  } else {
    code = await runPiped(runtime, p, runtimeLog, Boolean(rec.OpenStdin), io, log, recordPid, signal)
  }
  for (const s of userStreams) s.off('error', ignore)
  await new Promise<void>((r) => log.end(r))

  // Errors the runtime itself reported (the process never ran): Docker's 127/126.
  let error: string | undefined
  const rlog = (await readFileIfExists(runtimeLog)) ?? ''
  const errs = rlog.split('\n').filter((l) => /"level":"(error|fatal)"/.test(l))
  if (code === -1) error = `cannot run ${runtime.binary}`
  else if (errs.length > 0 && code !== 0) {
    error = runtimeMessage(errs.join('\n'))
    code = /executable file not found|no such file or directory/.test(error) ? 127 : 126
  }
  if (code === -1) code = 127

  await recordExit(ctx, p, runtime, mountId, code, error, me)
  return { exitCode: code, ...(error ? { error } : {}) }
}

/**
 * The end of a container's run: the runtime's state removed, the record says exited (with the
 * code and the runtime's error), the supervisor's mount reference dropped.
 */
export async function recordExit(ctx: StoreContext, p: ContainerPaths, runtime: Runtime, mountId: string, code: number, error: string | undefined, me: MountRef): Promise<void> {
  await runtime.delete(p.id, true).catch(() => undefined)
  const markExited = (r: ContainerRecord): void => {
    r.State = { ...r.State, Status: 'exited', Running: false, Paused: false, Pid: 0, ExitCode: code, Error: error ?? '', FinishedAt: new Date().toISOString() }
    delete r.Supervisor
  }
  const release = async (): Promise<void> => { await new MountManager(ctx).release(p, mountId, me).catch(() => undefined) }
  // A container removed meanwhile (rm -f) has no record left: then only the mount goes.
  await updateRecord(ctx, p, markExited, release).catch((e: StrataError) => {
    if (e.code !== 'ContainerNotFound') throw e
    return ctx.exclusive(release)
  })
}

/** Without a terminal: `runc run` in the foreground, its stdio piped (stdout/stderr apart). */
async function runPiped(runtime: Runtime, p: ContainerPaths, runtimeLog: string, openStdin: boolean, io: AttachStreams, log: Writable, onPid: (pid: number) => Promise<void>, signal?: AbortSignal): Promise<number> {
  let exited = false
  const child = childProcess.spawn(runtime.binary, ['--root', runtime.stateRoot, '--log', runtimeLog, '--log-format', 'json', 'run', '--bundle', p.bundle, '--pid-file', p.pidFile, p.id], {
    stdio: [openStdin && io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  })
  const outLines = new LineSplitter((l) => log.write(logLine('stdout', l)))
  // The runtime prints its own failure ("runc run failed: ...") on the stderr it shares with the
  // process; that line is the runtime's (it is in the runtime log), not the container's output.
  const failPrefix = `${path.basename(runtime.binary)} run failed: `
  const errLines = new LineSplitter((l) => {
    if (l.toString('utf8').startsWith(failPrefix)) return
    log.write(logLine('stderr', l))
    io.stderr?.write(l)
  }, (partial) => {
    const s = partial.toString('utf8')
    const mayBeFailure = s.length < failPrefix.length ? failPrefix.startsWith(s) : s.startsWith(failPrefix)
    return !mayBeFailure
  }, (l) => io.stderr?.write(l))
  errLines.emitLogOnly = (l) => log.write(logLine('stderr', l))
  child.stdout!.on('data', (d: Buffer) => {
    outLines.push(d)
    // Backpressure: a slow reader of our stdout slows the container's writes, not our memory.
    // A reader that went away (EPIPE) no longer gets output; the log still does.
    const out = io.stdout
    if (!out || out.destroyed || out.writableEnded) return
    if (!out.write(d)) {
      child.stdout!.pause()
      const resume = () => {
        out.off('drain', resume).off('error', resume).off('close', resume)
        child.stdout!.resume()
      }
      out.on('drain', resume).on('error', resume).on('close', resume)
    }
  })
  child.stderr!.on('data', (d: Buffer) => errLines.push(d))
  if (child.stdin && io.stdin) {
    child.stdin.on('error', () => undefined)
    io.stdin.pipe(child.stdin)
  }
  const status = new Promise<number>((resolve) => {
    child.on('error', () => resolve(-1))
    child.on('close', (code, sig) => resolve(code ?? (sig ? 128 + (osSignal(sig) ?? 0) : 255)))
  })
  let killing: Promise<void> | undefined
  const onAbort = (): void => { killing ??= killUntilGone(runtime, p.id, () => exited) }
  signal?.addEventListener('abort', onAbort, { once: true })
  if (signal?.aborted) onAbort()
  // The container's init pid appears in the pid file once the runtime has created it.
  void waitForFile(p.pidFile, () => exited).then(async (pid) => {
    if (pid && !exited) await onPid(Number(pid))
  })
  const code = await status
  exited = true
  signal?.removeEventListener('abort', onAbort)
  await killing
  outLines.end()
  errLines.end()
  if (io.stdin && child.stdin) io.stdin.unpipe(child.stdin)
  return code
}

function osSignal(name: NodeJS.Signals): number | undefined {
  return os.constants.signals[name]
}
