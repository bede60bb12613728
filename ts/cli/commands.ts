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
 * frob: { section: 'Image', summary: 'Frob an image', load: () => import('./frob-command').then((m) => m.frobCommand) },
 * ```
 *
 * - `import()` must stay inside `load` (a top-level import would make every command pay for it).
 *   Import the store's types with `import type` or plain imports used only as types.
 * - A command that needs no store (`login`, `logout`, `search`) sets `storeless: true`; its
 *   handler is a `StorelessHandler` and the store is never opened.
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
  | (EntryBase & { storeless?: false; load: () => Promise<Handler> })
  | (EntryBase & { storeless: true; load: () => Promise<StorelessHandler> })

export const COMMANDS: Record<string, CommandEntry> = {
  images: { section: 'Image', summary: 'List images (image ls)', load: () => import('./image-commands').then((m) => m.imagesCommand) },
  load: { section: 'Image', summary: 'Load an image from a tar archive or STDIN', load: () => import('./archive-commands').then((m) => m.loadCommand) },
  save: { section: 'Image', summary: 'Save one or more images to a tar archive (streamed to STDOUT by default)', load: () => import('./archive-commands').then((m) => m.saveCommand) },
  import: { section: 'Image', summary: 'Import the contents from a tarball to create a filesystem image', load: () => import('./archive-commands').then((m) => m.importCommand) },
  tag: { section: 'Image', summary: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE', load: () => import('./image-commands').then((m) => m.tagCommand) },
  rmi: { section: 'Image', summary: 'Remove one or more images (image rm)', load: () => import('./image-commands').then((m) => m.rmiCommand) },
  inspect: { section: 'Image', summary: 'Return low-level information on images and containers', load: () => import('./inspect-command').then((m) => m.inspectCommand) },
  history: { section: 'Image', summary: 'Show the history of an image', load: () => import('./image-commands').then((m) => m.historyCommand) },

  pull: { section: 'Registry', summary: 'Download an image from a registry', load: () => import('./pull-command').then((m) => m.pullCommand) },
  push: { section: 'Registry', summary: 'Push an image or a repository to a registry', load: () => import('./push-command').then((m) => m.pushCommand) },
  login: { section: 'Registry', summary: 'Log in to a Docker registry', storeless: true, load: () => import('./registry-commands').then((m) => m.loginCommand) },
  logout: { section: 'Registry', summary: 'Log out from a Docker registry', storeless: true, load: () => import('./registry-commands').then((m) => m.logoutCommand) },
  search: { section: 'Registry', summary: "Search a registry for images (Docker Hub's search API, or any registry's catalog)", storeless: true, load: () => import('./registry-commands').then((m) => m.searchCommand) },

  create: { section: 'Container', summary: 'Create a new container (an init layer and a writable layer over an image)', load: () => import('./container-commands').then((m) => m.createCommand) },
  run: { section: 'Container', summary: 'Create and run a new container from an image (through runc)', load: () => import('./container-commands').then((m) => m.runCommand) },
  start: { section: 'Container', summary: 'Start one or more stopped containers', load: () => import('./container-commands').then((m) => m.startCommand) },
  stop: { section: 'Container', summary: 'Stop one or more running containers', load: () => import('./container-commands').then((m) => m.stopCommand) },
  kill: { section: 'Container', summary: 'Kill one or more running containers', load: () => import('./container-commands').then((m) => m.killCommand) },
  wait: { section: 'Container', summary: 'Block until one or more containers stop, then print their exit codes', load: () => import('./container-commands').then((m) => m.waitCommand) },
  logs: { section: 'Container', summary: 'Fetch the logs of a container', load: () => import('./container-commands').then((m) => m.logsCommand) },
  rm: { section: 'Container', summary: 'Remove one or more containers', load: () => import('./container-commands').then((m) => m.rmCommand) },
  ps: { section: 'Container', summary: 'List containers', load: () => import('./container-commands').then((m) => m.psCommand) },
  diff: { section: 'Container', summary: "Inspect changes to files or directories on a container's filesystem", load: () => import('./container-commands').then((m) => m.diffCommand) },
  commit: { section: 'Container', summary: "Create a new image from a container's changes", load: () => import('./container-commands').then((m) => m.commitCommand) },
  export: { section: 'Container', summary: "Export a container's filesystem as a tar archive", load: () => import('./container-commands').then((m) => m.exportCommand) },
  mount: { section: 'Container', summary: "Mount a container's root filesystem (kernel overlayfs) and print its path", load: () => import('./container-commands').then((m) => m.mountCommand) },
  build: { section: 'Build', summary: 'Build an image from a Dockerfile (BuildKit\'s output, strata\'s content-addressed cache)', load: () => import('./build-commands').then((m) => m.buildCommand) },
  'builder prune': { section: 'Build', summary: 'Remove build cache records and the layers only they keep', load: () => import('./build-commands').then((m) => m.builderPruneCommand) },
  umount: { section: 'Container', summary: "Unmount a container's root filesystem", load: () => import('./container-commands').then((m) => m.umountCommand) },
  exec: { section: 'Container', summary: 'Execute a command in a running container', load: () => import('./exec-command').then((m) => m.execCommand) },
  cp: { section: 'Container', summary: 'Copy files/folders between a container and the local filesystem', load: () => import('./cp-command').then((m) => m.cpCommand) },
  pause: { section: 'Container', summary: 'Pause all processes within one or more containers', load: () => import('./process-commands').then((m) => m.pauseCommand) },
  unpause: { section: 'Container', summary: 'Unpause all processes within one or more containers', load: () => import('./process-commands').then((m) => m.unpauseCommand) },
  top: { section: 'Container', summary: 'Display the running processes of a container', load: () => import('./process-commands').then((m) => m.topCommand) },
  rename: { section: 'Container', summary: 'Rename a container', load: () => import('./process-commands').then((m) => m.renameCommand) },
  'container prune': { section: 'Container', summary: 'Remove all stopped containers', load: () => import('./system-commands').then((m) => m.containerPruneCommand) },
  'image prune': { section: 'Image', summary: 'Remove unused images', load: () => import('./system-commands').then((m) => m.imagePruneCommand) },
  'system df': { section: 'System', summary: 'Show disk usage (-v: per image, with shared and unique sizes)', load: () => import('./system-commands').then((m) => m.systemDfCommand) },
  'system prune': { section: 'System', summary: 'Remove unused data', load: () => import('./system-commands').then((m) => m.systemPruneCommand) },
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
    if (COMMANDS[two]) return { name: two, entry: COMMANDS[two], args: argv.slice(2) }
    if (ALIASES[two]) return at(ALIASES[two], argv.slice(2))
    const section = PREFIXES[first]
    if (section && COMMANDS[second]?.section === section && second !== 'inspect') return { name: second, entry: COMMANDS[second], args: argv.slice(2) }
  }
  if (COMMANDS[first]) return { name: first, entry: COMMANDS[first], args: argv.slice(1) }
  if (ALIASES[first]) return at(ALIASES[first], argv.slice(1))
  return undefined
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
