/**
 * Registries for tests: the real distribution registry in its three modes
 * (`scripts/peers/registry.sh`), a pusher that uploads test images to it (monolithic blob
 * uploads, any auth mode, TLS with the test's CA), a fault-injecting proxy in front of it and a
 * hostile registry that serves whatever a test wants. Everything listens on loopback, on free
 * ports, and stops when the test file ends.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as http from 'node:http'
import * as https from 'node:https'
import { execFileSync } from 'node:child_process'
import { REPO } from './fs'
import { BuiltImage, sha256 } from './image'
import { LocalServer } from './local-server'

const SCRIPT = path.join(REPO, 'scripts/peers/registry.sh')

export type RegistryMode = 'plain' | 'htpasswd' | 'tls' | 'token'
export const USER = 'strata'
export const PASSWORD = 'strata-secret'

export interface RegistryOptions {
  host?: string
  jwtTtl?: number
  expiresIn?: number
  expiredFirst?: number
  garbageTokens?: boolean
  /** Token mode: a refresh token used is replaced by a new one (and stops working). */
  rotateRefresh?: boolean
  /** TLS modes: the registry demands a client certificate signed by a CA the script makes. */
  clientCa?: boolean
}

/** One token request as the test issuer saw it (scripts/peers/token-issuer.js). */
export interface TokenRequest {
  method: 'GET' | 'POST'
  grant: 'basic' | 'anonymous' | 'password' | 'refresh_token' | string
  clientId: string
  offline: boolean
  account: string
  scopes: string[]
  refreshIssued: boolean
  refused?: boolean
}

export class TestRegistry {
  host = ''
  certs?: string
  tokenUrl?: string
  /** With `clientCa`: a dir with client.cert + client.key the registry accepts, and one it refuses. */
  clientCerts?: string
  wrongClientCerts?: string
  constructor(readonly dir: string, readonly mode: RegistryMode) {}

  static start(dir: string, mode: RegistryMode, opts: RegistryOptions = {}): TestRegistry {
    const r = new TestRegistry(dir, mode)
    const args = ['start', dir, mode]
    if (opts.host) args.push('--host', opts.host)
    if (opts.jwtTtl !== undefined) args.push('--jwt-ttl', String(opts.jwtTtl))
    if (opts.expiresIn !== undefined) args.push('--expires-in', String(opts.expiresIn))
    if (opts.expiredFirst !== undefined) args.push('--expired-first', String(opts.expiredFirst))
    if (opts.garbageTokens) args.push('--garbage-tokens')
    if (opts.rotateRefresh) args.push('--rotate-refresh')
    if (opts.clientCa) args.push('--client-ca')
    const out = execFileSync('bash', [SCRIPT, ...args], { encoding: 'utf8' })
    r.host = /REGISTRY=(\S+)/.exec(out)![1]
    r.certs = /^CERTS=(\S+)/m.exec(out)?.[1]
    r.clientCerts = /^CLIENT_CERTS=(\S+)/m.exec(out)?.[1]
    r.wrongClientCerts = /^WRONG_CLIENT_CERTS=(\S+)/m.exec(out)?.[1]
    r.tokenUrl = /TOKEN_URL=(\S+)/.exec(out)?.[1]
    return r
  }

  stop(): void {
    try { execFileSync('bash', [SCRIPT, 'stop', this.dir], { stdio: 'ignore' }) } catch { /* stopped */ }
  }

  get scheme(): string { return this.mode === 'htpasswd' || this.mode === 'tls' ? 'https' : 'http' }

  /** Token-issuer counters: requests, requests per scope set, and each request. */
  async tokenStats(): Promise<{ requests: number; scopeSets: Record<string, number>; log: TokenRequest[] }> {
    return JSON.parse((await get(`${this.tokenUrl}/stats`)).body.toString())
  }

  /** Installs the registry's CA where a store looks for it: `<root>/certs.d/<host>/ca.crt`. */
  trustIn(root: string, host = this.host): void {
    const d = path.join(root, 'certs.d', host)
    fs.mkdirSync(d, { recursive: true })
    fs.copyFileSync(path.join(this.certs!, 'ca.crt'), path.join(d, 'ca.crt'))
  }

