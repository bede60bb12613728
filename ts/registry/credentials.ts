/**
 * Registry credentials where Docker keeps them, so `docker login` and `strata login` share them.
 *
 * The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, in the Docker CLI's
 * format (cli/config/configfile):
 *
 * ```json
 * {
 *   "auths": {
 *     "https://index.docker.io/v1/": { "auth": "<base64 user:pass>" },
 *     "localhost:5000": { "auth": "<base64 user:pass>", "identitytoken": "<refresh token>" },
 *     "registry.example": {}
 *   },
 *   "credsStore": "pass",
 *   "credHelpers": { "registry.example": "secretservice" }
 * }
 * ```
 *
 * - `credHelpers[server]` names the helper for one server, else `credsStore` the helper for all;
 *   a helper is the executable `docker-credential-<name>` on PATH speaking the helper protocol
 *   (`get` / `store` / `erase`, one request on stdin, JSON on stdout; see {@link runHelper}).
 *   With a helper the file keeps only an empty `auths` entry naming the server (as Docker does).
 * - Without a helper the secret sits base64-encoded in `auths` ("stored unencrypted").
 * - An identity token (an OAuth refresh token a registry returned at login) is stored instead
 *   of the password: `identitytoken` in the file, username `<token>` in a helper.
 * - The file is rewritten atomically (temp file beside it, fsync, rename) with mode 0600,
 *   following a symlinked config.json to its target; every key strata does not own is kept
 *   as it was, in the same order.
 *
 * Docker Hub's key is `https://index.docker.io/v1/` (Docker's `IndexServer`); other servers are
 * keyed by `host[:port]` (a stored `https://host/` key still matches `host`, as in Docker).
 */
import path = require('node:path')
import { fsp as fs, os, childProcess, crypto } from '../internal/lazy'
import { StrataError } from '../errors'
import { DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN } from '../reference'
import { expose, sync } from '../internal/boundary'
import * as v from '../internal/validate'

/** Docker Hub's name in credential stores (`registry.IndexServer`). */
export const INDEX_SERVER = 'https://index.docker.io/v1/'
/** Host names that all mean Docker Hub. */
const HUB_HOSTS = new Set([DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, 'registry-1.docker.io'])
/** The username a helper stores with an identity token (docker-credential-helpers' convention). */
const TOKEN_USERNAME = '<token>'
/** A helper that does not answer in this time is treated as failed (a `get` should take ms). */
const HELPER_TIMEOUT_MS = 60_000

/** Credentials for one registry. */
export interface AuthConfig {
  /** The key they are stored under: `https://index.docker.io/v1/` or `host[:port]`. */
  serverAddress: string
  username?: string
  password?: string
  /** A refresh token the registry issued at login, used instead of the password. */
  identityToken?: string
}

/** Where the credentials went: the plain file (Docker warns then) or a helper. */
export interface StoredIn {
  file?: string
  helper?: string
}

/** `registry.ConvertToHostname`: `https://host:port/v2/` → `host:port`. */
export function convertToHostname(url: string): string {
  let s = url
  if (s.startsWith('http://')) s = s.slice(7)
  else if (s.startsWith('https://')) s = s.slice(8)
  const slash = s.indexOf('/')
  return slash >= 0 ? s.slice(0, slash) : s
}

/**
 * The key a user-typed login server is stored under: none, Docker Hub's index URL or any Hub
 * host name → {@link INDEX_SERVER}; anything else → its `host[:port]`.
 */
export function serverKey(server?: string): string {
  if (server === undefined || server === '' || server === INDEX_SERVER) return INDEX_SERVER
  const host = convertToHostname(server)
  if (host === '') throw new StrataError('InvalidArgument', `invalid registry address: ${JSON.stringify(server)}`)
  return HUB_HOSTS.has(host) ? INDEX_SERVER : host
}

/** The key credentials for a registry host (a reference's domain) are found under. */
export function keyForRegistry(domain: string): string {
  return HUB_HOSTS.has(domain) ? INDEX_SERVER : domain
}

/** Is this key Docker Hub's? */
export function isIndexServer(key: string): boolean {
  return key === INDEX_SERVER
}

/** The config dir: `$DOCKER_CONFIG`, else `~/.docker` (Docker's `config.Dir()`). */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker')
}

type RawAuth = { auth?: string; username?: string; password?: string; identitytoken?: string; [k: string]: unknown }
type RawConfig = { auths?: Record<string, RawAuth>; credsStore?: string; credHelpers?: Record<string, string>; [k: string]: unknown }

function decodeAuth(key: string, b64: string): { username: string; password: string } {
  const text = Buffer.from(b64, 'base64').toString('utf8')
  const colon = text.indexOf(':')
  // Never quote the decoded value: it is the secret.
  if (colon < 0) throw new StrataError('ConfigInvalid', `invalid auth configuration for ${key} in the Docker config file`)
  return { username: text.slice(0, colon), password: text.slice(colon + 1) }
}

