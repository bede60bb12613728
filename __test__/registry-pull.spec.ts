/**
 * `pull` against the real distribution registry in its three modes (no auth; htpasswd behind TLS
 * with the test's CA, on [::1] so the certificate is verified; bearer tokens from the test's
 * ES256 issuer), through a fault-injecting proxy, and from a multi-platform index built here.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as os from 'node:os'
import { Store, StrataError, PullEvent } from '../ts'
import { RegistryClient } from '../ts/registry/client'
import { tmpDir, snapshot, cli, spawnCli } from './helpers/fs'
import { checkConsistent } from './helpers/consistency'
import { progressBar, pullRenderer } from '../ts/cli/pull-command'
import { richImage, busyboxImage } from './helpers/fixtures'
import { buildImage, sha256 } from './helpers/image'
import { tar } from './helpers/tar'
import { TestRegistry, FaultProxy, USER, PASSWORD, ociManifest, MT_OCI_INDEX } from './helpers/registry'

const base = fs.mkdtempSync(path.join(fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'strata-reg-'))
let plain: TestRegistry
let tls: TestRegistry
let token: TestRegistry
let shortToken: TestRegistry
const rich = richImage([])
const bb = busyboxImage([])
let richDigest = ''

test.before(async () => {
  plain = TestRegistry.start(path.join(base, 'plain'), 'plain')
  tls = TestRegistry.start(path.join(base, 'tls'), 'htpasswd', { host: '[::1]' })
  token = TestRegistry.start(path.join(base, 'token'), 'token')
  // Its first token is already expired for the registry; every token claims to live 6 s.
  shortToken = TestRegistry.start(path.join(base, 'token-short'), 'token', { expiresIn: 12, expiredFirst: 1 })
  richDigest = (await plain.pushImage('rich', '1', rich)).digest
  await plain.pushImage('bb', 'latest', bb)
  await tls.pushImage('rich', '1', rich)
  await token.pushImage('rich', '1', rich)
  await token.pushImage('bb', '1', bb)
})

test.after.always(() => {
  for (const r of [plain, tls, token, shortToken]) r?.stop()
  fs.rmSync(base, { recursive: true, force: true })
})

const errOf = async (p: Promise<unknown>): Promise<StrataError> => {
  try {
    await p
  } catch (e) {
    return e as StrataError
  }
  throw new Error('did not throw')
}

test('plain registry: layers, image ID, RepoDigests, Docker\'s lines; a second pull is up to date', async (t) => {
  const root = path.join(tmpDir(t), 'root')
  const store = await Store.open({ root })
  const ref = `${plain.host}/rich:1`
  const res = await store.pull(ref)
  t.is(res.images[0].id, rich.id)
  t.is(res.images[0].digest, richDigest)
  const insp = await store.images.inspect(ref)
  t.deepEqual((insp.RootFS as { Layers: string[] }).Layers, rich.diffIds)
  t.deepEqual(insp.RepoDigests, [`${plain.host}/rich@${richDigest}`])
  t.deepEqual(insp.RepoTags, [ref])
  const ids = rich.blobs.map((b) => sha256(b).slice(7, 19))
  t.is(res.lines[0], '1: Pulling from rich')
  for (const id of ids) {
    const mine = res.lines.filter((l) => l.startsWith(`${id}: `)).map((l) => l.slice(14))
    // 'Waiting' (Docker's line too) comes when the host's download slots are taken, here by the
    // other tests of this file pulling from the same registry at the same time.
    const waited = mine[1] === 'Waiting' ? ['Waiting'] : []
    t.deepEqual(mine, ['Pulling fs layer', ...waited, 'Verifying Checksum', 'Download complete', 'Pull complete'], id)
  }
  t.deepEqual(res.lines.slice(-2), [`Digest: ${richDigest}`, `Status: Downloaded newer image for ${ref}`])
  t.is(res.reference, ref)
  // Compressed blobs are kept by digest; uncompressed ones are the layer's own tar.
  for (const b of rich.blobs) {
    const kept = fs.existsSync(path.join(root, 'content/blobs/sha256', sha256(b).slice(7)))
    t.is(kept, b[0] === 0x1f || b[0] === 0x28)
  }
  const meta = JSON.parse(fs.readFileSync(path.join(root, 'image/overlay2/distribution/v2metadata-by-diffid/sha256', rich.diffIds[1].slice(7)), 'utf8'))
  t.deepEqual(meta, [{ Digest: sha256(rich.blobs[1]), SourceRepository: `${plain.host}/rich`, HMAC: '' }])
  t.deepEqual(fs.readdirSync(path.join(root, 'content/ingest')).filter((n) => !n.endsWith('.lock')), [])

  const again = await store.pull(ref)
  t.true(again.images[0].upToDate)
  t.deepEqual(again.lines, ['1: Pulling from rich', `Digest: ${richDigest}`, `Status: Image is up to date for ${ref}`])
  await store.close()
})

test('an up-to-date pull asks for the manifest once and for no blob', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  t.teardown(() => store.close())
  const ref = `${proxy.host}/rich:1`
  await store.pull(ref)
  t.true(proxy.count((e) => e.path.includes('/blobs/')) > 0)
  proxy.log.length = 0
  t.true((await store.pull(ref)).images[0].upToDate)
  t.is(proxy.count((e) => e.path.includes('/manifests/')), 1)
  t.is(proxy.count((e) => e.path.includes('/blobs/')), 0)
})

test('CLI: Using default tag, the lines, the full reference; -q prints only the reference', async (t) => {
  const root = path.join(tmpDir(t), 'root')
  const r = await cli(root, ['pull', `${plain.host}/bb`])
  t.is(r.code, 0, r.stderr)
  const lines = r.stdout.trimEnd().split('\n')
  const id = sha256(bb.blobs[0]).slice(7, 19)
  t.deepEqual(lines.slice(0, 2), ['Using default tag: latest', 'latest: Pulling from bb'])
  t.deepEqual(lines.slice(2, 6), [`${id}: Pulling fs layer`, `${id}: Verifying Checksum`, `${id}: Download complete`, `${id}: Pull complete`])
  t.regex(lines[6], /^Digest: sha256:[0-9a-f]{64}$/)
  t.deepEqual(lines.slice(7), [`Status: Downloaded newer image for ${plain.host}/bb:latest`, `${plain.host}/bb:latest`])
  const q = await cli(root, ['pull', '-q', `${plain.host}/bb`])
  t.is(q.stdout, `${plain.host}/bb:latest\n`)
  const d = await cli(root, ['images', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}'])
  t.is(d.stdout.trim(), `${plain.host}/bb latest ${lines[6].slice(8)}`)
})

test('pull by digest records only the digest; an unknown tag is NotFound with the registry\'s code', async (t) => {
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  const res = await store.pull(`${plain.host}/rich@${richDigest}`)
  t.is(res.images[0].id, rich.id)
  t.deepEqual((await store.images.list())[0].repoTags, [])
  t.deepEqual((await store.images.list())[0].repoDigests, [`${plain.host}/rich@${richDigest}`])
  t.is(res.reference, `${plain.host}/rich@${richDigest}`)
  const e = await errOf(store.pull(`${plain.host}/rich:nope`))
  t.is(e.code, 'NotFound')
  t.is(e.status, 404)
  t.is(e.registryCode, 'MANIFEST_UNKNOWN')
  const wrong = `sha256:${'0'.repeat(64)}`
  t.is((await errOf(store.pull(`${plain.host}/rich@${wrong}`))).code, 'NotFound')
  await store.close()
})

test('htpasswd behind TLS: verified with the CA from certs.d; wrong password is Unauthorized; an untrusted CA fails', async (t) => {
  const root = path.join(tmpDir(t), 'root')
  const store = await Store.open({ root })
  const ref = `${tls.host}/rich:1`
  const untrusted = await errOf(store.pull(ref, { auth: { username: USER, password: PASSWORD } }))
  t.is(untrusted.code, 'RegistryUnreachable', untrusted.message)
  t.regex(untrusted.message, /certificate|UnknownIssuer/i)
  tls.trustIn(root)
  const before = snapshot(root)
  const wrong = await errOf(store.pull(ref, { auth: { username: USER, password: 'nope' } }))
  t.is(wrong.code, 'Unauthorized')
  t.false(wrong.message.includes('nope'))
  const none = await errOf(store.pull(ref))
  t.is(none.code, 'Unauthorized')
  t.deepEqual(snapshot(root), before)
  const res = await store.pull(ref, { auth: { username: USER, password: PASSWORD } })
  t.is(res.images[0].id, rich.id)
  await store.close()
})

test('TLS client certificates from certs.d (*.cert + *.key, as docker reads them); a missing or foreign one is refused', async (t) => {
  const mtls = TestRegistry.start(path.join(base, 'mtls'), 'tls', { host: '[::1]', clientCa: true })
  t.teardown(() => mtls.stop())
  await mtls.pushImage('bb', '1', bb)
  const root = path.join(tmpDir(t), 'root')
  const store = await Store.open({ root })
  mtls.trustIn(root)
  const ref = `${mtls.host}/bb:1`
  const certsDir = path.join(root, 'certs.d', mtls.host)
  const before = snapshot(root)
  process.env.STRATA_REGISTRY_RETRY_BASE_MS = '10'
  t.teardown(() => { delete process.env.STRATA_REGISTRY_RETRY_BASE_MS })
  const none = await errOf(store.pull(ref))
  t.is(none.code, 'RegistryUnreachable', none.message)
  const pair = (from: string, stem: string): void => {
    fs.copyFileSync(path.join(from, 'client.cert'), path.join(certsDir, `${stem}.cert`))
    fs.copyFileSync(path.join(from, 'client.key'), path.join(certsDir, `${stem}.key`))
  }
  pair(mtls.wrongClientCerts!, 'client')
  const foreign = await errOf(store.pull(ref))
  t.is(foreign.code, 'RegistryUnreachable', foreign.message)
  const storeOnly = (snap: ReturnType<typeof snapshot>) => Object.fromEntries(Object.entries(snap).filter(([k]) => !k.startsWith('certs.d')))
  t.deepEqual(storeOnly(snapshot(root)), storeOnly(before), 'refused pulls leave the store as it was')
  fs.rmSync(path.join(certsDir, 'client.key'))
  const half = await errOf(store.pull(ref))
  t.is(half.code, 'InvalidArgument', half.message)
  t.regex(half.message, /missing key .*client\.key/)
  pair(mtls.clientCerts!, 'client')
  const res = await store.pull(ref)
  t.is(res.images[0].id, bb.id)
  await store.close()
})

test('token auth: one token request per scope set, refreshed when the registry refuses an expired one', async (t) => {
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  const auth = { username: USER, password: PASSWORD }
  const before = await token.tokenStats()
  await store.pull(`${token.host}/rich:1`, { auth })
  const after = await token.tokenStats()
  t.is(after.requests - before.requests, 1, 'manifest, config and four layers share one token')
  // A token the registry refuses (expired) is fetched anew once; one about to expire too.
  const client = RegistryClient.open(store.context.layout, shortToken.host, auth)
  const get = () => client.request({ method: 'GET', target: '/v2/' })
  const stats0 = (await shortToken.tokenStats()).requests
  t.is((await get()).status, 200)
  t.is(client.stats().tokenRequests, 2, 'the refused token was replaced')
  t.is((await get()).status, 200)
  t.is(client.stats().tokenRequests, 2, 'a fresh token is reused')
  // The token claims 12 s and is refreshed 5 s before its expiry: fresh for 7 s (slack for a
  // loaded machine between the two requests above), then refreshed.
  await new Promise((r) => setTimeout(r, 7500))
  t.is((await get()).status, 200)
  t.is(client.stats().tokenRequests, 3, 'a token within 5 s of its expiry is refreshed before use')
  t.is((await shortToken.tokenStats()).requests - stats0, 3)
  const e = await errOf(store.pull(`${token.host}/bb:1`, { auth: { username: USER, password: 'wrong' } }))
  t.is(e.code, 'Unauthorized')
  t.is((await errOf(store.pull(`${token.host}/bb:1`))).code, 'Unauthorized')
  await store.close()
})

test('a multi-platform index resolves to the host platform and to --platform; attestations are skipped', async (t) => {
  const arm = buildImage({ layers: [tar([{ name: 'arch', data: 'arm64\n' }])], config: { Cmd: ['arm'] } })
  const armCfg = JSON.parse(arm.config.toString())
  armCfg.architecture = 'arm64'
  armCfg.variant = 'v8'
  arm.config = Buffer.from(JSON.stringify(armCfg))
  arm.id = sha256(arm.config)
  const amd = buildImage({ layers: [tar([{ name: 'arch', data: 'amd64\n' }])], config: { Cmd: ['amd'] } })
  const armM = await plain.pushImage('multi', undefined, arm)
  const amdM = await plain.pushImage('multi', undefined, amd)
  const attest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: amd.id, size: amd.config.length }, layers: [] }))
  await plain.pushManifest('multi', sha256(attest), attest, 'application/vnd.oci.image.manifest.v1+json')
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MT_OCI_INDEX, manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(attest), size: attest.length, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: armM.digest, size: armM.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amdM.digest, size: amdM.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  }))
  const indexDigest = await plain.pushManifest('multi', 'v1', index, MT_OCI_INDEX)
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  const host = await store.pull(`${plain.host}/multi:v1`)
  t.is(host.images[0].id, amd.id)
  t.is(host.images[0].digest, indexDigest)
  t.deepEqual((await store.images.inspect(amd.id)).RepoDigests, [`${plain.host}/multi@${indexDigest}`])
  const other = await store.pull(`${plain.host}/multi:v1`, { platform: 'linux/arm64' })
  t.is(other.images[0].id, arm.id)
  t.is((await store.images.inspect(`${plain.host}/multi:v1`)).Id, arm.id)
  const none = await errOf(store.pull(`${plain.host}/multi:v1`, { platform: 'linux/s390x' }))
  t.is(none.code, 'NotFound')
  t.is(none.message, 'no matching manifest for linux/s390x in the manifest list entries')
  t.is((await errOf(store.pull(`${plain.host}/multi:v1`, { platform: 'bogus' }))).code, 'InvalidArgument')
  void ociManifest
  await store.close()
})

test.serial('faults: 500s and 429 with Retry-After are retried; a blob cut in half resumes with Range', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  const big = rich.blobs.reduce((a, b) => (b.length > a.length ? b : a))
  let n = 0
  let cut = false
  proxy.faults = (req) => {
    n++
    if (req.url?.includes('/manifests/') && n <= 2) return { kind: 'status', status: 503 }
    if (req.url?.includes('/manifests/') && n === 3) return { kind: 'status', status: 429, headers: { 'Retry-After': '1' } }
    if (req.url?.endsWith(sha256(big)) && !cut) {
      cut = true
      return { kind: 'cut', after: Math.floor(big.length / 2) }
    }
    return undefined
  }
  const started = Date.now()
  const res = await store.pull(`${proxy.host}/rich:1`)
  t.is(res.images[0].id, rich.id)
  t.true(Date.now() - started >= 1000, 'Retry-After was honoured')
  const bigGets = proxy.log.filter((e) => e.path.endsWith(sha256(big)))
  t.is(bigGets.length, 2)
  t.is(bigGets[1].range, `bytes=${Math.floor(big.length / 2)}-`)
  const bytes = bigGets.reduce((a, e) => a + e.bytes, 0)
  t.true(bytes <= big.length * 1.1, `${bytes} bytes for a ${big.length}-byte blob`)
})

/** An HTTP date `secs` seconds ahead, in IMF-fixdate or the obsolete RFC 850 form. */
function httpDate(secs: number, form: 'imf' | 'rfc850'): string {
  const d = new Date(Date.now() + secs * 1000)
  if (form === 'imf') return d.toUTCString()
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
  const p2 = (n: number): string => String(n).padStart(2, '0')
  const mon = d.toUTCString().split(' ')[2]
  return `${days[d.getUTCDay()]}, ${p2(d.getUTCDate())}-${mon}-${p2(d.getUTCFullYear() % 100)} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} GMT`
}