  /** Authorization for the test's own pusher (never used by strata). */
  async authorization(repo: string): Promise<string | undefined> {
    if (this.mode === 'plain' || this.mode === 'tls') return undefined
    const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`
    if (this.mode === 'htpasswd') return basic
    const r = await get(`${this.tokenUrl}/token?service=strata-test&scope=repository:${repo}:pull,push`, { authorization: basic })
    return `Bearer ${JSON.parse(r.body.toString()).token}`
  }

  async request(method: string, target: string, body?: Buffer, headers: Record<string, string> = {}, repo?: string): Promise<Res> {
    const auth = repo ? await this.authorization(repo) : undefined
    return send(method, `${this.scheme}://${this.host}${target}`, body, { ...headers, ...(auth ? { authorization: auth } : {}) }, this.certs, this.clientCerts)
  }

  async pushBlob(repo: string, data: Buffer): Promise<string> {
    const digest = sha256(data)
    const head = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`, undefined, {}, repo)
    if (head.status === 200) return digest
    const start = await this.request('POST', `/v2/${repo}/blobs/uploads/`, undefined, {}, repo)
    if (start.status !== 202) throw new Error(`upload start: ${start.status} ${start.body}`)
    const loc = new URL(start.headers.location as string, `${this.scheme}://${this.host}`)
    loc.searchParams.set('digest', digest)
    const put = await this.request('PUT', loc.pathname + loc.search, data, { 'content-type': 'application/octet-stream' }, repo)
    if (put.status !== 201) throw new Error(`upload ${digest}: ${put.status} ${put.body}`)
    return digest
  }

  async pushManifest(repo: string, ref: string, manifest: Buffer, mediaType: string): Promise<string> {
    const r = await this.request('PUT', `/v2/${repo}/manifests/${ref}`, manifest, { 'content-type': mediaType }, repo)
    if (r.status !== 201) throw new Error(`manifest ${repo}:${ref}: ${r.status} ${r.body}`)
    return sha256(manifest)
  }

  /** Pushes a test image (OCI manifest); returns the manifest and its digest. */
  async pushImage(repo: string, tag: string | undefined, img: BuiltImage): Promise<{ manifest: Buffer; digest: string }> {
    const manifest = ociManifest(img)
    await this.pushBlob(repo, img.config)
    for (const b of img.blobs) await this.pushBlob(repo, b)
    const digest = await this.pushManifest(repo, tag ?? sha256(manifest), manifest, MT_OCI_MANIFEST)
    return { manifest, digest }
  }
}

export const MT_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const MT_OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

export function layerMediaType(b: Buffer): string {
  if (b[0] === 0x1f && b[1] === 0x8b) return 'application/vnd.oci.image.layer.v1.tar+gzip'
  if (b.readUInt32LE(0) === 0xfd2fb528) return 'application/vnd.oci.image.layer.v1.tar+zstd'
  return 'application/vnd.oci.image.layer.v1.tar'
}

export function ociManifest(img: BuiltImage): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MT_OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img.id, size: img.config.length },
    layers: img.blobs.map((b) => ({ mediaType: layerMediaType(b), digest: sha256(b), size: b.length })),
  }))
}

