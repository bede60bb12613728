/**
 * The registry transport as the TS side sees it: `RegistryClient`, a thin wrapper over the native
 * client (crates/strata-registry), one per registry and operation (a pull, a push, a login).
 *
 * The native side owns every byte on the wire: endpoints (HTTPS; for insecure registries — those
 * in 127.0.0.0/8 and `insecure-registries` — HTTPS without verification, then plain HTTP),
 * Docker Hub mirrors, CA roots and client certificates from `<root>/certs.d/<host:port>/` and
 * `/etc/docker/certs.d/<host:port>/`, `HTTP(S)_PROXY`/`NO_PROXY`, the auth flow (anonymous,
 * Basic, Bearer tokens cached per scope set; credentials only ever sent to the registry's own
 * origin and the realm it names), redirects, retries with backoff (connection errors, 408, 429 +
 * `Retry-After`, 5xx).
 *
 * ```ts
 * const client = RegistryClient.open(ctx, 'localhost:5000', { username, password })
 * await client.request({ method: 'GET', target: '/v2/' })                  // login check
 * const r = await client.request({ method: 'HEAD', target: `/v2/${repo}/blobs/${d}`,
 *   scopes: [pushScope(repo)], accept: [200, 404] })                      // push: blob there?
 * const up = await client.request({ method: 'PATCH', target: location, scopes: [pushScope(repo)],
 *   bodyFile: { path, length }, accept: [202] })                           // up.sentDigest
 * ```
 * A status the request does not `accept` (default 2xx) rejects with a `StrataError`:
 * `Unauthorized` (401/403), `NotFound` (404), `RegistryError` (anything else, HTML included),
 * each with `status` and the registry's `registryCode`; `RegistryUnreachable` when no endpoint
 * answers; `ResponseTooLarge` past `maxBody`; `Aborted` when `signal` fires.
 */
import { native } from '../native'
import { call, toStrataError } from '../errors'
import { Layout } from '../layout'

/** Credentials for one registry (TS owns where they are stored). */
export interface RegistryAuth {
  username?: string
  password?: string
  /** OAuth2 refresh token (`identitytoken` in Docker's config.json). */
  identityToken?: string
  /** A bearer token used as is. */
  registryToken?: string
}

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** `/v2/...` or an absolute URL (an upload `Location`). */
  target: string
  headers?: Record<string, string>
  /** Token scopes: {@link pullScope}, {@link pushScope}, `registry:catalog:*`. */
  scopes?: string[]
  body?: Buffer
  bodyFile?: { path: string; offset?: number; length: number }
  /** Statuses that are answers (default 2xx). */
  accept?: number[]
  /** Largest body read (default 4 MiB). */
  maxBody?: number
  signal?: AbortSignal
}

export interface RegistryResponse {
  status: number
  /** Header value by name (case-insensitive; the first if repeated). */
  header(name: string): string | undefined
  /** All values of a header (`Link`, `WWW-Authenticate`). */
  headers(name: string): string[]
  /** The final URL, without userinfo or query. */
  url: string
  body: Buffer
  /** sha256 and length of the request body as it was sent. */
  sentDigest?: string
  sentBytes?: number
}

