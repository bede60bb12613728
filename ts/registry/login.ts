/**
 * `login` / `logout`: credentials are checked against the registry (`GET /v2/` through the
 * transport's auth flow, which fetches a token when the registry asks for one) before they are
 * stored where Docker keeps them (ts/registry/credentials.ts). The check itself is the
 * transport's (Rust); this module decides what to check and where the result goes.
 *
 * Identity tokens, as `docker login` (Engine 20.10) has them: the check asks a token issuer for
 * an offline token (`offline_token=true&client_id=docker` beside the Basic credentials); when the
 * answer carries a `refresh_token`, that is stored as `identitytoken` in place of the password
 * (`auth` then holds `user:`, and Docker's "stored unencrypted" warning is not printed), and later
 * requests exchange it at the issuer with the OAuth2 form `grant_type=refresh_token`. Logging in
 * again with the stored identity token stores whatever the issuer answers (a rotated token too).
 */
import { StrataError } from '../errors'
import { AuthConfig, DockerConfig, StoredIn, serverKey, isIndexServer, convertToHostname } from './credentials'

/** Docker Hub as the transport names it (it resolves `docker.io` to the Hub's v2 endpoint). */
export const HUB_REGISTRY_HOST = 'docker.io'

/** What verifying credentials against a registry answered. */
export interface VerifiedLogin {
  /** A refresh token the registry's token service issued; stored instead of the password. */
  identityToken?: string
}

/** Checks credentials against `host` (`GET /v2/` through the auth flow); throws `Unauthorized` when refused. */
export type VerifyLogin = (host: string, auth: AuthConfig, signal?: AbortSignal) => Promise<VerifiedLogin>

export interface LoginOptions {
  username?: string
  password?: string
  signal?: AbortSignal
}

export interface LoginResult {
  /** The key the credentials are stored under (`https://index.docker.io/v1/`, `host:port`). */
  serverAddress: string
  /** `Login Succeeded`, as docker prints it. */
  status: string
  /** Where the credentials went; `file` set means they sit unencrypted in that file. */
  storedIn: StoredIn
  /** The registry returned an identity token, stored instead of the password. */
  identityToken: boolean
}

export interface LogoutResult {
  serverAddress: string
  /** The forms of the key whose credential helper failed to erase them (with its message). */
  failed: Map<string, StrataError>
  /** Every form failed: nothing was erased. */
  allFailed: boolean
}

/** The registry host to check credentials stored under `key` against. */
export function registryHostFor(key: string): string {
  return isIndexServer(key) ? HUB_REGISTRY_HOST : convertToHostname(key)
}

/**
 * Verifies and stores credentials. With no username and password, the stored ones are
 * checked again (as `docker login SERVER` does) and `NoCredentials` is thrown when there are none.
 */
export async function login(config: DockerConfig, verify: VerifyLogin, server: string | undefined, opts: LoginOptions = {}): Promise<LoginResult> {
  const key = serverKey(server)
  let auth: AuthConfig
  if (opts.username === undefined && opts.password === undefined) {
    const stored = await config.get(key)
    if (!stored || (!stored.password && !stored.identityToken)) throw new StrataError('NoCredentials', `no stored credentials for ${key}`)
    auth = stored
  } else {
    const username = (opts.username ?? '').trim()
    if (username === '') throw new StrataError('InvalidArgument', 'Error: Non-null Username Required')
    if (!opts.password) throw new StrataError('InvalidArgument', 'Error: Password Required')
    auth = { serverAddress: key, username, password: opts.password }
  }
  const verified = await verify(registryHostFor(key), auth, opts.signal)
  const toStore: AuthConfig = verified.identityToken
    ? { serverAddress: key, username: auth.username, identityToken: verified.identityToken }
    : auth
  const storedIn = await config.store(toStore)
  return { serverAddress: key, status: 'Login Succeeded', storedIn, identityToken: Boolean(verified.identityToken) }
}

/** Removes stored credentials (`docker logout`); succeeds when there were none. */
export async function logout(config: DockerConfig, server: string | undefined): Promise<LogoutResult> {
  const key = serverKey(server)
  const { tried, failed } = await config.erase(key)
  return { serverAddress: key, failed, allFailed: failed.size === tried.length }
}