test.serial('faults: Retry-After as an HTTP date (IMF-fixdate and RFC 850) is waited for', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  let n = 0
  proxy.faults = (req) => {
    if (!req.url?.includes('/manifests/')) return undefined
    n++
    if (n === 1) return { kind: 'status', status: 429, headers: { 'Retry-After': httpDate(3, 'imf') } }
    if (n === 2) return { kind: 'status', status: 429, headers: { 'Retry-After': httpDate(3, 'rfc850') } }
    return undefined
  }
  const res = await store.pull(`${proxy.host}/bb:latest`)
  t.is(res.images[0].id, bb.id)
  const manifests = proxy.log.filter((e) => e.path.includes('/manifests/'))
  t.deepEqual(manifests.slice(0, 3).map((e) => e.status), [429, 429, 200])
  // Dates have whole seconds: 3 s ahead is at least 2 s of waiting (a plain backoff is ~0.2 s).
  for (const i of [1, 2]) t.true(manifests[i].at - manifests[i - 1].at >= 1900, `wait ${i}: ${manifests[i].at - manifests[i - 1].at} ms`)
  await store.close()
})

test.serial('faults: a server that ignores Range restarts the blob from zero and nothing is corrupted', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  const big = rich.blobs.reduce((a, b) => (b.length > a.length ? b : a))
  let cut = false
  proxy.faults = (req) => {
    if (!req.url?.endsWith(sha256(big))) return undefined
    if (!cut) {
      cut = true
      return { kind: 'cut', after: Math.floor(big.length / 2) }
    }
    return { kind: 'ignore-range' }
  }
  const res = await store.pull(`${proxy.host}/rich:1`)
  t.is(res.images[0].id, rich.id)
  const gets = proxy.log.filter((e) => e.path.endsWith(sha256(big)))
  t.true(gets.length >= 2)
  t.is(gets[gets.length - 1].status, 200)
  const view = await store.images.view(`${proxy.host}/rich:1`)
  t.is((await view.readFile('/etc/motd')).toString(), 'hello from layer 1\n')
})

