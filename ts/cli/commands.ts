/**
 * The CLI's command table: every `strata` command, what `--help` says of it, and how its handler
 * is loaded. main.ts looks a command up here and loads only that command's module (and the store
 * and native addon only when the command runs against a store), so `strata --version` or
 * `strata images` never compiles or evaluates the code of `run`, `load` or a registry client.
 *
 * Adding a command is one line here plus a module:
 *
 * ```ts
 * // ts/cli/frob-command.ts
 * export async function frobCommand(store: Store, argv: string[], io: Io): Promise<number> { ... }
 * // below, in COMMANDS:
 * frob: { section: 'Image', summary: 'Frob an image', load: () => (require('./frob-command') as typeof import('./frob-command')).frobCommand },
 * ```
 *
 * - The `require` must stay inside `load` (a top-level import would make every command pay for
 *   it). Not `import()`: run from the sources under tsx's CommonJS hook, `import()` goes to
 *   Node's ESM loader, which finds no `.ts` file (see ../lazy.ts). Import the store's types with
 *   `import type` or plain imports used only as types.
 * - A command that needs no store (`login`, `logout`, `search`) sets `storeless: true`; its
 *   handler is a `StorelessHandler` and the store is never opened.
 * - A command that only reads the store and prints (`images`, `ps`, `inspect`, `history`) sets
 *   `readOnly: true`: it runs from the CLI's small read-only bundle (bin/strata.js,
 *   scripts/bundle-cli.js), which holds only the modules such commands load. Its module must be
 *   one of the bundle's READ_ONLY_MODULES there; a command that writes must not set it. One that
 *   reads no container either (`images`, `history`) also sets `imagesOnly: true`: its store
 *   opens without looking for containers whose supervisor died (Store.openReader).
 * - Two-word commands (`system df`, `image prune`) are keys with a space; main.ts tries the two
 *   words first. Docker's other spellings of a command go in ALIASES (`image ls` → `images`),
 *   with any flags they imply (`container inspect` → `inspect --type container`).
 */
import type { Store } from '../store'
import type { Io } from './io'

/** A command run against the store; returns the process's exit code. */
export type Handler = (store: Store, argv: string[], io: Io) => Promise<number>
/** A command that never opens the store (registry logins, searches); `root` is `--root`'s value. */
export type StorelessHandler = (argv: string[], io: Io, opts: { root?: string }) => Promise<number>

/** The `--help` sections, in the order they are printed. */
export const SECTIONS = ['Image', 'Container', 'Registry', 'Build', 'System'] as const
export type Section = (typeof SECTIONS)[number]

interface EntryBase {
  section: Section
  /** One line for `--help`. */
  summary: string
}
export type CommandEntry =
  | (EntryBase & { storeless?: false; readOnly?: boolean; imagesOnly?: boolean; load: () => Handler })
  | (EntryBase & { storeless: true; readOnly?: false; load: () => StorelessHandler })

