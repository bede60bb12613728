/**
 * The OCI runtime (runc by default; `$STRATA_RUNTIME` or the container's HostConfig.Runtime),
 * driven as a child process — never blocking the event loop. State lives under `<root>/runc`.
 */
import { childProcess } from '../internal/lazy'
import { existsSync } from 'node:fs'
import path = require('node:path')
import { StrataError } from '../errors'

/**
 * The runtime for containers created without one (and for build steps): `$STRATA_RUNTIME` as it
 * is at each use, else `runc` — not as it was when this module loaded.
 */
export function defaultRuntime(): string {
  return process.env.STRATA_RUNTIME || 'runc'
}

/** runc's words when the cgroup v1 freezer stayed FREEZING (it thaws the cgroup back first). */
const FREEZE_TIMED_OUT = /unable to freeze/
const PAUSE_ATTEMPTS = 5
const PAUSE_BACKOFF_MS = 50

export interface RuntimeResult {
  code: number
  stdout: string
  stderr: string
}

export interface RuntimeState {
  id: string
  pid: number
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped'
}

export class Runtime {
  constructor(readonly binary: string, readonly stateRoot: string) {}

  /** `runc --root <state> ARGS...`, collected. */
  exec(args: string[]): Promise<RuntimeResult> {
    return new Promise((resolve, reject) => {
      const child = childProcess.spawn(this.binary, ['--root', this.stateRoot, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      const out: Buffer[] = []
      const err: Buffer[] = []
      child.stdout.on('data', (d: Buffer) => out.push(d))
      child.stderr.on('data', (d: Buffer) => err.push(d))
      child.on('error', (e) => reject(new StrataError('RuntimeFailed', `cannot run ${this.binary}: ${e.message}`, { cause: e })))
      child.on('close', (code) => resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }))
    })
  }

  async must(args: string[], what: string): Promise<RuntimeResult> {
    const r = await this.exec(args)
    if (r.code !== 0) throw this.#failed(what, args[0], r)
    return r
  }

  /** `RuntimeFailed` for a failed `runtime VERB` that `what` ran, in the runtime's own words. */
  #failed(what: string, verb: string, r: RuntimeResult, note = ''): StrataError {
    return new StrataError('RuntimeFailed', `${what}: ${this.binary} ${verb}: ${runtimeMessage(r.stderr) || `exit ${r.code}`}${note}`)
  }

  /** The runtime's view of a container, or undefined when it knows none. */
  async state(id: string): Promise<RuntimeState | undefined> {
    const r = await this.exec(['state', id])
    if (r.code !== 0) return undefined
    try {
      return JSON.parse(r.stdout) as RuntimeState
    } catch {
      return undefined
    }
  }

  kill(id: string, signal: string, all = false): Promise<RuntimeResult> {
    return this.exec(['kill', ...(all ? ['--all'] : []), id, signal])
  }

  /**
   * `runc pause`, tried again when the freezer could not freeze in time. On cgroup v1 the kernel
   * cannot reliably freeze a cgroup while its processes fork or sit in uninterruptible sleep
   * (slow disk I/O under load); runc tries for ~0.2 s, thaws the cgroup back and says `unable to
   * freeze`, leaving the container running. A later attempt usually succeeds, so strata makes
   * up to PAUSE_ATTEMPTS of them, PAUSE_BACKOFF_MS apart, before giving the error to the caller.
   */
  async pause(id: string): Promise<RuntimeResult> {
    for (let attempt = 1; ; attempt++) {
      const r = await this.exec(['pause', id])
      if (r.code === 0) return r
      if (attempt >= PAUSE_ATTEMPTS || !FREEZE_TIMED_OUT.test(runtimeMessage(r.stderr))) {
        throw this.#failed('pause', 'pause', r, attempt > 1 ? ` (after ${attempt} attempts)` : '')
      }
      await new Promise((resolve) => setTimeout(resolve, PAUSE_BACKOFF_MS * attempt))
    }
  }

  resume(id: string): Promise<RuntimeResult> { return this.must(['resume', id], 'resume') }
  /**
   * `runc delete`. runc and crun keep one dir per container under `--root`; when there is none
   * the runtime knows no such container and the exec (~8 ms) is skipped: create/run/rm call
   * this defensively several times per container.
   */
  async delete(id: string, force = false): Promise<RuntimeResult> {
    if (!existsSync(path.join(this.stateRoot, id))) return { code: 0, stdout: '', stderr: '' }
    return this.exec(['delete', ...(force ? ['--force'] : []), id])
  }
}

/** runc logs JSON lines or `time=... level=error msg="..."`; the message is what users need. */
export function runtimeMessage(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean)
  const msgs = lines.map((l) => {
    try {
      const o = JSON.parse(l) as { msg?: string }
      if (o.msg) return o.msg
    } catch { /* not JSON */ }
    const m = /msg="((?:[^"\\]|\\.)*)"/.exec(l)
    return m ? m[1].replace(/\\"/g, '"') : l
  })
  return msgs.join('; ')
}

/** Signal names and numbers (`SIGTERM`, `TERM`, `15`) → the name runc accepts. */
export function normalizeSignal(sig: string | number | undefined, fallback = 'SIGTERM'): string {
  if (sig === undefined || sig === '') return fallback
  const s = String(sig).toUpperCase()
  if (/^\d+$/.test(s)) return s
  return s.startsWith('SIG') ? s : `SIG${s}`
}