test.serial('faults: a registry failing for good gives RegistryError with its status and leaves the store as it was', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const root = path.join(tmpDir(t), 'root')
  const store = await Store.open({ root })
  const before = snapshot(root)
  proxy.faults = (req) => (req.url?.includes('/blobs/') ? { kind: 'status', status: 500, body: '<html>oops</html>' } : undefined)
  process.env.STRATA_REGISTRY_RETRY_BASE_MS = '10'
  t.teardown(() => { delete process.env.STRATA_REGISTRY_RETRY_BASE_MS })
  const e = await errOf(store.pull(`${proxy.host}/rich:1`))
  t.is(e.code, 'RegistryError')
  t.is(e.status, 500)
  t.regex(e.message, /HTML/)
  t.deepEqual(snapshot(root), before)
  await store.close()
})

test.serial('abort (mid-transfer, or while a blob hangs) and a throwing onProgress: each rejects, the store as it was', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const root = path.join(tmpDir(t), 'root')
  const store = await Store.open({ root })
  const before = snapshot(root)
  const ac = new AbortController()
  proxy.faults = (req) => {
    if (req.url?.includes('/blobs/') && !req.url.endsWith(rich.id)) setTimeout(() => ac.abort(), 5)
    return undefined
  }
  const e = await errOf(store.pull(`${proxy.host}/rich:1`, { signal: ac.signal }))
  t.is(e.code, 'Aborted')
  t.deepEqual(snapshot(root), before)

  // The registry never answers for one blob: the abort, not the registry, ends the pull.
  const hung = new AbortController()
  const big = rich.blobs.reduce((a, b) => (b.length > a.length ? b : a))
  proxy.faults = (req) => {
    if (!req.url?.endsWith(sha256(big))) return undefined
    setImmediate(() => hung.abort())
    return { kind: 'hang' }
  }
  const aborted = await errOf(store.pull(`${proxy.host}/rich:1`, { signal: hung.signal }))
  t.is(aborted.code, 'Aborted')

  // A callback that throws on the first bytes: the pull rejects with what it threw (as every
  // operation does), and the callback is not called again.
  proxy.faults = () => undefined
  const seen: PullEvent[] = []
  const boom = new Error('callback failed')
  t.is(await errOf(store.pull(`${proxy.host}/rich:1`, {
    onProgress: (ev) => {
      seen.push(ev)
      if (ev.status === 'Downloading') throw boom
    },
  })), boom as unknown as StrataError)
  t.is(seen.filter((ev) => ev.status === 'Downloading').length, 1, 'no call after the throw')
  t.is(seen[seen.length - 1].status, 'Downloading')
  // Once the unwinding in the background is done too (close() waits for it), the store is as
  // it was, but for this process's writer mark, which close() removes.
  await store.close()
  const open = (snap: ReturnType<typeof snapshot>) => Object.fromEntries(Object.entries(snap).filter(([k]) => !k.startsWith('writers/')))
  t.deepEqual(snapshot(root), open(before))
})

