/**
 * `strata build` and `strata builder prune`, as `docker build` (BuildKit) and
 * `docker builder prune` behave: progress on stderr (plain lines off a terminal or with
 * `--progress=plain`, a live view on one), `-q` prints only the image ID, `--iidfile`
 * writes it; a failed step prints BuildKit's error block with the Dockerfile excerpt.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { Readable } from 'node:stream'
// Loaded when used (a context tar on stdin, --iidfile): a cached build never needs them.
import { fsp, os, streamPromises } from '../internal/lazy'
import { Store } from '../store'
import { StrataError } from '../errors'
import { native } from '../internal/native'
import { call } from '../errors'
import { parseArgs, flag, value, values, FlagSpec } from './args'
import { Io } from './io'
import { BuildOptions } from '../build/builder'
import { BuildError } from '../build/errors'
import { BuildEvent, PlainPrinter, TtyPrinter } from '../build/progress'
import { goUnitsHumanSize } from '../format/units'
import { parseCacheSpec } from '../build/cache-io'
import { parsePruneFilters } from '../build/prune'

const BUILD_FLAGS: FlagSpec[] = [
  { name: 'tag', short: 't', value: true, multi: true }, { name: 'file', short: 'f', value: true },
  { name: 'build-arg', value: true, multi: true }, { name: 'target', value: true }, { name: 'no-cache' },
  { name: 'no-cache-filter', value: true, multi: true }, { name: 'network', value: true }, { name: 'label', value: true, multi: true },
  { name: 'quiet', short: 'q' }, { name: 'iidfile', value: true }, { name: 'progress', value: true },
  { name: 'cache-from', value: true, multi: true }, { name: 'cache-to', value: true, multi: true },
]

function keyValues(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const kv of list) {
    const eq = kv.indexOf('=')
    if (eq < 0) {
      // `--build-arg K` takes K from the environment, as docker does.
      if (what === 'build-arg' && process.env[kv] !== undefined) out[kv] = process.env[kv]!
      else if (what !== 'build-arg') out[kv] = ''
      continue
    }
    out[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  return out
}

/** `--keep-storage` sizes: go-units RAMInBytes (`512mb`, `10GB`, `1.5g`; binary multiples). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(s.trim())
  if (!m) throw new StrataError('InvalidArgument', `invalid size: '${s}'`)
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[m[2].toLowerCase() as '' | 'k']
  return Math.floor(Number(m[1]) * mult)
}

/**
 * A context tar on stdin (plain, gzip, bzip2 or xz), unpacked into a temp dir. It is an archive,
 * not an image layer: like both of the engine's builders, a path named twice takes its later
 * entry (an image layer that does so is refused), so it goes through ADD's unpacker.
 */
async function contextFromStdin(stdin: Readable): Promise<{ dir: string; dispose: () => Promise<void> }> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-build-ctx-'))
  try {
    const tar = path.join(base, 'context.tar')
    await streamPromises.pipeline(stdin, fs.createWriteStream(tar))
    const dir = path.join(base, 'ctx')
    await call(() => native.unpackArchive(tar, dir, path.join(base, 'ts.json.gz')))
    return { dir, dispose: () => fsp.rm(base, { recursive: true, force: true }) }
  } catch (e) {
    await fsp.rm(base, { recursive: true, force: true })
    throw e
  }
}

async function readAll(stdin: Readable): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of stdin) chunks.push(Buffer.from(c as Buffer))
  return Buffer.concat(chunks).toString('utf8')
}

/** BuildKit's failure block: the step, its last log lines, the Dockerfile around the line. */
function errorBlock(e: BuildError, logs: string[], dockerfile: { name: string; text: string } | undefined): string {
  let out = ''
  if (e.step) {
    out += `------\n > ${e.step}:\n${logs.slice(-10).map((l) => `${l}\n`).join('')}------\n`
  }
  if (dockerfile && e.line) {
    const lines = dockerfile.text.split('\n')
    const from = Math.max(1, e.line - 4)
    const to = Math.min(lines.length, e.line + 2)
    out += `${dockerfile.name}:${e.line}\n--------------------\n`
    for (let i = from; i <= to; i++) {
      if (i === lines.length && lines[i - 1] === '') break
      out += `${String(i).padStart(4)} | ${i === e.line ? '>>> ' : ''}${lines[i - 1]}\n`
    }
    out += '--------------------\n'
  }
  return out
}

