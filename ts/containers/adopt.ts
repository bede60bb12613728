/**
 * Detaching from a process that has a terminal (docker's Ctrl-P Ctrl-Q, `exec -dt`): the process
 * keeps running and someone must go on reading its terminal (or its writes block once the pty's
 * buffer is full, and a closed master would hang it up) and, for a container's own process,
 * record its exit. The process that was attached hands both ends over to a shim (./shim.ts):
 * the pty master and the subreaper's event pipe (./reaped.ts) pass as inherited fds 3 and 4, and
 * the shim says `ready` on its stdout once it has taken the container over (its supervisor pid,
 * its own mount reference) — only then does the attached process let go and return.
 *
 * - `adopt`: a container's process — output to the json-file log, then its exit recorded as the
 *   supervisor would, `--rm` honoured;
 * - `drain`: an exec's process — output read and dropped until it ends.
 */
import path = require('node:path')
import { createWriteStream } from 'node:fs'
import { childProcess } from '../lazy'
import { StoreContext } from '../context'
import { StrataError } from '../errors'
import { ContainerPaths } from './layout'
import { readRecord, writeRecord, readHostConfig } from './record'
import { MountManager } from './mounts'
import { LineSplitter, logLine } from './logfile'
import { PtyMaster } from './console'
import { ReapedProcess, exitCodeOf } from './reaped'
import { mountIdOf, recordExit, runtimeOf } from './supervisor'

/** What a detaching process hands over. */
export interface Handoff {
  /** The pty master. */
  masterFd: number
  /** The read end of the subreaper's event pipe. */
  eventsFd: number
  /** The process to follow. */
  pid: number
}

/** How to run the shim from wherever this code runs (sources through tsx, dist/, or the CLI bundle). */
export function shimCommand(): { command: string; args: string[] } {
  const ts = __filename.endsWith('.ts')
  const shim = path.join(__dirname, `shim${ts ? '.ts' : '.js'}`)
  return { command: process.execPath, args: ts ? ['--require', require.resolve('tsx/cjs'), shim] : [shim] }
}

/** How long a shim may take to start and take over. */
const READY_MS = 60_000

/** Spawns a shim that takes `h` over (`adopt` for a container's process, `drain` for an exec's). */
export async function handOff(ctx: StoreContext, mode: 'adopt' | 'drain', id: string, h: Handoff): Promise<void> {
  const { command, args } = shimCommand()
  const child = childProcess.spawn(command, [...args, mode, ctx.layout.root, id, String(h.pid)], {
    detached: true, stdio: ['ignore', 'pipe', 'ignore', h.masterFd, h.eventsFd],
  })
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => fail(new StrataError('RuntimeFailed', `the shim taking over container ${id} did not start`)), READY_MS)
    const done = (e?: Error) => {
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.off('exit', onExit).off('error', fail)
      if (e) reject(e)
      else resolve()
    }
    const fail = (e: Error) => done(e)
    const onData = (d: Buffer) => {
      out += d.toString()
      if (out.includes('ready\n')) done()
    }
    const onExit = (code: number | null) => done(new StrataError('RuntimeFailed', `the shim taking over container ${id} exited (${code})`))
    child.stdout!.on('data', onData)
    child.once('exit', onExit).once('error', fail)
  })
  child.stdout!.destroy()
  child.unref()
}

/** How long the last output may take to come once the process has ended. */
const DRAIN_MS = 2000

function drained(master: PtyMaster): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, DRAIN_MS)
    const end = () => {
      clearTimeout(timer)
      resolve()
    }
    if (master.stream.readableEnded || master.stream.destroyed) end()
    master.stream.once('end', end).once('close', end)
  })
}

/**
 * The shim's side of `adopt` (fds 3 and 4 inherited): becomes the container's supervisor, logs
 * its terminal, records its exit. Says `ready` on stdout once it holds the container.
 */
export async function adoptContainer(ctx: StoreContext, p: ContainerPaths, pid: number): Promise<void> {
  const mounts = new MountManager(ctx)
  const me = { kind: 'process' as const, pid: process.pid }
  const mountId = await mountIdOf(p)
  await ctx.exclusive(async () => {
    const r = await readRecord(p)
    if (!r) throw new StrataError('ContainerNotFound', `No such container: ${p.id}`)
    await mounts.acquire(p, mountId, me, true)
    r.Supervisor = process.pid
    await writeRecord(p, r)
  })
  process.stdout.write('ready\n')
  const log = createWriteStream(p.log, { flags: 'a', mode: 0o640 })
  const out = new LineSplitter((l) => log.write(logLine('stdout', l)))
  const master = new PtyMaster(3)
  master.stream.on('data', (d: Buffer) => out.push(d))
  const reaped = ReapedProcess.fromFd(4)
  const status = await reaped.exitOf(pid)
  await drained(master)
  master.close()
  reaped.close()
  out.end()
  await new Promise<void>((r) => log.end(r))
  await recordExit(ctx, p, await runtimeOf(ctx, p), mountId, status >= 0 ? exitCodeOf(status) : 255, undefined, me)
  if ((await readHostConfig(p)).AutoRemove) {
    const { Containers } = require('./containers') as typeof import('./containers')
    await new Containers(ctx).remove(p.id, { force: true }).catch(() => undefined)
  }
}

/** The shim's side of `drain` (fds 3 and 4 inherited): reads an exec's terminal until it ends. */
export async function drainExec(pid: number): Promise<void> {
  const master = new PtyMaster(3)
  master.stream.resume()
  const reaped = ReapedProcess.fromFd(4)
  process.stdout.write('ready\n')
  await reaped.exitOf(pid)
  await drained(master)
  master.close()
  reaped.close()
}