test('progress only goes forward: per layer Downloading bytes rise, then Verifying Checksum, Download complete, a full Extracting bar, Pull complete', async (t) => {
  const root = path.join(tmpDir(t), 'root')
  const store = await Store.open({ root })
  t.teardown(() => store.close())
  const events: PullEvent[] = []
  await store.pull(`${plain.host}/rich:1`, { onProgress: (e) => events.push(e) })
  for (const b of rich.blobs) {
    const id = sha256(b).slice(7, 19)
    const mine = events.filter((e) => e.id === id)
    const bytes = mine.filter((e) => e.status === 'Downloading').map((e) => e.current!)
    t.deepEqual(bytes, [...bytes].sort((x, y) => x - y), id)
    t.is(new Set(bytes).size, bytes.length, `${id}: no repeats`)
    const after = mine.slice(mine.findIndex((e) => e.status === 'Verifying Checksum'))
    t.deepEqual(after.map((e) => e.status), ['Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete'], id)
    t.like(after[2], { current: b.length, total: b.length })
  }
})

test.serial('kill -9 in the middle of a pull: the store is consistent, and the next pull resumes the blob', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const root = path.join(tmpDir(t), 'root')
  const big = rich.blobs.reduce((a, b) => (b.length > a.length ? b : a))
  const half = Math.floor(big.length / 2)
  let first = true
  proxy.faults = (req) => {
    if (!req.url?.endsWith(sha256(big))) return undefined
    if (first) {
      first = false
      return { kind: 'cut', after: half }
    }
    return { kind: 'hang' }
  }
  const { child, closed } = spawnCli(root, ['pull', `${proxy.host}/rich:1`])
  const partial = path.join(root, 'content/ingest', sha256(big).slice(7))
  const deadline = Date.now() + 60_000
  while (!(fs.existsSync(partial) && fs.statSync(partial).size >= half) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  t.true(fs.existsSync(partial), 'the partial blob is there')
  child.kill('SIGKILL')
  await closed
  await checkConsistent(t, root)
  t.is(fs.statSync(partial).size, half, 'the partial survives the crash and the cleanup pass')

  proxy.faults = () => undefined
  proxy.log = []
  const store = await Store.open({ root })
  const res = await store.pull(`${proxy.host}/rich:1`)
  t.is(res.images[0].id, rich.id)
  const gets = proxy.log.filter((e) => e.path.endsWith(sha256(big)))
  t.is(gets.length, 1)
  t.is(gets[0].range, `bytes=${half}-`)
  t.is(gets[0].bytes, big.length - half)
  t.false(fs.existsSync(partial))
  await store.close()
})

