/**
 * Commands on a pseudo-terminal (`pty-run.py`, Python's pty module), and a tiny terminal that
 * replays what they drew: enough of VT100 for Docker's progress view (CR, LF, cursor up/down,
 * erase line), so a test can compare final screens and see every line ever drawn.
 */
import * as path from 'node:path'
import { spawn } from 'node:child_process'

const HELPER = path.join(__dirname, 'pty-run.py')

export interface PtyResult {
  code: number
  /** The bytes drawn, as sent (the terminal turned each LF into CR LF). */
  raw: string
}

/** Runs `argv` on a `cols` × `rows` terminal; killed after `timeoutMs` (code 124). */
export function runInPty(argv: string[], opts: { cols?: number; rows?: number; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PtyResult> {
  const { cols = 160, rows = 50, timeoutMs = 120_000 } = opts
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [HELPER, String(cols), String(rows), String(timeoutMs / 1000), '--', ...argv], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'inherit'] })
    const out: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, raw: Buffer.concat(out).toString() }))
  })
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