/** `strata build`. `stdin` is process.stdin unless given, touched only for `-` (reading it sets up the stream machinery). */
export async function buildCommand(store: Store, argv: string[], io: Io, stdin?: Readable): Promise<number> {
  const p = parseArgs(argv, BUILD_FLAGS)
  if (p.args.length !== 1) {
    io.err('"strata build" requires exactly 1 argument.\nUsage:  strata build [OPTIONS] PATH | -\n')
    return 1
  }
  const progressMode = value(p, 'progress') ?? 'auto'
  if (!['auto', 'plain', 'tty'].includes(progressMode)) throw new StrataError('InvalidArgument', `invalid progress mode ${progressMode}`)
  const quiet = flag(p, 'quiet')
  let ctxDir = p.args[0]
  let disposeCtx: (() => Promise<void>) | undefined
  let dockerfileText: string | undefined
  const file = value(p, 'file')
  if (ctxDir === '-') {
    if (file === '-') throw new StrataError('InvalidArgument', 'invalid argument: can\'t use stdin for both build context and dockerfile')
    const c = await contextFromStdin(stdin ?? process.stdin)
    ctxDir = c.dir
    disposeCtx = c.dispose
  } else if (file === '-') {
    dockerfileText = await readAll(stdin ?? process.stdin)
  }
  const dfName = file && file !== '-' ? path.basename(file) : 'Dockerfile'
  const dfText = dockerfileText ?? (() => {
    try { return fs.readFileSync(file && file !== '-' ? path.resolve(file) : path.join(ctxDir, dfName), 'utf8') } catch { return undefined }
  })()
  const useTty = !quiet && (progressMode === 'tty' || (progressMode === 'auto' && io.isTty))
  const plain = new PlainPrinter((s) => { if (!quiet && !useTty) io.err(s) })
  const tty = useTty ? new TtyPrinter((s) => io.err(s), process.stderr.columns || 100) : undefined
  let failedVertex = -1
  const opts: BuildOptions = {
    context: ctxDir,
    // -f is relative to the working directory, as docker's CLI resolves it.
    ...(dockerfileText !== undefined ? { dockerfileText } : file ? { dockerfile: path.resolve(file) } : {}),
    tags: values(p, 'tag'),
    buildArgs: keyValues(values(p, 'build-arg'), 'build-arg'),
    noCache: flag(p, 'no-cache'),
    noCacheFilter: values(p, 'no-cache-filter'),
    labels: keyValues(values(p, 'label'), 'label'),
    onProgress: (e: BuildEvent) => {
      if (e.type === 'error') failedVertex = e.id
      plain.handle(e)
      tty?.handle(e)
    },
  }
  const cacheFrom = values(p, 'cache-from').map((s) => parseCacheSpec(s, 'from'))
  const cacheTo = values(p, 'cache-to').map((s) => parseCacheSpec(s, 'to'))
  if (cacheFrom.length) opts.cacheFrom = cacheFrom
  if (cacheTo.length) opts.cacheTo = cacheTo
  const target = value(p, 'target')
  if (target) opts.target = target
  const network = value(p, 'network')
  if (network !== undefined) {
    if (network !== 'host' && network !== 'none' && network !== 'default') throw new StrataError('InvalidArgument', `network mode "${network}" not supported (host, none)`)
    opts.network = network === 'none' ? 'none' : 'host'
  }
  try {
    const r = await store.build(opts)
    plain.end()
    tty?.end()
    const iid = value(p, 'iidfile')
    if (iid) await fsp.writeFile(iid, r.imageId)
    if (quiet) io.out(`${r.imageId}\n`)
    return 0
  } catch (e) {
    plain.end()
    tty?.end()
    if (e instanceof BuildError) {
      const logs = failedVertex > 0 ? plain.logsOf(failedVertex) : []
      io.err(errorBlock(e, logs, dfText !== undefined ? { name: dfName === '-' ? 'Dockerfile' : dfName, text: dfText } : undefined))
      io.err(`ERROR: failed to solve: ${e.message}\n`)
      return 1
    }
    throw e
  } finally {
    await disposeCtx?.()
  }
}

/** `strata builder prune` (argv after the two words). */
export async function builderPruneCommand(store: Store, argv: string[], io: Io, stdin: Readable = process.stdin): Promise<number> {
  const p = parseArgs(argv, [{ name: 'all', short: 'a' }, { name: 'force', short: 'f' }, { name: 'keep-storage', value: true }, { name: 'filter', value: true, multi: true }])
  // A filter that is not `name=value` fails before the question (docker's CLI parses the
  // flag); the engine judges the rest, after it.
  const filter = values(p, 'filter')
  for (const f of filter) if (!f.includes('=')) parsePruneFilters([f])
  if (!flag(p, 'force')) {
    io.out(`WARNING! This will remove all ${flag(p, 'all') ? '' : 'dangling '}build cache. Are you sure you want to continue? [y/N] `)
    const answer = await new Promise<string>((resolve) => {
      let buf = ''
      const onData = (d: Buffer): void => {
        buf += d.toString('utf8')
        if (buf.includes('\n')) done()
      }
      const done = (): void => {
        stdin.off('data', onData).off('end', done)
        stdin.pause()
        resolve(buf.split('\n')[0].trim())
      }
      stdin.on('data', onData).on('end', done)
      stdin.resume()
    })
    if (!/^y(es)?$/i.test(answer)) return 0
  }
  const keep = value(p, 'keep-storage')
  const r = await store.pruneBuildCache({ all: flag(p, 'all'), filter, ...(keep !== undefined ? { keepStorage: parseSize(keep) } : {}) })
  if (r.deleted.length > 0) io.out(`Deleted build cache objects:\n${r.deleted.map((k) => `${k.slice(7, 32)}\n`).join('')}\n`)
  io.out(`Total reclaimed space: ${goUnitsHumanSize(r.reclaimed)}\n`)
  return 0
}