export interface Res { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

function send(method: string, url: string, body: Buffer | undefined, headers: Record<string, string>, certs?: string, clientCerts?: string): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const mod = u.protocol === 'https:' ? https : http
    const req = mod.request({
      method, hostname: u.hostname.replace(/^\[|\]$/g, ''), port: u.port, path: u.pathname + u.search,
      headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
      ...(certs ? { ca: fs.readFileSync(path.join(certs, 'ca.crt')) } : {}),
      ...(clientCerts ? { cert: fs.readFileSync(path.join(clientCerts, 'client.cert')), key: fs.readFileSync(path.join(clientCerts, 'client.key')) } : {}),
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

export function get(url: string, headers: Record<string, string> = {}): Promise<Res> {
  return send('GET', url, undefined, headers)
}

/** What the fault proxy does to one request (decided per request, in order). */
export type Fault =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, but close the connection after `after` bytes of the response body. */
  | { kind: 'cut'; after: number }
  /** Forward without the request's Range header (a server that ignores Range). */
  | { kind: 'ignore-range' }
  /** Never answer (the connection stays open until the proxy stops). */
  | { kind: 'hang' }

/**
 * A fault-injecting HTTP proxy in front of a plain registry: `faults(req)` picks what happens to
 * each request (undefined: forwarded unchanged). Counts requests by kind and body bytes sent.
 */
export class FaultProxy extends LocalServer {
  /** Each request: `at` is when it arrived (ms since the epoch). */
  log: { method: string; path: string; status: number; bytes: number; range?: string; at: number }[] = []
  faults: (req: http.IncomingMessage) => Fault | undefined = () => undefined

  constructor(readonly upstream: string) {
    super()
  }

  count(pred: (e: FaultProxy['log'][number]) => boolean): number {
    return this.log.filter(pred).length
  }

  blobBytes(): number {
    return this.log.filter((e) => e.path.includes('/blobs/')).reduce((a, e) => a + e.bytes, 0)
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const fault = this.faults(req)
    const entry = { method: req.method ?? '', path: req.url ?? '', status: 0, bytes: 0, at: Date.now(), ...(req.headers.range ? { range: req.headers.range } : {}) }
    this.log.push(entry)
    if (fault?.kind === 'status') {
      entry.status = fault.status
      res.writeHead(fault.status, { 'content-type': 'text/plain', ...(fault.headers ?? {}) })
      res.end(fault.body ?? '')
      return
    }
    if (fault?.kind === 'hang') return
    // The Host the client used: upload Locations the registry builds from it lead back here.
    const headers = { ...req.headers }
    if (fault?.kind === 'ignore-range') delete headers.range
    const up = http.request({ host: this.upstream.split(':')[0], port: Number(this.upstream.split(':')[1]), method: req.method, path: req.url, headers }, (ur) => {
      entry.status = ur.statusCode ?? 0
      res.writeHead(ur.statusCode ?? 502, ur.headers)
      ur.on('data', (c: Buffer) => {
        if (fault?.kind === 'cut' && entry.bytes + c.length >= fault.after) {
          const keep = fault.after - entry.bytes
          entry.bytes += keep
          res.write(c.subarray(0, keep), () => res.socket?.destroy())
          ur.destroy()
          return
        }
        entry.bytes += c.length
        res.write(c)
      })
      ur.on('end', () => res.end())
      ur.on('error', () => res.socket?.destroy())
    })
    up.on('error', () => res.socket?.destroy())
    req.pipe(up)
  }
}

/** One canned answer of the hostile registry. */
export interface Canned { status?: number; headers?: Record<string, string>; body: Buffer | string }

/**
 * A registry that answers from a table (`routes[path]`); `/v2/` answers 200, anything else 404
 * with a registry error body. Used for content a real registry would refuse to store.
 */
export class HostileRegistry extends LocalServer {
  routes = new Map<string, Canned | ((req: http.IncomingMessage) => Canned)>()

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const p = (req.url ?? '').split('?')[0]
    const route = p === '/v2/' ? { body: '{}', headers: { 'content-type': 'application/json' } } : this.routes.get(p)
    const c = typeof route === 'function' ? route(req) : route
    if (!c) {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }))
      return
    }
    const body = typeof c.body === 'string' ? Buffer.from(c.body) : c.body
    res.writeHead(c.status ?? 200, { 'content-length': String(body.length), ...(c.headers ?? {}) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  /** Serves an image as `repo:tag` (blobs as given, so they may lie). */
  serveImage(repo: string, tag: string, manifest: Buffer, blobs: Map<string, Buffer>, mediaType = MT_OCI_MANIFEST): void {
    this.routes.set(`/v2/${repo}/manifests/${tag}`, { body: manifest, headers: { 'content-type': mediaType } })
    this.routes.set(`/v2/${repo}/manifests/${sha256(manifest)}`, { body: manifest, headers: { 'content-type': mediaType } })
    for (const [d, b] of blobs) this.routes.set(`/v2/${repo}/blobs/${d}`, { body: b, headers: { 'content-type': 'application/octet-stream' } })
  }
}
