/**
 * push against the real distribution registry (plain, and htpasswd behind TLS), judged by the
 * real Docker Engine (`docker push` output shape, `docker pull` + `docker run` of what strata
 * pushed) and by skopeo; kept blobs keep their digests; a layer strata made is compressed once.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { tmpDir, cli, spawnCli } from './helpers/fs'
import { checkConsistent } from './helpers/consistency'
import { writeArchive, buildImage, sha256 } from './helpers/image'
import { busyboxImage, richImage } from './helpers/fixtures'
import { tar } from './helpers/tar'
import { TestRegistry, FaultProxy, PASSWORD, USER } from './helpers/registry'
import { Dockerd } from './helpers/dockerd'
import { Store, StrataError, PushProgress } from '../ts'

const work = fs.mkdtempSync(path.join('/var/tmp', 'strata-push-'))
let plain: TestRegistry
let secure: TestRegistry
const docker = new Dockerd('registry-push')

test.before(() => {
  plain = TestRegistry.start(path.join(work, 'plain'), 'plain')
  secure = TestRegistry.start(path.join(work, 'secure'), 'htpasswd')
  docker.start()
})
test.after.always(() => {
  plain?.stop()
  secure?.stop()
  docker.stop()
  fs.rmSync(work, { recursive: true, force: true })
})

/** A store with busybox loaded (an uncompressed docker-archive: its layer has no blob yet). */
async function storeWith(t: Parameters<typeof tmpDir>[0], images = [busyboxImage(['busybox:latest'])]) {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const cfg = path.join(dir, 'docker-config')
  writeArchive(path.join(dir, 'in.tar'), images, 'docker25')
  const r = await cli(root, ['load', '-i', path.join(dir, 'in.tar')], undefined, { DOCKER_CONFIG: cfg })
  t.is(r.code, 0, r.stderr)
  return { dir, root, cfg, env: { DOCKER_CONFIG: cfg } }
}

