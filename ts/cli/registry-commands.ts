/**
 * CLI: `login`, `logout`, `search` — Docker 20.10's flags, messages and output. They need no
 * store (they run on the store root's registry settings and Docker's credentials).
 */
import type { Readable } from 'node:stream'
import * as readline from 'node:readline'
import { StrataError } from '../errors'
import { parseArgs, flag, value, values } from './args'
import { Io } from './io'
import { printFormatted } from './output'
import { ellipsis } from '../format/units'
import { resolveFormat } from '../format/docker'
import { parseSearchFilters, DEFAULT_LIMIT } from '../registry/search'
import { DockerConfig, configDir, serverKey } from '../registry/credentials'
import { login, logout, search } from '../registry/account'
import { Layout } from '../internal/layout'

/** The store root's layout (for its `daemon.json` and certs dirs), without opening the store. */
function layoutOf(opts: { root?: string }): Layout {
  return new Layout(opts.root ?? process.env.STRATA_ROOT ?? '/var/lib/strata')
}

/** Docker 20.10's warnings (cli/command/registry/login.go), word for word. */
export const PASSWORD_FLAG_WARNING = 'WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n'
export function unencryptedWarning(file: string): string {
  return `WARNING! Your password will be stored unencrypted in ${file}.\n` +
    'Configure a credential helper to remove this warning. See\n' +
    'https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n\n'
}

/** Where a command reads its standard input (the process's, or a test's stream). */
export interface Stdin {
  stream: Readable
  isTty: boolean
}

const processStdin = (): Stdin => ({ stream: process.stdin, isTty: Boolean(process.stdin.isTTY) })

async function readAll(s: Readable): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of s) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)))
  return Buffer.concat(chunks).toString('utf8')
}

/** Prompts on a terminal (the password without echo), as Docker's ConfigureAuth does. */
async function prompt(io: Io, stdin: Stdin, question: string, secret: boolean): Promise<string> {
  io.out(question)
  const rl = readline.createInterface({ input: stdin.stream, terminal: false })
  const tty = stdin.stream as Readable & { setRawMode?: (on: boolean) => void }
  if (secret && stdin.isTty) tty.setRawMode?.(false)
  try {
    const line = await new Promise<string>((resolve) => rl.once('line', resolve).once('close', () => resolve('')))
    return line.replace(/\r$/, '')
  } finally {
    rl.close()
  }
}

export async function loginCommand(argv: string[], io: Io, opts: { root?: string } = {}, stdin: Stdin = processStdin()): Promise<number> {
  const config = new DockerConfig(configDir())
  const layout = layoutOf(opts)
  const p = parseArgs(argv, [
    { name: 'username', short: 'u', value: true }, { name: 'password', short: 'p', value: true }, { name: 'password-stdin' },
  ])
  if (p.args.length > 1) throw new StrataError('InvalidArgument', '"login" requires at most 1 argument.')
  let username = value(p, 'username')
  let password = value(p, 'password')
  if (password !== undefined) io.err(PASSWORD_FLAG_WARNING)
  if (flag(p, 'password-stdin')) {
    if (password !== undefined) throw new StrataError('InvalidArgument', '--password and --password-stdin are mutually exclusive')
    if (!username) throw new StrataError('InvalidArgument', 'Must provide --username with --password-stdin')
    password = (await readAll(stdin.stream)).replace(/\n$/, '').replace(/\r$/, '')
  }
  const server = p.args[0]
  const key = serverKey(server)
  const succeeded = (r: { storedIn: { file?: string }; identityToken: boolean }) => {
    if (r.storedIn.file && !r.identityToken) io.err(unencryptedWarning(r.storedIn.file))
    io.out('Login Succeeded\n')
    return 0
  }
  // No credentials given: the stored ones, checked again (Docker: "Authenticating with existing credentials...").
  if (username === undefined && password === undefined) {
    const stored = await config.get(key)
    if (stored?.username && stored.password) {
      io.out('Authenticating with existing credentials...\n')
      try {
        return succeeded(await login(layout, config, server))
      } catch (e) {
        if (!(e instanceof StrataError) || e.code !== 'Unauthorized') throw e
        io.err(`Login did not succeed, error: ${e.message}\n`)
      }
    }
  }
  if (!password && !stdin.isTty) throw new StrataError('InvalidArgument', 'Error: Cannot perform an interactive login from a non TTY device')
  if (!username?.trim()) {
    const stored = await config.get(key)
    if (key === 'https://index.docker.io/v1/') io.out("Login with your Docker ID to push and pull images from Docker Hub. If you don't have a Docker ID, head over to https://hub.docker.com to create one.\n")
    const typed = (await prompt(io, stdin, stored?.username ? `Username (${stored.username}): ` : 'Username: ', false)).trim()
    username = typed || stored?.username || ''
  }
  if (!username.trim()) throw new StrataError('InvalidArgument', 'Error: Non-null Username Required')
  if (!password) {
    password = await prompt(io, stdin, 'Password: ', true)
    io.out('\n')
    if (!password) throw new StrataError('InvalidArgument', 'Error: Password Required')
  }
  return succeeded(await login(layout, config, server, { username, password }))
}