test('partial blobs older than a day are removed by the cleanup pass', async (t) => {
  const root = path.join(tmpDir(t), 'root')
  await (await Store.open({ root })).close()
  const ingest = path.join(root, 'content/ingest')
  const old = path.join(ingest, 'a'.repeat(64))
  const fresh = path.join(ingest, 'b'.repeat(64))
  fs.writeFileSync(old, 'old')
  fs.writeFileSync(fresh, 'fresh')
  const dayAgo = (Date.now() - 25 * 3600 * 1000) / 1000
  fs.utimesSync(old, dayAgo, dayAgo)
  const store = await Store.open({ root })
  t.is(store.recovered.removedPartials, 1)
  t.deepEqual(fs.readdirSync(ingest), ['b'.repeat(64)])
  await store.close()
})

test('Docker Hub names are pulled from the registry-mirrors of <root>/daemon.json', async (t) => {
  await plain.pushImage('strata-test/bb', 'latest', bb)
  const root = path.join(tmpDir(t), 'root')
  fs.mkdirSync(root, { recursive: true })
  fs.writeFileSync(path.join(root, 'daemon.json'), JSON.stringify({ 'registry-mirrors': [`http://${plain.host}`] }))
  const store = await Store.open({ root })
  const res = await store.pull('strata-test/bb')
  t.is(res.images[0].id, bb.id)
  t.is(res.reference, 'docker.io/strata-test/bb:latest')
  t.deepEqual((await store.images.list())[0].repoTags, ['strata-test/bb:latest'])
  await store.close()
})

