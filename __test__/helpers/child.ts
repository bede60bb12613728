/**
 * Runs a scenario of `./scenarios.ts` in a child Node process with Node's default libuv pool
 * (UV_THREADPOOL_SIZE removed from its environment, so the 4-thread default is real whatever the
 * test runner was started with) and kills it at a deadline: a hang fails the test, it does not
 * stall the suite.
 */
import * as path from 'node:path'
import { spawn } from 'node:child_process'

const SCENARIOS = path.join(__dirname, 'scenarios.ts')

export interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** The last stdout line parsed as JSON (what the scenario reports). */
  report: any // eslint-disable-line @typescript-eslint/no-explicit-any
  ms: number
}

export interface RunningChild {
  /** Resolves when the child exits; rejects if it had to be killed at the deadline. */
  done: Promise<ChildResult>
  kill(): void
}

/** Starts `scenario` with `args` (and `nodeArgs` for node); `deadlineMs` bounds its whole life. */
export function startScenario(scenario: string, args: unknown, deadlineMs: number, nodeArgs: string[] = []): RunningChild {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.UV_THREADPOOL_SIZE
  const t0 = performance.now()
  const child = spawn(process.execPath, [...nodeArgs, '--require', require.resolve('tsx/cjs'), SCENARIOS, scenario, JSON.stringify(args)], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  let killed = false
  const timer = setTimeout(() => {
    killed = true
    child.kill('SIGKILL')
  }, deadlineMs)
  const done = new Promise<ChildResult>((resolve, reject) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const ms = performance.now() - t0
      if (killed) {
        reject(new Error(`scenario ${scenario} hung: killed after ${Math.round(ms)} ms\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`))
        return
      }
      const last = stdout.trim().split('\n').pop() ?? ''
      let report: unknown
      try {
        report = JSON.parse(last)
      } catch {
        report = undefined
      }
      resolve({ code, signal, stdout, stderr, report, ms })
    })
  })
  return { done, kill: () => child.kill('SIGKILL') }
}

/** Runs a scenario to its end and returns what it reported; fails on a non-zero exit. */
export async function runScenario(scenario: string, args: unknown, deadlineMs: number, nodeArgs: string[] = []): Promise<ChildResult> {
  const r = await startScenario(scenario, args, deadlineMs, nodeArgs).done
  if (r.code !== 0) throw new Error(`scenario ${scenario} exited ${r.code ?? r.signal}\nstdout: ${r.stdout.slice(-3000)}\nstderr: ${r.stderr.slice(-3000)}`)
  return r
}

/** Rejects if `p` has not settled within `ms` (an in-process deadline for a test step). */
export async function within<T>(ms: number, p: Promise<T>, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, deadline])
  } finally {
    clearTimeout(timer)
  }
}