export async function logoutCommand(argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [])
  if (p.args.length > 1) throw new StrataError('InvalidArgument', '"logout" requires at most 1 argument.')
  const key = serverKey(p.args[0])
  io.out(`Removing login credentials for ${key}\n`)
  const r = await logout(new DockerConfig(configDir()), p.args[0])
  if (r.allFailed) {
    io.err('WARNING: could not erase credentials:\n')
    for (const [k, e] of r.failed) io.err(`${k}: ${e.message}\n`)
  }
  return 0
}

/** Docker 20.10's `docker search` table (cli/command/formatter/search.go). */
export const SEARCH_TABLE_FORMAT = 'table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}'
const SEARCH_HEADERS = { Name: 'NAME', Description: 'DESCRIPTION', StarCount: 'STARS', IsOfficial: 'OFFICIAL', IsAutomated: 'AUTOMATED' }
/** Description width in the table without --no-trunc. */
const DESCRIPTION_WIDTH = 45

export async function searchCommand(argv: string[], io: Io, opts: { root?: string } = {}): Promise<number> {
  const p = parseArgs(argv, [
    { name: 'limit', value: true }, { name: 'no-trunc' }, { name: 'format', value: true },
    { name: 'filter', short: 'f', value: true, multi: true },
  ])
  if (p.args.length !== 1) throw new StrataError('InvalidArgument', '"search" requires exactly 1 argument.')
  const limitText = value(p, 'limit')
  let limit = DEFAULT_LIMIT
  if (limitText !== undefined) {
    if (!/^-?\d+$/.test(limitText)) throw new StrataError('InvalidArgument', `invalid argument "${limitText}" for "--limit" flag: strconv.ParseInt: parsing "${limitText}": invalid syntax`)
    limit = Number(limitText)
  }
  const filters = parseSearchFilters(values(p, 'filter'))
  const results = await search(layoutOf(opts), new DockerConfig(configDir()), p.args[0], { limit, filters })
  const trunc = !flag(p, 'no-trunc')
  const rows = results.map((r) => {
    const desc = r.description.replace(/[\n\r]/g, ' ')
    return {
      Name: r.name,
      Description: trunc ? ellipsis(desc, DESCRIPTION_WIDTH) : desc,
      StarCount: String(r.starCount),
      IsOfficial: r.isOfficial ? '[OK]' : '',
      IsAutomated: r.isAutomated ? '[OK]' : '',
    }
  })
  printFormatted(io, resolveFormat(value(p, 'format'), SEARCH_TABLE_FORMAT), rows, SEARCH_HEADERS)
  return 0
}
