/**
 * The `strata` CLI: a thin layer over the `Store` API mirroring `docker`'s image and container
 * commands, flags and output. Global flag: `--root DIR` (or `$STRATA_ROOT`; default /var/lib/strata).
 */
import { Store } from '../store'
import { StrataError } from '../errors'
import { Io, processIo } from './io'
import { imagesCommand, tagCommand, rmiCommand, historyCommand, inspectCommand } from './image-commands'
import { loadCommand, saveCommand, importCommand } from './archive-commands'
import { pullCommand } from './pull-command'
import { extraCommands, inspectContainer } from './registry'
import { registerContainerCommands } from './container-commands'

registerContainerCommands()

const USAGE = `Usage:  strata [--root DIR] COMMAND

Docker's image and container storage model: overlay2 layers, kernel overlayfs.

Image commands:
  images      List images (image ls)
  load        Load an image from a tar archive or STDIN
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  import      Import the contents from a tarball to create a filesystem image
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  rmi         Remove one or more images (image rm)
  inspect     Return low-level information on images and containers
  history     Show the history of an image
  pull        Download an image from a registry
`

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  let root: string | undefined
  let i = 0
  for (; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--root') root = argv[++i]
    else if (a.startsWith('--root=')) root = a.slice(7)
    else if (a === '-h' || a === '--help') { io.out(USAGE + extraCommands.usage); return 0 }
    else break
  }
  let [cmd, ...rest] = argv.slice(i)
  if (!cmd) { io.err(USAGE + extraCommands.usage); return 1 }
  // `image ls|rm|inspect|history|tag|load|save|import` aliases.
  if (cmd === 'image' && rest.length > 0) {
    const sub = rest.shift()!
    cmd = ({ ls: 'images', list: 'images', rm: 'rmi', remove: 'rmi', inspect: 'image-inspect' } as Record<string, string>)[sub] ?? sub
  }
  // run/create: flags after IMAGE belong to the container's command (`strata run bb ls --help`).
  const ownFlags = cmd === 'run' || cmd === 'create' ? rest.slice(0, Math.max(0, rest.findIndex((a) => !a.startsWith('-')))) : rest
  if (ownFlags.includes('--help') || ownFlags.includes('-h')) { io.out(USAGE + extraCommands.usage); return 0 }
  try {
    const store = await Store.open(root ? { root } : {})
    try {
      switch (cmd) {
        case 'images': return await imagesCommand(store, rest, io)
        case 'tag': return await tagCommand(store, rest)
        case 'rmi': return await rmiCommand(store, rest, io)
        case 'history': return await historyCommand(store, rest, io)
        case 'inspect': return await inspectCommand(store, rest, io, (n) => inspectContainer(store, n))
        case 'image-inspect': return await inspectCommand(store, rest, io, undefined, 'image')
        case 'load': return await loadCommand(store, rest, io, process.stdin)
        case 'save': return await saveCommand(store, rest, io, process.stdout)
        case 'import': return await importCommand(store, rest, io, process.stdin)
        case 'pull': return await pullCommand(store, rest, io)
        default: {
          const handler = extraCommands.handlers[cmd]
          if (handler) return await handler(store, rest, io)
          io.err(`strata: '${cmd}' is not a strata command.\nSee 'strata --help'\n`)
          return 1
        }
      }
    } finally {
      await store.close()
    }
  } catch (e) {
    if (e instanceof StrataError) {
      io.err(`Error: ${e.message}\n`)
      return 1
    }
    throw e
  }
}