test('HTTP_PROXY carries the requests', async (t) => {
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  const root = path.join(tmpDir(t), 'root')
  const r = await cli(root, ['pull', '-q', `${plain.host}/bb`], undefined, { HTTP_PROXY: `http://${proxy.host}`, HTTPS_PROXY: `http://${proxy.host}`, NO_PROXY: '' })
  t.is(r.code, 0, r.stderr)
  t.true(proxy.count((e) => e.path.includes('/v2/bb/manifests/latest')) >= 1)
  t.true(proxy.count((e) => e.path.includes('/blobs/')) >= 1)
})

test('-a pulls every tag; the status names the repository', async (t) => {
  await plain.pushImage('alltags', 'one', bb)
  await plain.pushImage('alltags', 'two', rich)
  const store = await Store.open({ root: path.join(tmpDir(t), 'root') })
  const res = await store.pull(`${plain.host}/alltags`, { allTags: true })
  t.deepEqual(res.images.map((i) => [i.reference, i.id]), [[`${plain.host}/alltags:one`, bb.id], [`${plain.host}/alltags:two`, rich.id]])
  t.deepEqual(res.lines.filter((l) => / Pulling from /.test(l)), ['one: Pulling from alltags', 'two: Pulling from alltags'])
  t.is(res.lines.filter((l) => l.startsWith('Digest: ')).length, 2)
  t.is(res.lines[res.lines.length - 1], `Status: Downloaded newer image for ${plain.host}/alltags`)
  t.is(res.reference, `${plain.host}/alltags`)
  t.is((await errOf(store.pull(`${plain.host}/alltags:one`, { allTags: true }))).code, 'InvalidArgument')
  await store.close()
})