/** Docker's config file and the helpers it names. */
export class DockerConfig {
  readonly file: string

  constructor(dir: string = configDir()) {
    this.file = path.join(dir, 'config.json')
  }

  /** The file as parsed JSON (an empty object when there is none). */
  async read(): Promise<RawConfig> {
    let text: string
    try {
      text = await fs.readFile(this.file, 'utf8')
    } catch (e) {
      const err = e as NodeJS.ErrnoException
      if (err.code === 'ENOENT') return {}
      throw new StrataError('Io', `reading ${this.file}: ${err.message}`, { syscode: err.code, path: this.file })
    }
    if (text.trim() === '') return {}
    try {
      const v = JSON.parse(text) as unknown
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object')
      const c = v as RawConfig
      if (c.auths !== undefined && (c.auths === null || typeof c.auths !== 'object')) throw new Error('"auths" is not an object')
      return c
    } catch (e) {
      throw new StrataError('ConfigInvalid', `loading config file ${this.file}: ${(e as Error).message}`, { path: this.file })
    }
  }

  /** The helper for `key` (`credHelpers`, then `credsStore`), if any. */
  helperFor(cfg: RawConfig, key: string): string | undefined {
    const byServer = cfg.credHelpers?.[key] ?? cfg.credHelpers?.[convertToHostname(key)]
    if (typeof byServer === 'string' && byServer !== '') return byServer
    return typeof cfg.credsStore === 'string' && cfg.credsStore !== '' ? cfg.credsStore : undefined
  }

  /** Credentials stored for `key` (from {@link serverKey} / {@link keyForRegistry}), if any. */
  async get(key: string): Promise<AuthConfig | undefined> {
    const cfg = await this.read()
    const helper = this.helperFor(cfg, key)
    if (helper) {
      const out = await runHelper(helper, 'get', key)
      if (out === undefined) return undefined
      let r: { ServerURL?: string; Username?: string; Secret?: string }
      try {
        r = JSON.parse(out) as typeof r
      } catch {
        throw new StrataError('CredentialHelperFailed', `docker-credential-${helper} get: the helper's answer is not JSON`)
      }
      if (!r.Secret && !r.Username) return undefined
      if (r.Username === TOKEN_USERNAME) return { serverAddress: key, identityToken: r.Secret ?? '' }
      return { serverAddress: key, username: r.Username ?? '', password: r.Secret ?? '' }
    }
    const auths = cfg.auths ?? {}
    let found: [string, RawAuth] | undefined = auths[key] !== undefined ? [key, auths[key]] : undefined
    if (!found) {
      // Keys written with a scheme or path by older clients still count (Docker's GetAuthConfig).
      const host = convertToHostname(key)
      for (const [k, v] of Object.entries(auths)) if (convertToHostname(k) === host) { found = [k, v]; break }
    }
    if (!found || found[1] === null || typeof found[1] !== 'object') return undefined
    const [k, raw] = found
    const out: AuthConfig = { serverAddress: key }
    if (typeof raw.auth === 'string' && raw.auth !== '') Object.assign(out, decodeAuth(k, raw.auth))
    else {
      if (typeof raw.username === 'string') out.username = raw.username
      if (typeof raw.password === 'string') out.password = raw.password
    }
    if (typeof raw.identitytoken === 'string' && raw.identitytoken !== '') out.identityToken = raw.identitytoken
    if (!out.username && !out.password && !out.identityToken) return undefined
    return out
  }

