/**
 * The `strata` CLI: a thin layer over the `Store` API mirroring `docker`'s image and container
 * commands, flags and output. Global flags: `--root DIR` (or `$STRATA_ROOT`; default
 * /var/lib/strata), `--version`, `--help`.
 *
 * This module stays small on purpose: the commands live in ./commands.ts, a table whose
 * entries load their modules on first use, and the store (with the native addon) is loaded
 * only once a command that needs it runs. The CLI's read-only bundle starts at ./read-main.ts
 * (`readOnlyMain` below); the full bundle at `main`.
 */
import fs = require('node:fs')
import path = require('node:path')
import { toStrataError } from '../errors'
import { FlagError } from './args'
import { Io, processIo } from './io'
import { resolveCommand, usage } from './commands'

export function main(argv: string[], io: Io = processIo): Promise<number> {
  return run(argv, io, false) as Promise<number>
}

/**
 * `main` for the CLI's read-only bundle (bin/strata.js): runs `--version`, `--help`, a usage
 * error, or a `readOnly` command (./commands.ts), and resolves `undefined` without doing anything
 * for every other command line, which the full bundle then runs.
 */
export function readOnlyMain(argv: string[], io: Io = processIo): Promise<number | undefined> {
  return run(argv, io, true)
}

async function run(argv: string[], io: Io, readOnlyOnly: boolean): Promise<number | undefined> {
  let root: string | undefined
  let i = 0
  for (; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--root') root = argv[++i]
    else if (a.startsWith('--root=')) root = a.slice(7)
    else if (a === '-h' || a === '--help') { io.out(usage()); return 0 }
    else if (a === '-v' || a === '--version') { io.out(`strata version ${version()}\n`); return 0 }
    else break
  }
  const words = argv.slice(i)
  if (words.length === 0) { io.err(usage()); return 1 }
  const cmd = resolveCommand(words)
  if (readOnlyOnly && !cmd?.entry.readOnly) return undefined
  if (!cmd) {
    io.err(`strata: '${words[0]}${words[1] !== undefined && ['image', 'container', 'system', 'builder'].includes(words[0]) ? ` ${words[1]}` : ''}' is not a strata command.\nSee 'strata --help'\n`)
    return 1
  }
  const { name, entry, args } = cmd
  // run/create: flags after IMAGE belong to the container's command (`strata run bb ls --help`).
  const ownFlags = name === 'run' || name === 'create' ? args.slice(0, Math.max(0, args.findIndex((a) => !a.startsWith('-')))) : args
  if (ownFlags.includes('--help') || ownFlags.includes('-h')) { io.out(usage()); return 0 }
  try {
    if (entry.storeless) return await entry.load()(args, io, root !== undefined ? { root } : {})
    const handler = entry.load()
    // The store (and with it the native addon) loads only for a command that uses it. In place,
    // not with import(): see ./commands.ts.
    const { Store } = require('../store') as typeof import('../store')
    // A read-only command's store sections only read: they may run without the flock, checked
    // against the write generation (ts/internal/lock.ts), so the native addon need not load for
    // them, and the store opens without the passes that only writers need (Store.openReader).
    const opts = root ? { root } : {}
    const store = entry.readOnly ? await Store.openReader(opts, { containers: !entry.imagesOnly }) : await Store.open(opts)
    try {
      return await handler(store, args, io)
    } finally {
      await store.close()
    }
  } catch (e) {
    return report(e, io)
  }
}

/**
 * Prints a failure as `strata: <message>` and returns docker's exit status for it: 125 for a
 * command line the flag parser refuses, 1 for everything else (docker's for daemon errors and
 * for a wrong number of arguments). Only a bug (`Internal`: an error without a code of its own)
 * shows a stack trace.
 */
function report(err: unknown, io: Io): number {
  const e = toStrataError(err)
  if (e.code === 'Internal') {
    const cause = e.cause instanceof Error ? e.cause.stack ?? e.cause.message : String(e.cause)
    io.err(`strata: ${e.message}\n${cause}\n`)
    return 1
  }
  io.err(`strata: ${e.message}\n`)
  return e instanceof FlagError ? 125 : 1
}

/**
 * The CLI bundles (scripts/bundle-cli.js) have the package's version written in at build time,
 * so `--version` reads no file; tsc's output and the sources read it from package.json.
 */
declare const STRATA_BUNDLED_VERSION: string | undefined

/** The package's version (package.json sits above dist/ts/cli/ and above ts/cli/). */
function version(): string {
  if (typeof STRATA_BUNDLED_VERSION === 'string') return STRATA_BUNDLED_VERSION
  for (const up of ['../..', '../../..']) {
    try {
      return (JSON.parse(fs.readFileSync(path.resolve(__dirname, up, 'package.json'), 'utf8')) as { version: string }).version
    } catch { /* not at this level */ }
  }
  return 'unknown'
}