test('the terminal view draws Docker\'s bar and byte counts, and redraws a layer in place', (t) => {
  t.is(progressBar(1_200_000, 3_456_789, 120), `[=================>                                 ]    1.2MB/3.457MB`)
  t.is(progressBar(3_456_789, 3_456_789, 120), `[==================================================>]  3.457MB/3.457MB`)
  t.is(progressBar(500, 1000, 80), '    500B/1kB')
  let out = ''
  const r = pullRenderer((s) => { out += s }, true, 120)
  r({ id: 'latest', status: 'Pulling from x' })
  r({ id: 'aaaaaaaaaaaa', status: 'Pulling fs layer' })
  r({ id: 'bbbbbbbbbbbb', status: 'Pulling fs layer' })
  r({ id: 'aaaaaaaaaaaa', status: 'Downloading', current: 10, total: 10 })
  t.true(out.includes('\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: Downloading [==================================================>]      10B/10B'), JSON.stringify(out))
  let plainOut = ''
  const p = pullRenderer((s) => { plainOut += s }, false)
  p({ id: 'aaaaaaaaaaaa', status: 'Downloading', current: 5, total: 10 })
  p({ id: 'aaaaaaaaaaaa', status: 'Download complete' })
  t.is(plainOut, 'aaaaaaaaaaaa: Download complete\n')
})
