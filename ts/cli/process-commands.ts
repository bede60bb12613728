/** CLI: `pause`, `unpause`, `top CONTAINER [ps OPTIONS]`, `rename OLD NEW` — docker's output and errors. */
import type { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs } from './args'
import { Io } from './io'
import { tabwrite } from '../format/table'

function usage(cmd: string, n: number, exact: boolean, line: string): StrataError {
  return new StrataError('InvalidArgument', `"${cmd}" requires ${exact ? 'exactly' : 'at least'} ${n} argument${n > 1 ? 's' : ''}.\nSee 'strata ${cmd} --help'.\n\nUsage:  strata ${line}`)
}

/** Runs `fn` per container; docker prints each failure and exits 1 if any failed. */
async function each(names: string[], io: Io, fn: (name: string) => Promise<void>): Promise<number> {
  let rc = 0
  for (const n of names) {
    try {
      await fn(n)
      io.out(`${n}\n`)
    } catch (e) {
      if (!(e instanceof StrataError)) throw e
      io.err(`Error response from daemon: ${e.message}\n`)
      rc = 1
    }
  }
  return rc
}

export async function pauseCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  if (p.args.length < 1) throw usage('pause', 1, false, 'pause CONTAINER [CONTAINER...]')
  return each(p.args, io, async (n) => (await store.containers.get(n)).pause())
}

export async function unpauseCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  if (p.args.length < 1) throw usage('unpause', 1, false, 'unpause CONTAINER [CONTAINER...]')
  return each(p.args, io, async (n) => (await store.containers.get(n)).unpause())
}

/** docker top's table: Go's tabwriter with a minimum width of 20. */
const TOP_TABWRITER = { minwidth: 20, tabwidth: 1, padding: 3, padchar: ' ' }

export async function topCommand(store: Store, argv: string[], io: Io): Promise<number> {
  // Everything after the container is ps's (`top c -o pid,comm`, `top c aux`).
  const [name, ...psArgs] = argv
  if (name === undefined || name.startsWith('-')) throw usage('top', 1, false, 'top CONTAINER [ps OPTIONS]')
  try {
    const res = await (await store.containers.get(name)).top(psArgs)
    io.out(tabwrite([res.titles, ...res.processes].map((r) => `${r.join('\t')}\n`).join(''), TOP_TABWRITER))
    return 0
  } catch (e) {
    if (!(e instanceof StrataError)) throw e
    io.err(`Error response from daemon: ${e.message}\n`)
    return 1
  }
}

export async function renameCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  if (p.args.length !== 2) throw usage('rename', 2, true, 'rename CONTAINER NEW_NAME')
  const [oldName, newName] = p.args
  if (oldName.trim() === '' || newName.trim() === '') {
    io.err('Error: Neither old nor new names may be empty\n')
    return 1
  }
  try {
    await store.containers.rename(oldName, newName)
    return 0
  } catch (e) {
    if (!(e instanceof StrataError)) throw e
    io.err(`Error response from daemon: ${e.message}\nError: failed to rename container named ${oldName}\n`)
    return 1
  }
}