export const COMMANDS: Record<string, CommandEntry> = {
  images: { section: 'Image', readOnly: true, imagesOnly: true, summary: 'List images (image ls)', load: () => (require('./image-commands') as typeof import('./image-commands')).imagesCommand },
  load: { section: 'Image', summary: 'Load an image from a tar archive or STDIN', load: () => (require('./archive-commands') as typeof import('./archive-commands')).loadCommand },
  save: { section: 'Image', summary: 'Save one or more images to a tar archive (streamed to STDOUT by default)', load: () => (require('./archive-commands') as typeof import('./archive-commands')).saveCommand },
  import: { section: 'Image', summary: 'Import the contents from a tarball to create a filesystem image', load: () => (require('./archive-commands') as typeof import('./archive-commands')).importCommand },
  tag: { section: 'Image', summary: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE', load: () => (require('./image-commands') as typeof import('./image-commands')).tagCommand },
  rmi: { section: 'Image', summary: 'Remove one or more images (image rm)', load: () => (require('./image-commands') as typeof import('./image-commands')).rmiCommand },
  inspect: { section: 'Image', readOnly: true, summary: 'Return low-level information on images and containers', load: () => (require('./inspect-command') as typeof import('./inspect-command')).inspectCommand },
  history: { section: 'Image', readOnly: true, imagesOnly: true, summary: 'Show the history of an image', load: () => (require('./image-commands') as typeof import('./image-commands')).historyCommand },

  pull: { section: 'Registry', summary: 'Download an image from a registry', load: () => (require('./pull-command') as typeof import('./pull-command')).pullCommand },
  push: { section: 'Registry', summary: 'Push an image or a repository to a registry', load: () => (require('./push-command') as typeof import('./push-command')).pushCommand },
  login: { section: 'Registry', summary: 'Log in to a Docker registry', storeless: true, load: () => (require('./registry-commands') as typeof import('./registry-commands')).loginCommand },
  logout: { section: 'Registry', summary: 'Log out from a Docker registry', storeless: true, load: () => (require('./registry-commands') as typeof import('./registry-commands')).logoutCommand },
  search: { section: 'Registry', summary: "Search a registry for images (Docker Hub's search API, or any registry's catalog)", storeless: true, load: () => (require('./registry-commands') as typeof import('./registry-commands')).searchCommand },

  create: { section: 'Container', summary: 'Create a new container (an init layer and a writable layer over an image)', load: () => (require('./container-commands') as typeof import('./container-commands')).createCommand },
  run: { section: 'Container', summary: 'Create and run a new container from an image (through runc)', load: () => (require('./container-commands') as typeof import('./container-commands')).runCommand },
  start: { section: 'Container', summary: 'Start one or more stopped containers', load: () => (require('./container-commands') as typeof import('./container-commands')).startCommand },
  stop: { section: 'Container', summary: 'Stop one or more running containers', load: () => (require('./container-commands') as typeof import('./container-commands')).stopCommand },
  kill: { section: 'Container', summary: 'Kill one or more running containers', load: () => (require('./container-commands') as typeof import('./container-commands')).killCommand },
  wait: { section: 'Container', summary: 'Block until one or more containers stop, then print their exit codes', load: () => (require('./container-commands') as typeof import('./container-commands')).waitCommand },
  logs: { section: 'Container', summary: 'Fetch the logs of a container', load: () => (require('./container-commands') as typeof import('./container-commands')).logsCommand },
  rm: { section: 'Container', summary: 'Remove one or more containers', load: () => (require('./container-commands') as typeof import('./container-commands')).rmCommand },
  ps: { section: 'Container', readOnly: true, summary: 'List containers', load: () => (require('./container-commands') as typeof import('./container-commands')).psCommand },
  diff: { section: 'Container', summary: "Inspect changes to files or directories on a container's filesystem", load: () => (require('./container-commands') as typeof import('./container-commands')).diffCommand },
  commit: { section: 'Container', summary: "Create a new image from a container's changes", load: () => (require('./container-commands') as typeof import('./container-commands')).commitCommand },
  export: { section: 'Container', summary: "Export a container's filesystem as a tar archive", load: () => (require('./container-commands') as typeof import('./container-commands')).exportCommand },
  mount: { section: 'Container', summary: "Mount a container's root filesystem (kernel overlayfs) and print its path", load: () => (require('./container-commands') as typeof import('./container-commands')).mountCommand },
  build: { section: 'Build', summary: 'Build an image from a Dockerfile (BuildKit\'s output, strata\'s content-addressed cache)', load: () => (require('./build-commands') as typeof import('./build-commands')).buildCommand },
  'builder prune': { section: 'Build', summary: 'Remove build cache records and the layers only they keep', load: () => (require('./build-commands') as typeof import('./build-commands')).builderPruneCommand },
  umount: { section: 'Container', summary: "Unmount a container's root filesystem", load: () => (require('./container-commands') as typeof import('./container-commands')).umountCommand },
  exec: { section: 'Container', summary: 'Execute a command in a running container', load: () => (require('./exec-command') as typeof import('./exec-command')).execCommand },
  cp: { section: 'Container', summary: 'Copy files/folders between a container and the local filesystem', load: () => (require('./cp-command') as typeof import('./cp-command')).cpCommand },
  pause: { section: 'Container', summary: 'Pause all processes within one or more containers', load: () => (require('./process-commands') as typeof import('./process-commands')).pauseCommand },
  unpause: { section: 'Container', summary: 'Unpause all processes within one or more containers', load: () => (require('./process-commands') as typeof import('./process-commands')).unpauseCommand },
  top: { section: 'Container', summary: 'Display the running processes of a container', load: () => (require('./process-commands') as typeof import('./process-commands')).topCommand },
  rename: { section: 'Container', summary: 'Rename a container', load: () => (require('./process-commands') as typeof import('./process-commands')).renameCommand },
  'container prune': { section: 'Container', summary: 'Remove all stopped containers', load: () => (require('./system-commands') as typeof import('./system-commands')).containerPruneCommand },
  'image prune': { section: 'Image', summary: 'Remove unused images', load: () => (require('./system-commands') as typeof import('./system-commands')).imagePruneCommand },
  'system df': { section: 'System', summary: 'Show disk usage (-v: per image, with shared and unique sizes)', load: () => (require('./system-commands') as typeof import('./system-commands')).systemDfCommand },
  'system prune': { section: 'System', summary: 'Remove unused data', load: () => (require('./system-commands') as typeof import('./system-commands')).systemPruneCommand },
}

/**
 * Docker's other spellings: the words typed → the command and any arguments they imply.
 * `image X` and `container X` for the commands of those sections are derived below.
 */
export const ALIASES: Record<string, string[]> = {
  'image ls': ['images'],
  'image list': ['images'],
  'image rm': ['rmi'],
  'image remove': ['rmi'],
  'image inspect': ['inspect', '--type', 'image'],
  'container ls': ['ps'],
  'container list': ['ps'],
  'container remove': ['rm'],
  'container inspect': ['inspect', '--type', 'container'],
  unmount: ['umount'],
  'container unmount': ['umount'],
}

/** Management-command prefixes whose `PREFIX NAME` runs the section's command NAME (`image tag`). */
const PREFIXES: Record<string, Section> = { image: 'Image', container: 'Container' }

/** What to run for `argv` (command words first): the table key and the arguments it gets. */
export function resolveCommand(argv: string[]): { name: string; entry: CommandEntry; args: string[] } | undefined {
  const [first, second] = argv
  if (second !== undefined) {
    const two = `${first} ${second}`
    if (own(COMMANDS, two)) return { name: two, entry: COMMANDS[two], args: argv.slice(2) }
    if (own(ALIASES, two)) return at(ALIASES[two], argv.slice(2))
    const section = own(PREFIXES, first) ? PREFIXES[first] : undefined
    if (section && own(COMMANDS, second) && COMMANDS[second].section === section && second !== 'inspect') return { name: second, entry: COMMANDS[second], args: argv.slice(2) }
  }
  if (own(COMMANDS, first)) return { name: first, entry: COMMANDS[first], args: argv.slice(1) }
  if (own(ALIASES, first)) return at(ALIASES[first], argv.slice(1))
  return undefined
}

/** Whether `table` has `key` of its own (`strata constructor` names no command). */
function own(table: object, key: string | undefined): key is string {
  return key !== undefined && Object.prototype.hasOwnProperty.call(table, key)
}

function at([name, ...implied]: string[], args: string[]): { name: string; entry: CommandEntry; args: string[] } {
  return { name, entry: COMMANDS[name], args: [...implied, ...args] }
}

/** The `--help` text, made from the table (no command module is loaded for it). */
export function usage(): string {
  const names = Object.keys(COMMANDS)
  const width = Math.max(...names.map((n) => n.length)) + 2
  let out = `Usage:  strata [--root DIR] COMMAND

Docker's image and container storage model: overlay2 layers, kernel overlayfs.

Global options:
  --root DIR  Store root (default $STRATA_ROOT or /var/lib/strata)
  --version   Print version information and quit
`
  for (const section of SECTIONS) {
    const rows = names.filter((n) => COMMANDS[n].section === section)
    if (rows.length === 0) continue
    out += `\n${section} commands:\n`
    for (const n of rows) out += `  ${n.padEnd(width)}${COMMANDS[n].summary}\n`
  }
  out += `\nDocker's management forms work too: image ls|rm|inspect|..., container ls|rm|inspect|...\n`
  return out
}
