/**
 * `docker top`: the daemon runs the host's `ps` with the user's options (default `-ef`) plus
 * `-q <pids>` (retried without it for options `-q` cannot go with), and keeps the rows of the
 * container's processes — the runtime's list (`runc ps`) — with their thread rows (`-` PID) for
 * `m`. Rows are split on ASCII whitespace into as many fields as the header has; the last field
 * takes the rest (the command line). As moby's daemon/top_unix.go does.
 */
import { spawn } from 'node:child_process'
import { StrataError } from '../errors'
import type { Runtime } from './runtime'
import type { Container } from './container'

export interface TopResult {
  /** The header's column names (`UID`, `PID`, ..., `CMD`). */
  titles: string[]
  /** One row per process, as many cells as titles. */
  processes: string[][]
}

/** The daemon refuses `k=PID...` renames of the PID column other than `pid=`. */
export function validatePsArgs(psArgs: string): void {
  for (const m of psArgs.matchAll(/\s+([^\s]*)=\s*(PID[^\s]*)/g)) {
    if (m[1] !== 'pid') throw new StrataError('InvalidArgument', `specifying "${m[1]}=${m[2]}" is not allowed`)
  }
}

function fieldsAscii(s: string): string[] {
  return s.split(/[\t\n\f\r ]+/).filter(Boolean)
}

export function parsePsOutput(output: string, pids: ReadonlySet<number>): TopResult {
  const lines = output.split('\n')
  const titles = fieldsAscii(lines[0] ?? '')
  const pidIndex = titles.indexOf('PID')
  if (pidIndex < 0) throw new StrataError('RuntimeFailed', "Couldn't find PID field in ps output")
  const processes: string[][] = []
  const row = (fields: string[]) => [...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')]
  let inContainer = false
  for (const line of lines.slice(1)) {
    if (!line) continue
    const fields = fieldsAscii(line)
    if (fields[pidIndex] === '-') {
      if (inContainer) processes.push(row(fields))
      continue
    }
    const pid = Number(fields[pidIndex])
    if (!Number.isInteger(pid)) throw new StrataError('RuntimeFailed', `Unexpected pid '${fields[pidIndex]}'`)
    inContainer = pids.has(pid)
    if (inContainer) processes.push(row(fields))
  }
  return { titles, processes }
}

function ps(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ps', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', (e) => resolve({ code: -1, stdout: '', stderr: e.message }))
    child.on('close', (code) => resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }))
  })
}

export async function containerTop(c: Container, runtime: Runtime, psArgs: string[]): Promise<TopResult> {
  const joined = psArgs.length ? psArgs.join(' ') : '-ef'
  validatePsArgs(joined)
  const r = await c.info()
  if (!r.State.Running) throw new StrataError('NotRunning', `Container ${r.ID} is not running`)
  const list = await runtime.exec(['ps', '--format', 'json', c.id])
  if (list.code !== 0) throw new StrataError('NotRunning', `Container ${r.ID} is not running`)
  const pids = JSON.parse(list.stdout || '[]') as number[] | null
  const set = new Set(pids ?? [])
  const args = joined.split(' ')
  let res = await ps([...args, `-q${[...set].join(',')}`])
  if (res.code !== 0) {
    res = await ps(args)
    if (res.code !== 0) {
      const first = res.stderr.split('\n')[0]
      throw new StrataError('RuntimeFailed', `ps: ${first || `exit status ${res.code}`}`)
    }
  }
  return parsePsOutput(res.stdout, set)
}