test('push: Docker\'s lines, Layer already exists the second time, Mounted from another repository, RepoDigest recorded, the compressed layer kept', async (t) => {
  const { root, env } = await storeWith(t)
  const name = `${plain.host}/bb`
  t.is((await cli(root, ['tag', 'busybox', `${name}:v1`], undefined, env)).code, 0)
  const first = await cli(root, ['push', `${name}:v1`], undefined, env)
  t.is(first.code, 0, first.stderr)
  const bb = busyboxImage()
  const short = bb.diffIds[0].slice(7, 19)
  const m = new RegExp(`^The push refers to repository \\[${name}\\]\\n${short}: Preparing\\n${short}: Pushed\\nv1: digest: (sha256:[0-9a-f]{64}) size: (\\d+)\\n$`).exec(first.stdout)
  t.truthy(m, first.stdout)
  const digest = m![1]
  // What the registry has under the tag is what strata says it pushed: a Docker schema2 manifest.
  const got = await plain.request('GET', `/v2/bb/manifests/v1`, undefined, { accept: 'application/vnd.docker.distribution.manifest.v2+json' })
  t.is(sha256(got.body), digest)
  t.is(String(got.body.length), m![2])
  const manifest = JSON.parse(got.body.toString())
  t.is(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json')
  t.is(manifest.config.digest, bb.id)
  t.is(got.body.toString(), JSON.stringify(manifest, null, 3), 'Docker\'s manifest serialisation')

  // The layer was compressed once and kept: its blob is in the content store under the digest pushed.
  const layerDigest = manifest.layers[0].digest as string
  const store = await Store.open({ root })
  const info = (await store.images.inspect(`${name}:v1`)) as { RepoDigests: string[] }
  t.deepEqual(info.RepoDigests, [`${name}@${digest}`])
  await store.close()
  t.true(fs.existsSync(path.join(root, 'content/blobs/sha256', layerDigest.slice(7))))
  t.is(sha256(fs.readFileSync(path.join(root, 'content/blobs/sha256', layerDigest.slice(7)))), layerDigest)

  const again = await cli(root, ['push', `${name}:v1`], undefined, env)
  t.is(again.stdout, `The push refers to repository [${name}]\n${short}: Preparing\n${short}: Layer already exists\nv1: digest: ${digest} size: ${m![2]}\n`)

  t.is((await cli(root, ['tag', 'busybox', `${name}-copy:v2`], undefined, env)).code, 0)
  const mounted = await cli(root, ['push', `${name}-copy:v2`], undefined, env)
  t.is(mounted.stdout, `The push refers to repository [${name}-copy]\n${short}: Preparing\n${short}: Mounted from bb\nv2: digest: ${digest} size: ${m![2]}\n`)

  // -a pushes every tag, in order; -q prints the reference only.
  t.is((await cli(root, ['tag', 'busybox', `${name}:v0`], undefined, env)).code, 0)
  const all = await cli(root, ['push', '-a', name], undefined, env)
  t.is(all.stdout.split('\n').filter((l) => l.includes(': digest:')).map((l) => l.split(':')[0]).join(','), 'v0,v1')
  t.is((await cli(root, ['push', '-q', `${name}:v1`], undefined, env)).stdout, `${name}:v1\n`)

  // Docker's messages for what cannot be pushed.
  const noTag = await cli(root, ['push', name], undefined, env)
  t.is(noTag.code, 1)
  t.is(noTag.stdout, `Using default tag: latest\nThe push refers to repository [${name}]\n`)
  t.is(noTag.stderr, `tag does not exist: ${name}:latest\n`)
  const none = await cli(root, ['push', `${plain.host}/nope:1`], undefined, env)
  t.is(none.stderr, `An image does not exist locally with the tag: ${plain.host}/nope\n`)
  t.regex((await cli(root, ['push', '-a', `${name}:v1`], undefined, env)).stderr, /tag can't be used with --all-tags\/-a/)
})

test('what strata pushed: docker pull + docker run work, skopeo inspect accepts it; docker push prints the same lines', async (t) => {
  const { root, env } = await storeWith(t)
  const name = `${plain.host}/judge`
  await cli(root, ['tag', 'busybox', `${name}:1`], undefined, env)
  const r = await cli(root, ['push', `${name}:1`], undefined, env)
  t.is(r.code, 0, r.stderr)
  docker.docker('pull', `${name}:1`)
  t.is(docker.docker('run', '--rm', '--network', 'none', `${name}:1`, 'sh', '-c', 'echo pushed by strata').trim(), 'pushed by strata')
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${name}:1`], { encoding: 'utf8' }))
  t.deepEqual(inspected.Layers.length, 1)
  t.is(inspected.Digest, /digest: (\S+)/.exec(r.stdout)![1])

  // docker push of the same image to a fresh repository: the same shape of lines.
  docker.docker('tag', `${name}:1`, `${plain.host}/judge-docker:1`)
  const theirs = docker.docker('push', `${plain.host}/judge-docker:1`)
  const shape = (s: string) => s.replace(/sha256:[0-9a-f]{64}/, 'DIGEST').replace(/[0-9a-f]{12}/g, 'ID').replace(/size: \d+/, 'size: N').replace(/judge(-docker)?/, 'REPO').replace('Mounted from judge', 'Pushed')
  t.is(shape(r.stdout), shape(theirs))
})

test('kept blobs go with their original digests (mounted within a registry, uploaded to another); OCI images push OCI manifests', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const rich = richImage()
  const src = await plain.pushImage('rich-src', '1', rich)
  const store = await Store.open({ root, dockerConfig: path.join(dir, 'cfg') })
  await store.pull(`${plain.host}/rich-src:1`)
  await store.images.tag(`${plain.host}/rich-src:1`, `${plain.host}/rich-dst:1`)
  const events: string[] = []
  const res = await store.push(`${plain.host}/rich-dst:1`, { onProgress: (e) => { if (e.kind === 'layer' && e.status !== 'Pushing') events.push(e.status) } })
  t.is(events.filter((s) => s === 'Preparing').length, 4)
  t.true(events.filter((s) => s === 'Mounted from').length >= 1, events.join(','))
  const dst = JSON.parse((await plain.request('GET', '/v2/rich-dst/manifests/1', undefined, { accept: 'application/vnd.oci.image.manifest.v1+json' })).body.toString())
  const orig = JSON.parse(src.manifest.toString())
  t.is(dst.mediaType, 'application/vnd.oci.image.manifest.v1+json')
  t.deepEqual(dst.layers, orig.layers, 'same blobs, same media types (gzip and zstd kept as they were)')
  t.deepEqual(dst.config, orig.config)
  // Docker's serialisation of the same descriptors (field order mediaType, size, digest).
  const d = (x: { mediaType: string; size: number; digest: string }) => ({ mediaType: x.mediaType, size: x.size, digest: x.digest })
  t.is(res.tags[0].digest, sha256(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: orig.mediaType, config: d(orig.config), layers: orig.layers.map(d) }, null, 3))))

  // To another registry: uploaded from the kept blobs, digests unchanged.
  await store.login(secure.host, { username: USER, password: PASSWORD })
  await store.images.tag(`${plain.host}/rich-src:1`, `${secure.host}/rich:1`)
  const up = await store.push(`${secure.host}/rich:1`)
  t.is(up.tags[0].digest, res.tags[0].digest)
  await store.close()
})

test('a layer strata made (import) is compressed once: the second push, to another registry, sends the same blob', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const store = await Store.open({ root, dockerConfig: path.join(dir, 'cfg') })
  const rootfs = tar([{ name: 'big.bin', data: Buffer.alloc(9 << 20, 7) }, { name: 'etc/', type: 'dir' }, { name: 'etc/hostname', data: Buffer.from('x\n') }])
  fs.writeFileSync(path.join(dir, 'rootfs.tar'), rootfs)
  await store.import(path.join(dir, 'rootfs.tar'), { ref: `${plain.host}/made:1` })
  const a = await store.push(`${plain.host}/made:1`)
  const layerDigest = async (host: string, reg: TestRegistry, repo: string, tag: string) => {
    void host
    return JSON.parse((await reg.request('GET', `/v2/${repo}/manifests/${tag}`, undefined, { accept: 'application/vnd.docker.distribution.manifest.v2+json' }, repo)).body.toString()).layers[0].digest as string
  }
  const d1 = await layerDigest(plain.host, plain, 'made', '1')
  const blobPath = path.join(root, 'content/blobs/sha256', d1.slice(7))
  const kept = fs.statSync(blobPath)
  await store.login(secure.host, { username: USER, password: PASSWORD })
  await store.images.tag(`${plain.host}/made:1`, `${secure.host}/made:1`)
  const b = await store.push(`${secure.host}/made:1`)
  t.is(b.tags[0].digest, a.tags[0].digest, 'same manifest: the same compressed blob')
  t.is(await layerDigest(secure.host, secure, 'made', '1'), d1)
  t.is(fs.statSync(blobPath).mtimeMs, kept.mtimeMs, 'the kept blob was read, not written again')
  await store.close()
})

test('bad input and faults: typed errors, nothing recorded, secrets never printed; abort leaves the store as it was', async (t) => {
  const { dir, root, env } = await storeWith(t)
  const secret = 'hunter2-never-print-me'
  // Wrong password: Unauthorized, nothing stored, the password in no output.
  const bad = await cli(root, ['login', '-u', USER, '-p', secret, secure.host], undefined, env)
  t.is(bad.code, 1)
  t.regex(bad.stderr, /401 Unauthorized/)
  t.false(bad.stdout.includes(secret) || bad.stderr.replace('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n', '').includes(secret))
  t.false(fs.existsSync(path.join(dir, 'docker-config', 'config.json')))
  // A push with credentials the registry refuses: Unauthorized, and no secret in the output.
  fs.mkdirSync(path.join(dir, 'docker-config'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'docker-config', 'config.json'), JSON.stringify({ auths: { [secure.host]: { auth: Buffer.from(`${USER}:${secret}`).toString('base64') } } }))
  await cli(root, ['tag', 'busybox', `${secure.host}/x:1`], undefined, env)
  const refused = await cli(root, ['push', `${secure.host}/x:1`], undefined, env)
  t.is(refused.code, 1)
  t.false((refused.stdout + refused.stderr).includes(secret))
  const store = await Store.open({ root, dockerConfig: path.join(dir, 'docker-config') })
  const e = await t.throwsAsync(store.push(`${secure.host}/x:1`), { instanceOf: StrataError })
  t.is(e.code, 'Unauthorized')
  t.false(e.message.includes(secret))

  // Registry errors keep their status and the registry's code.
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  await store.images.tag('busybox', `${proxy.host}/denied:1`)
  proxy.faults = (req) => req.method === 'POST' ? { kind: 'status', status: 403, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }) } : undefined
  const denied = await t.throwsAsync(store.push(`${proxy.host}/denied:1`), { instanceOf: StrataError })
  t.is(denied.code, 'Unauthorized')
  t.is(denied.status, 403)
  t.is(denied.registryCode, 'DENIED')
  proxy.faults = (req) => req.method === 'PUT' && req.url!.includes('/manifests/') ? { kind: 'status', status: 400, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: 'manifest invalid' }] }) } : undefined
  const invalid = await t.throwsAsync(store.push(`${proxy.host}/denied:1`), { instanceOf: StrataError })
  t.is(invalid.code, 'RegistryError')
  t.is(invalid.status, 400)
  t.is(invalid.registryCode, 'MANIFEST_INVALID')
  t.deepEqual((await store.images.inspect('busybox') as { RepoDigests: string[] }).RepoDigests, [], 'no RepoDigest for a failed push')

  // A registry that refuses a streamed PATCH (411) gets the layer in chunks.
  proxy.faults = (req) => req.method === 'PATCH' && !req.headers['content-range'] ? { kind: 'status', status: 411 } : undefined
  await store.images.tag('busybox', `${proxy.host}/chunked:1`)
  const chunked = await store.push(`${proxy.host}/chunked:1`)
  t.true(proxy.count((x) => x.method === 'PATCH' && x.status === 202) >= 1, JSON.stringify(proxy.log.slice(-12)))
  docker.docker('pull', `${plain.host}/chunked:1`)
  t.is(chunked.tags.length, 1)

  // A layer whose files changed since it was recorded: DigestMismatch, nothing pushed.
  const made = path.join(dir, 'made.tar')
  fs.writeFileSync(made, tar([{ name: 'f', data: Buffer.from('original') }]))
  await store.import(made, { ref: `${plain.host}/changed:1` })
  const layer = (await store.images.inspect(`${plain.host}/changed:1`) as { GraphDriver: { Data: { UpperDir: string } } }).GraphDriver.Data.UpperDir
  fs.writeFileSync(path.join(layer, 'f'), 'tampered')
  const mismatch = await t.throwsAsync(store.push(`${plain.host}/changed:1`), { instanceOf: StrataError })
  t.is(mismatch.code, 'DigestMismatch')
  t.is((await plain.request('GET', '/v2/changed/manifests/1')).status, 404)

  // Abort: uploads stop, nothing recorded, no staging left.
  const big = buildImage({ layers: [tar([{ name: 'big.bin', data: Buffer.from(Array.from({ length: 24 << 20 }, (_, i) => (i * 2654435761) >>> 24)) }])], tags: [`${plain.host}/big:1`] })
  writeArchive(path.join(dir, 'big.tar'), [big], 'docker25')
  await store.load(path.join(dir, 'big.tar'))
  const blobsBefore = fs.readdirSync(path.join(root, 'content/blobs/sha256')).sort()
  const ac = new AbortController()
  const aborted = await t.throwsAsync(store.push(`${plain.host}/big:1`, { signal: ac.signal, onProgress: (p) => { if (p.kind === 'layer' && p.status === 'Pushing' && (p.current ?? 0) > 0) ac.abort() } }), { instanceOf: StrataError })
  t.is(aborted.code, 'Aborted')
  t.deepEqual((await store.images.inspect(`${plain.host}/big:1`) as { RepoDigests: string[] }).RepoDigests, [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('push-')), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'content/blobs/sha256')).sort(), blobsBefore, 'no blob kept from an aborted push')
  // A throwing progress callback rejects the push with what it threw (as every operation does),
  // and the callback is not called again.
  const boom = new Error('callback failed')
  let calls = 0
  t.is(await t.throwsAsync(store.push(`${plain.host}/big:1`, { onProgress: () => { calls++; throw boom } })), boom)
  t.is(calls, 1)
  t.deepEqual((await store.images.inspect(`${plain.host}/big:1`) as { RepoDigests: string[] }).RepoDigests, [])
  await store.close()
})

test('a layer strata made: Pushing bytes only rise and the bar ends full before Pushed; an rmi during the push waits for nothing and leaves the layers until the push is done', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const store = await Store.open({ root })
  // 6 MiB that gzip shrinks a lot: the compressed bytes sent stay far below the content size.
  const made = path.join(dir, 'made.tar')
  fs.writeFileSync(made, tar([{ name: 'text', data: Buffer.from('strata pushes what it made\n'.repeat(6 << 20 >> 5)) }]))
  const ref = `${plain.host}/made-leased:1`
  await store.import(made, { ref })
  const events: PushProgress[] = []
  let removing: Promise<unknown> | undefined
  const res = await store.push(ref, {
    onProgress: (e) => {
      events.push(e)
      // The image goes while its layer uploads: the push holds a lease, not the store lock.
      if (e.kind === 'layer' && e.status === 'Pushing' && !removing) removing = store.images.remove(ref)
    },
  })
  t.is(res.tags.length, 1)
  t.truthy(removing)
  await removing
  const layer = events.filter((e): e is Extract<PushProgress, { kind: 'layer' }> => e.kind === 'layer')
  const pushing = layer.filter((e) => e.status === 'Pushing').map((e) => e.current!)
  t.deepEqual(pushing, [...pushing].sort((a, b) => a - b))
  t.is(new Set(pushing).size, pushing.length, 'no repeats')
  const last = layer[layer.length - 1]
  const beforeLast = layer[layer.length - 2]
  t.is(last.status, 'Pushed')
  t.is(beforeLast.status, 'Pushing')
  t.is(beforeLast.current, beforeLast.total, 'the bar ends full')
  // What was pushed is whole: Docker pulls it.
  docker.docker('pull', ref)
  docker.docker('rmi', ref)
  await store.close()
  t.deepEqual(fs.readdirSync(path.join(root, 'image/overlay2/layerdb/sha256')), [], 'the layers went once the push was done')
})

test('kill -9 during a push: the store stays consistent, nothing recorded, the staging removed on open', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const big = buildImage({ layers: [tar([{ name: 'big.bin', data: Buffer.from(Array.from({ length: 48 << 20 }, (_, i) => (i * 2654435761) >>> 24)) }])], tags: [`${plain.host}/killed:1`] })
  writeArchive(path.join(dir, 'big.tar'), [big], 'docker25')
  t.is((await cli(root, ['load', '-i', path.join(dir, 'big.tar')])).code, 0)
  // The registry never answers the manifest PUT: the push is surely in flight when killed.
  const proxy = await new FaultProxy(plain.host).start()
  t.teardown(() => proxy.stop())
  proxy.faults = (req) => (req.method === 'PUT' && req.url!.includes('/manifests/') ? { kind: 'hang' } : undefined)
  t.is((await cli(root, ['tag', `${plain.host}/killed:1`, `${proxy.host}/killed:1`])).code, 0)
  const { child, closed } = spawnCli(root, ['push', `${proxy.host}/killed:1`])
  for (let i = 0; i < 3000 && !proxy.log.some((e) => e.method === 'PUT' && e.path.includes('/manifests/')); i++) await new Promise((r) => setTimeout(r, 20))
  t.true(proxy.log.some((e) => e.method === 'PUT' && e.path.includes('/manifests/')), 'the push reached its manifest')
  child.kill('SIGKILL')
  await closed
  await checkConsistent(t, root)
  const store = await Store.open({ root })
  t.deepEqual((await store.images.inspect(`${proxy.host}/killed:1`) as { RepoDigests: string[] }).RepoDigests, [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('push-')), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'content/blobs/sha256')), [])
  // And the push goes through afterwards.
  const again = await store.push(`${plain.host}/killed:1`)
  t.is(again.tags.length, 1)
  await store.close()
})
