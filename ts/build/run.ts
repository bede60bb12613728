/**
 * RUN: the step's command in a container on the step's overlay mount (./step.ts), through
 * the OCI runtime the containers use (runc, `<root>/runc` state; started natively,
 * `native.runProcess`: posix_spawn off the JS thread), as BuildKit runs it:
 * the environment of the step (ENV and ARG values in scope; HOME from the user's passwd entry
 * when unset), the user resolved from the rootfs' /etc/passwd and /etc/group, the working
 * directory (made, owned by that user, when missing), stdin /dev/null, hostname
 * `buildkitsandbox`, and `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` bind-mounted from
 * files beside the bundle (so they never land in the layer). Network: the host's (strata has
 * no bridge) or none (a namespace with loopback only).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { StoreContext } from '../internal/context'
import { native } from '../internal/native'
import { call, StrataError } from '../errors'
import { readIfExists, exists } from '../internal/fsx'
import { buildSpec, resolveUser } from '../containers/spec'
import { runtimeFor } from '../containers/supervisor'
import { runtimeMessage } from '../containers/runtime'
import { StepSpace } from './step'

export const BUILD_HOSTNAME = 'buildkitsandbox'
const HOSTS = `127.0.0.1\tlocalhost ${BUILD_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n`

export interface RunRequest {
  /** The runtime's container ID (unique; names the staging dir so cleanup can find it). */
  id: string
  args: string[]
  env: string[]
  user: string
  cwd: string
  network: 'host' | 'none'
  /** A script bind-mounted read-only at `/dev/pipes/<name>` (a heredoc with a shebang). */
  script?: { name: string; content: string }
}

export interface RunIo {
  onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void
  signal?: AbortSignal
}

/** A RUN step's container, ready to start: its bundle written, nothing run yet. */
export interface PreparedRun {
  /** Runs the command; resolves with its exit code (128+n for a signal). */
  start(io: RunIo): Promise<number>
}

/** Reads a small file of the step's rootfs, never outside it. */
function rootFile(root: string, p: string): string | undefined {
  const b = native.readInRoot(root, p, 1 << 22)
  return b ? b.toString('utf8') : undefined
}

/**
 * Everything before the command runs, in the step's own space (mounted): the user resolved,
 * the working directory made in the rootfs, the bundle and the files it binds written. Runs
 * nothing and touches nothing outside the space, so it may come before the step's probe.
 */