/** `repository:NAME:pull`. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`
}

/** `repository:NAME:pull,push`. */
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`
}

type NativeClient = InstanceType<typeof native.NativeRegistryClient>
type NativeCancel = InstanceType<typeof native.NativeCancel>

/** A NativeCancel following `signal`, and a function that detaches it (call when settled). */
export function cancelWhile(signal?: AbortSignal): { cancel?: NativeCancel; done: () => void } {
  if (!signal) return { done: () => undefined }
  const cancel = new native.NativeCancel()
  if (signal.aborted) cancel.cancel()
  const onAbort = (): void => cancel.cancel()
  signal.addEventListener('abort', onAbort, { once: true })
  return { cancel, done: () => signal.removeEventListener('abort', onAbort) }
}

/** Runs a synchronous native call, converting its errors. */
function callSync<T>(fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    throw toStrataError(e)
  }
}

export class RegistryClient {
  readonly #native: NativeClient
  /** The registry as references name it (`docker.io`, `localhost:5000`). */
  readonly registry: string

  private constructor(registry: string, n: NativeClient) {
    this.registry = registry
    this.#native = n
  }

  /**
   * A client for `registry`, configured from the store's `daemon.json` and certs dirs.
   * `noMirrors`: talk to the registry itself (push, login; mirrors serve pulls only).
   * `offlineToken`: ask token issuers for a refresh token as `docker login` does
   * (`offline_token=true`, `client_id=docker`); read it with {@link identityToken}.
   */
  static open(layout: Layout, registry: string, auth: RegistryAuth = {}, opts: { noMirrors?: boolean; offlineToken?: boolean } = {}): RegistryClient {
    // A bad registry name or daemon.json is a StrataError like any other native failure.
    const n = callSync(() => new native.NativeRegistryClient({
      registry,
      ...(opts.noMirrors ? { noMirrors: true } : {}),
      ...(opts.offlineToken ? { offlineToken: true } : {}),
      daemonConfig: layout.daemonConfig,
      certsDirs: layout.certsDirs,
      ...(auth.username !== undefined ? { username: auth.username } : {}),
      ...(auth.password !== undefined ? { password: auth.password } : {}),
      ...(auth.identityToken ? { identityToken: auth.identityToken } : {}),
      ...(auth.registryToken ? { registryToken: auth.registryToken } : {}),
      ...retryTuning(),
    }))
    return new RegistryClient(registry, n)
  }

  /** Sends a request and reads the answer (see the module docs for errors). */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    const { cancel, done } = cancelWhile(req.signal)
    try {
      const r = await call(() => this.#native.request({
        method: req.method,
        target: req.target,
        headers: Object.entries(req.headers ?? {}).map(([name, value]) => ({ name, value })),
        scopes: req.scopes ?? [],
        ...(req.body ? { body: req.body } : {}),
        ...(req.bodyFile ? { bodyFile: req.bodyFile } : {}),
        ...(req.accept ? { accept: req.accept } : {}),
        ...(req.maxBody !== undefined ? { maxBody: req.maxBody } : {}),
      }, cancel))
      const all = r.headers
      return {
        status: r.status,
        header: (name) => all.find((h) => h.name === name.toLowerCase())?.value,
        headers: (name) => all.filter((h) => h.name === name.toLowerCase()).map((h) => h.value),
        url: r.url,
        body: r.body,
        ...(r.sentDigest ? { sentDigest: r.sentDigest } : {}),
        ...(r.sentBytes !== undefined && r.sentBytes !== null ? { sentBytes: r.sentBytes } : {}),
      }
    } finally {
      done()
    }
  }

  /** The endpoints tried, in order (for diagnostics and tests). */
  endpoints(): { base: string; verify: boolean; mirror: boolean }[] {
    return this.#native.endpoints()
  }

  /**
   * The refresh token a token issuer handed out (asked for with `offlineToken`, or rotated when
   * the old one was used), else the identity token the client was given: what a login stores
   * as Docker's `identitytoken`.
   */
  identityToken(): string | undefined {
    return this.#native.identityToken() ?? undefined
  }

  /** Requests, token requests and retries so far. */
  stats(): { requests: number; tokenRequests: number; retries: number } {
    return this.#native.stats()
  }

  /** @internal the native client, for the streamed pull (ts/registry/pull.ts). */
  get native(): NativeClient {
    return this.#native
  }
}

/**
 * `STRATA_REGISTRY_RETRY_BASE_MS` shortens the backoff (tests of retries stay fast);
 * `STRATA_REGISTRY_IDLE_TIMEOUT_MS` the longest silence tolerated from a registry.
 */
function retryTuning(): { retryBaseMs?: number; idleTimeoutMs?: number } {
  const base = Number(process.env.STRATA_REGISTRY_RETRY_BASE_MS)
  const idle = Number(process.env.STRATA_REGISTRY_IDLE_TIMEOUT_MS)
  return {
    ...(Number.isFinite(base) && base >= 0 && process.env.STRATA_REGISTRY_RETRY_BASE_MS ? { retryBaseMs: base } : {}),
    ...(Number.isFinite(idle) && idle > 0 ? { idleTimeoutMs: idle } : {}),
  }
}
