/** Test helpers: temporary store roots, full tree snapshots (with xattrs), running the CLI. */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as os from 'node:os'
import { createHash } from 'node:crypto'
import { execFileSync, spawn } from 'node:child_process'
import type { ExecutionContext } from 'ava'

export const REPO = path.resolve(__dirname, '..', '..')
export const CLI = path.join(REPO, 'bin', 'strata.js')

/** A fresh directory under /var/tmp (a real ext4/xfs filesystem, not tmpfs), removed after the test. */
export function tmpDir(t: ExecutionContext, prefix = 'strata-test-'): string {
  const base = fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir()
  const dir = fs.mkdtempSync(path.join(base, prefix))
  t.teardown(() => {
    try {
      execFileSync('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l`], { stdio: 'ignore' })
    } catch { /* nothing mounted */ }
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

export interface Node {
  type: string
  mode: number
  uid: number
  gid: number
  size?: number
  sha?: string
  link?: string
  rdev?: number
  mtime?: number
  xattrs?: Record<string, string>
}

/** The kind of a node, as snapshots name it. */
export function typeOf(st: fs.Stats | fs.BigIntStats): string {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isCharacterDevice()) return 'char'
  if (st.isBlockDevice()) return 'block'
  if (st.isFIFO()) return 'fifo'
  return 'socket'
}

/** All xattrs under `dir`, by path relative to it (names as Buffers decoded latin1 for non-UTF-8 safety). */
export function xattrsUnder(dir: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>()
  let text = ''
  try {
    text = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', dir], { encoding: 'latin1', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] })
  } catch (e) {
    text = ((e as { stdout?: string }).stdout) ?? ''
  }
  let cur = ''
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = path.relative(dir, line.slice(8).replace(/\\(\d{3})/g, (_m, o) => String.fromCharCode(parseInt(o, 8))))
      continue
    }
    const eq = line.indexOf('=')
    if (!cur && cur !== '' || eq < 0) continue
    ;(out.get(cur) ?? out.set(cur, {}).get(cur)!)[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return out
}

/**
 * Every entry under `dir` (relative paths, latin1 so non-UTF-8 names survive), with content hashes
 * and xattrs; but a store's write generation (`lock.gen` at the top, ts/internal/lock.ts), which counts
 * the writers that held the lock, failed ones too, and is no part of what the store holds.
 */
export function snapshot(dir: string, opts: { mtimes?: boolean; xattrs?: boolean } = {}): Record<string, Node> {
  const out: Record<string, Node> = {}
  const xa = opts.xattrs === false ? new Map() : xattrsUnder(dir)
  const walk = (rel: Buffer) => {
    const abs = Buffer.concat([Buffer.from(dir + '/'), rel])
    for (const name of fs.readdirSync(abs, { encoding: 'buffer' })) {
      if (!rel.length && name.toString('latin1') === 'lock.gen') continue
      const r = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name
      const p = Buffer.concat([Buffer.from(dir + '/'), r])
      const st = fs.lstatSync(p)
      const key = r.toString('latin1')
      const n: Node = { type: typeOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }
      if (st.isFile()) {
        n.size = st.size
        n.sha = createHash('sha256').update(fs.readFileSync(p)).digest('hex')
      }
      if (st.isSymbolicLink()) n.link = fs.readlinkSync(p, { encoding: 'buffer' }).toString('latin1')
      if (st.isCharacterDevice() || st.isBlockDevice()) n.rdev = st.rdev
      if (opts.mtimes && !st.isDirectory()) n.mtime = Math.floor(st.mtimeMs / 1000)
      const x = xa.get(Buffer.from(key, 'latin1').toString('latin1'))
      if (x) n.xattrs = x
      out[key] = n
      if (st.isDirectory()) walk(r)
    }
  }
  walk(Buffer.alloc(0))
  return out
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built CLI (`bin/strata.js`) with `--root root`. */
export function cli(root: string, args: string[], input?: Buffer | string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '--root', root, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d) => out.push(d))
    child.stderr.on('data', (d) => err.push(d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }))
    child.stdin.on('error', () => undefined)
    child.stdin.end(input)
  })
}

/**
 * Starts the CLI in the background (for kill -9 tests). `closed` is created at spawn time, so a
 * process that finished before it was killed is still reaped (a 'close' listener attached after
 * the event would wait forever).
 */
export function spawnCli(root: string, args: string[]): { child: ReturnType<typeof spawn>; closed: Promise<unknown> } {
  const child = spawn(process.execPath, [CLI, '--root', root, ...args], { stdio: 'ignore' })
  const closed = new Promise((r) => child.on('close', r))
  return { child, closed }
}
