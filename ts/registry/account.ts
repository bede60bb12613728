/**
 * login / logout / search against a store's registry settings (`daemon.json`, certs dirs) and
 * Docker's credentials: what `Store.login/logout/search` and the store-less CLI commands run.
 */
import { Layout } from '../layout'
import { StrataError } from '../errors'
import { DockerConfig, keyForRegistry } from './credentials'
import { login as loginWith, logout as logoutWith, LoginOptions, LoginResult, LogoutResult } from './login'
import { search as searchWith, SearchOptions, SearchResult, RegistryGet } from './search'
import { RegistryClient } from './client'
import { registryAuth } from './push-image'

/** Verifies and stores credentials for `server` (default Docker Hub). */
export function login(layout: Layout, config: DockerConfig, server: string | undefined, opts: LoginOptions = {}): Promise<LoginResult> {
  return loginWith(config, async (host, auth, signal) => {
    // As docker login: a token issuer is asked for a refresh token, stored instead of the password.
    const client = RegistryClient.open(layout, host, registryAuth(auth), { noMirrors: true, offlineToken: true })
    try {
      await client.request({ method: 'GET', target: '/v2/', signal })
    } catch (e) {
      if (e instanceof StrataError && e.code === 'Unauthorized') {
        const status = e.status ?? 401
        throw new StrataError('Unauthorized', `login attempt to ${host}/v2/ failed with status: ${status} ${status === 403 ? 'Forbidden' : 'Unauthorized'}`, { status, ...(e.registryCode ? { registryCode: e.registryCode } : {}), cause: e })
      }
      throw e
    }
    const identityToken = client.identityToken()
    return identityToken ? { identityToken } : {}
  }, server, opts)
}

export function logout(config: DockerConfig, server: string | undefined): Promise<LogoutResult> {
  return logoutWith(config, server)
}

/** Searches a registry (Docker Hub's search API, or the catalog of any registry). */
export function search(layout: Layout, config: DockerConfig, term: string, opts: SearchOptions = {}): Promise<SearchResult[]> {
  const clients = new Map<string, RegistryClient>()
  const get: RegistryGet = async (host, target, scope, signal) => {
    let client = clients.get(host)
    if (!client) {
      const auth = await config.get(keyForRegistry(host))
      client = RegistryClient.open(layout, host, auth ? registryAuth(auth) : {})
      clients.set(host, client)
    }
    const r = await client.request({ method: 'GET', target, ...(scope ? { scopes: [scope] } : {}), accept: Array.from({ length: 500 }, (_, i) => i + 100), maxBody: 16 << 20, signal })
    return { status: r.status, header: (n) => r.header(n), body: r.body }
  }
  return searchWith(get, term, opts)
}