  /** Stores credentials; returns where they went (the caller warns when it was the file). */
  async store(auth: AuthConfig): Promise<StoredIn> {
    const read = await this.read()
    // A file without `auths` gets it first, where the Docker CLI puts it.
    const cfg: RawConfig = read.auths ? read : { auths: {}, ...read }
    const auths = cfg.auths!
    const key = auth.serverAddress
    const helper = this.helperFor(cfg, key)
    if (helper) {
      const secret = auth.identityToken ? auth.identityToken : auth.password ?? ''
      const username = auth.identityToken ? TOKEN_USERNAME : auth.username ?? ''
      await runHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: username, Secret: secret }))
      auths[key] = {}
      await this.write(cfg)
      return { helper }
    }
    const entry: RawAuth = {}
    if (auth.identityToken) {
      // Docker keeps the username beside the token (auth = base64("user:")), never the password.
      if (auth.username) entry.auth = Buffer.from(`${auth.username}:`).toString('base64')
      entry.identitytoken = auth.identityToken
    } else {
      entry.auth = Buffer.from(`${auth.username ?? ''}:${auth.password ?? ''}`).toString('base64')
    }
    auths[key] = entry
    await this.write(cfg)
    return { file: this.file }
  }

  /**
   * Removes the credentials of `key` and of the forms older clients wrote it in
   * (`http://key`, `https://key`), as `docker logout` does: each form is erased from its helper
   * (if one applies) and from the file. Returns the forms whose helper failed, with the
   * helper's message; the file entry of such a form is kept, as Docker keeps it.
   */
  async erase(key: string): Promise<{ tried: string[]; failed: Map<string, StrataError> }> {
    const cfg = await this.read()
    const tried = isIndexServer(key) ? [key] : [key, `http://${key}`, `https://${key}`]
    const failed = new Map<string, StrataError>()
    let changed = false
    for (const k of tried) {
      const helper = this.helperFor(cfg, k)
      if (helper) {
        try {
          await runHelper(helper, 'erase', k)
        } catch (e) {
          if (!(e instanceof StrataError && e.code === 'CredentialHelperFailed')) throw e
          failed.set(k, e)
          continue
        }
      }
      if (cfg.auths && Object.hasOwn(cfg.auths, k)) {
        delete cfg.auths[k]
        changed = true
      }
    }
    if (changed) await this.write(cfg)
    return { tried, failed }
  }

  /** Writes the file atomically, mode 0600, keys in the order they were read. */
  async write(cfg: RawConfig): Promise<void> {
    let target = this.file
    try {
      target = await fs.realpath(this.file)
    } catch {
      /* no file yet */
    }
    const dir = path.dirname(target)
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    // Go's json.MarshalIndent(c, "", "\t"), as the Docker CLI writes it.
    const text = JSON.stringify(cfg, null, '\t')
    const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`)
    try {
      // Created 0600: the secrets are never readable by others, not even for a moment.
      const fh = await fs.open(tmp, 'wx', 0o600)
      try {
        await fh.writeFile(text)
        await fh.sync()
      } finally {
        await fh.close()
      }
      await fs.rename(tmp, target)
    } catch (e) {
      await fs.rm(tmp, { force: true })
      const err = e as NodeJS.ErrnoException
      throw new StrataError('Io', `saving ${target}: ${err.message}`, { syscode: err.code, path: target })
    }
  }
}

/** What helpers print when they have nothing for a server (docker-credential-helpers' ErrCredentialsNotFound). */
const NOT_FOUND = 'credentials not found in native keychain'

/**
 * Runs `docker-credential-<helper> <action>` with `input` on stdin: `get` returns the JSON it
 * printed (or undefined when it has no credentials), `store` / `erase` return ''. A failing
 * helper is a `CredentialHelperFailed` carrying the helper's own message (helpers never echo
 * secrets; the input is never quoted).
 */
export function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<string | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) return Promise.reject(new StrataError('ConfigInvalid', `invalid credential helper name ${JSON.stringify(helper)}`))
  const exe = `docker-credential-${helper}`
  return new Promise((resolve, reject) => {
    const child = childProcess.spawn(exe, [action], { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let settled = false
    const finish = (f: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      f()
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      finish(() => reject(new StrataError('CredentialHelperFailed', `${exe} ${action}: no answer in ${HELPER_TIMEOUT_MS / 1000} s`)))
    }, HELPER_TIMEOUT_MS)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e: NodeJS.ErrnoException) => finish(() => reject(new StrataError('CredentialHelperFailed',
      e.code === 'ENOENT' ? `${exe}: executable file not found in $PATH` : `${exe} ${action}: ${e.message}`, { syscode: e.code }))))
    child.on('close', (code) => finish(() => {
      const text = Buffer.concat(out).toString('utf8').trim()
      if (code === 0) return resolve(action === 'get' ? text : '')
      if (action === 'get' && text === NOT_FOUND) return resolve(undefined)
      const msg = text || Buffer.concat(err).toString('utf8').trim() || `exit status ${code}`
      reject(new StrataError('CredentialHelperFailed', `error ${action === 'get' ? 'getting' : action === 'store' ? 'storing' : 'erasing'} credentials - err: exit status ${code}, out: \`${msg}\``))
    }))
    child.stdin.on('error', () => { /* a helper that exits without reading: its exit status tells */ })
    child.stdin.end(input)
  })
}

const RAW_CONFIG = v.check((x) => x !== null && typeof x === 'object' && !Array.isArray(x), 'a config object')

expose(DockerConfig, {
  read: [],
  helperFor: sync([['cfg', RAW_CONFIG], ['key', v.string]]),
  get: [['key', v.nonEmptyString]],
  store: [['auth', v.options({
    serverAddress: v.nonEmptyString, username: v.optional(v.string), password: v.optional(v.string), identityToken: v.optional(v.string),
  })]],
  erase: [['key', v.nonEmptyString]],
  write: [['cfg', RAW_CONFIG]],
})