export async function prepareRun(ctx: StoreContext, space: StepSpace, req: RunRequest): Promise<PreparedRun> {
  const root = space.merged
  const user = resolveUser(req.user, rootFile(root, '/etc/passwd'), rootFile(root, '/etc/group'))
  const cwd = req.cwd || '/'
  if (cwd !== '/' && !native.statInRoot(root, cwd)) {
    await call(() => native.copyIn(root, root, JSON.stringify([{ op: 'mkdirs', dst: cwd, mode: 0o755, uid: user.uid, gid: user.gid }])))
  }
  const env = [...req.env]
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`)
  const bundle = path.join(space.dir, 'bundle')
  const hosts = path.join(space.dir, 'hosts')
  const hostname = path.join(space.dir, 'hostname')
  const resolv = path.join(space.dir, 'resolv.conf')
  // The bundle's small files go into the step's own dir (nothing else reads or writes there) on
  // the calling thread: microseconds each, where each trip through the libuv pool, busy with the
  // build's native tasks, took up to milliseconds before the runtime could start.
  mkdirSync(bundle, { mode: 0o700 })
  writeFileSync(hosts, HOSTS)
  writeFileSync(hostname, `${BUILD_HOSTNAME}\n`)
  writeFileSync(resolv, (await readIfExists('/etc/resolv.conf')) ?? '')
  const spec = buildSpec({
    args: req.args, env, cwd, user, hostname: BUILD_HOSTNAME, rootPath: root, network: req.network,
    hostsPath: hosts, hostnamePath: hostname, resolvConfPath: resolv, cgroupsPath: `/strata/${req.id}`, openStdin: false,
  }) as { mounts: { destination: string; type?: string; source?: string; options?: string[] }[] }
  // As BuildKit mounts them: hosts and resolv.conf read-only (hostname stays writable, and
  // still never lands in the layer).
  for (const m of spec.mounts) if (m.destination === '/etc/hosts' || m.destination === '/etc/resolv.conf') m.options = [...(m.options ?? []), 'ro']
  if (req.script) {
    const pipes = path.join(space.dir, 'pipes')
    mkdirSync(pipes, { mode: 0o755 })
    writeFileSync(path.join(pipes, req.script.name), req.script.content, { mode: 0o755 })
    spec.mounts.push({ destination: '/dev/pipes', type: 'bind', source: pipes, options: ['rbind', 'ro'] })
  }
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec))
  return { start: (io) => startRun(ctx, bundle, req.id, io) }
}

/** What `native.runProcess` reports (crates/strata-napi/src/process.rs). */
const RUN_STDOUT = 1
const RUN_STDERR = 2
const RUN_ENDED = 3

async function startRun(ctx: StoreContext, bundle: string, id: string, req: RunIo): Promise<number> {
  const runtime = runtimeFor(ctx)
  const log = path.join(bundle, 'runtime.log')
  // The runtime's own failure line is not the command's output.
  const ownLine = `${path.basename(runtime.binary)} run failed: `
  // Killed until it is gone: an abort may come before the runtime has created the container.
  let killer: NodeJS.Timeout | undefined
  const onAbort = (): void => {
    const kill = (): void => { void runtime.kill(id, 'SIGKILL', true).catch(() => undefined) }
    kill()
    killer = setInterval(kill, 100)
  }
  if (req.signal?.aborted) onAbort()
  else req.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    // Started natively, off this thread (no fork of this process, no child_process machinery);
    // its output comes back in order, its end after all of it.
    const code = await new Promise<number>((resolve, reject) => {
      let thrown: { error: unknown } | undefined
      native.runProcess(runtime.binary, ['--root', runtime.stateRoot, '--log', log, '--log-format', 'json', 'run', '--bundle', bundle, id], (kind, status, chunk, err) => {
        if (kind === RUN_ENDED) {
          if (thrown) reject(thrown.error)
          else resolve(status)
        } else if (kind === RUN_STDOUT || kind === RUN_STDERR) {
          if (thrown || !chunk || (kind === RUN_STDERR && chunk.toString('utf8').startsWith(ownLine))) return
          try {
            req.onOutput(kind === RUN_STDOUT ? 'stdout' : 'stderr', chunk)
          } catch (e) {
            // The runtime runs on to its end (and is reaped); then this is the step's failure.
            thrown = { error: e }
          }
        } else {
          reject(new StrataError('RuntimeFailed', `cannot run ${runtime.binary}: ${err?.message ?? 'unknown error'}`, { cause: err }))
        }
      })
    })
    if (req.signal?.aborted) throw new StrataError('Aborted', 'build aborted')
    if (code !== 0) {
      // The process never ran (no such executable...): the runtime says why.
      const rlog = (await readIfExists(log)) ?? ''
      const errs = rlog.split('\n').filter((l) => /"level":"(error|fatal)"/.test(l))
      if (errs.length > 0) req.onOutput('stderr', Buffer.from(`${runtimeMessage(errs.join('\n'))}\n`))
    }
    return code
  } finally {
    clearInterval(killer)
    req.signal?.removeEventListener('abort', onAbort)
    // `runc run` removes its container when the process ends; only a runtime that was itself
    // killed (an abort) or failed half-way leaves state behind to delete (a process spawn saved
    // per RUN step otherwise).
    if (await exists(path.join(runtime.stateRoot, id))) await runtime.delete(id, true).catch(() => undefined)
  }
}
