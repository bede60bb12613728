/**
 * Commands on a real pseudo-terminal, through one driver (`pty-driver.py`, Python's pty and
 * termios): {@link driveInPty} types a script of keys, resizes and signals into it as a person
 * at a keyboard would; {@link runInPty} just runs a command on a terminal of a given size and
 * returns what it drew. {@link replay} is a tiny terminal that replays that output: enough of
 * VT100 for Docker's progress views (CR, LF, cursor up/down, erase line), so a test can compare
 * final screens and see every line ever drawn.
 */
import * as path from 'node:path'
import { execFile } from 'node:child_process'

const DRIVER = path.join(__dirname, 'pty-driver.py')

/** One step of a terminal script (see pty-driver.py). */
export interface PtyStep { expect?: string; send?: string; resize?: [number, number]; sleep?: number; signal?: string; timeout?: number }

export interface PtyDriven {
  /** Everything the command drew (the terminal turned each LF into CR LF). */
  output: string
  exitCode: number | null
  signal: number | null
  timedOut: boolean
  /** The index of the `expect` step that was never met, if any. */
  failedStep: number | null
  /** The terminal's modes ([iflag, oflag, cflag, lflag]) before the command and after it. */
  termiosBefore: number[]
  termiosAfter: number[] | null
}

/** Runs `argv` as the session leader of a fresh `rows` × `cols` terminal, playing `steps`; bounded by `timeoutS`. */
export function driveInPty(argv: string[], steps: PtyStep[], opts: { rows?: number; cols?: number; timeoutS?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PtyDriven> {
  const { rows = 24, cols = 80, timeoutS = 40 } = opts
  const script = JSON.stringify({ rows, cols, timeout: timeoutS, steps })
  return new Promise((resolve, reject) => {
    execFile('python3', [DRIVER, script, '--', ...argv], { timeout: (timeoutS + 20) * 1000, maxBuffer: 1 << 26, env: { ...process.env, ...opts.env } }, (err, stdout, stderr) => {
      if (err && !stdout) return reject(new Error(`${err.message}\n${stderr}`))
      try {
        resolve(JSON.parse(stdout) as PtyDriven)
      } catch (e) {
        reject(new Error(`pty-driver.py: ${(e as Error).message}\n${stdout}\n${stderr}`))
      }
    })
  })
}

export interface PtyResult {
  /** The exit code (128+N for signal N; 124 when it ran past the time limit and was killed). */
  code: number
  /** The bytes drawn, as sent (the terminal turned each LF into CR LF). */
  raw: string
}

/** Runs `argv` on a `cols` × `rows` terminal; killed after `timeoutMs` (code 124). */
export async function runInPty(argv: string[], opts: { cols?: number; rows?: number; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PtyResult> {
  const { cols = 160, rows = 50, timeoutMs = 120_000 } = opts
  const r = await driveInPty(argv, [], { rows, cols, timeoutS: timeoutMs / 1000, ...(opts.env ? { env: opts.env } : {}) })
  const code = r.timedOut ? 124 : r.exitCode ?? 128 + (r.signal ?? 0)
  return { code, raw: r.output }
}

export interface Screen {
  /** The lines left on the screen at the end (trailing blank lines dropped). */
  final: string[]
  /** Every text a line held just before it was changed or erased, and at the end, in order. */
  drawn: string[]
}

/** Replays terminal output: printable text, CR, LF, ESC[nA / ESC[nB (cursor up/down), ESC[2K / ESC[K. */
export function replay(raw: string): Screen {
  const lines: string[] = ['']
  const drawn: string[] = []
  let row = 0
  let col = 0
  const keep = (): void => { if (lines[row].trim() !== '') drawn.push(lines[row]) }
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]
    if (c === '\x1b') {
      const m = /^\x1b\[(\d*)([A-Za-z])/.exec(raw.slice(i, i + 16))
      if (!m) continue
      i += m[0].length - 1
      const n = m[1] === '' ? 1 : Math.max(1, Number(m[1]))
      if (m[2] === 'A') row = Math.max(0, row - n)
      else if (m[2] === 'B') row += n
      else if (m[2] === 'K') { keep(); lines[row] = m[1] === '2' ? '' : lines[row].slice(0, col) }
      while (lines.length <= row) lines.push('')
      continue
    }
    if (c === '\r') { col = 0; continue }
    if (c === '\n') {
      row++
      while (lines.length <= row) lines.push('')
      continue
    }
    const line = lines[row].padEnd(col)
    lines[row] = line.slice(0, col) + c + line.slice(col + 1)
    col++
  }
  for (row = 0; row < lines.length; row++) keep()
  while (lines.length && lines[lines.length - 1].trim() === '') lines.pop()
  return { final: lines.map((l) => l.trimEnd()), drawn: drawn.map((l) => l.trimEnd()) }
}
