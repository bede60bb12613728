/**
 * A hostile registry (helpers/registry.ts HostileRegistry) serving what a real one would refuse
 * to store: every case must fail with its typed code and leave the store exactly as it was.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { Store, StrataError } from '../ts'
import type { StrataErrorCode } from '../ts/errors'
import { tmpDir, snapshot } from './helpers/fs'
import { buildImage, busyboxEntries, sha256, BuiltImage } from './helpers/image'
import { tar, TarEntry } from './helpers/tar'
import { HostileRegistry, ociManifest, MT_OCI_INDEX, Canned } from './helpers/registry'

let reg: HostileRegistry
test.before(async () => { reg = await new HostileRegistry().start() })
test.after.always(async () => { await reg?.stop() })

function blobsOf(img: BuiltImage): Map<string, Buffer> {
  const m = new Map<string, Buffer>([[img.id, img.config]])
  for (const b of img.blobs) m.set(sha256(b), b)
  return m
}

interface Case { title: string; code: StrataErrorCode; setup: (repo: string) => void; message?: RegExp }

const good = (): BuiltImage => buildImage({ layers: [tar([{ name: 'a.txt', data: 'a'.repeat(5000) }])], compression: ['gzip'] })

function cases(canary: string): Case[] {
  const hostileLayer = (entries: TarEntry[]): BuiltImage => buildImage({ layers: [tar(busyboxEntries()), tar(entries)], compression: ['gzip', 'gzip'] })
  const unsafe: [string, TarEntry[]][] = [
    ['dot-dot file name', [{ name: '../escape.txt', data: 'x' }]],
    ['absolute symlink as a parent', [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/pwned', data: 'x' }]],
    ['hardlink out of the layer', [{ name: 'hl', type: 'hardlink', linkname: `${canary}/secret` }]],
    ['whiteout through a symlink', [{ name: 'link', type: 'symlink', linkname: canary }, { name: 'link/.wh.secret', data: '' }]],
  ]
  return [
    { title: 'blob bytes not matching the digest', code: 'DigestMismatch', setup: (repo) => {
      const img = good()
      const blobs = blobsOf(img)
      const d = sha256(img.blobs[0])
      const z = zlib.gzipSync(tar([{ name: 'a.txt', data: 'b'.repeat(5000) }]))
      const same = Buffer.alloc(img.blobs[0].length)
      z.copy(same)
      blobs.set(d, z.length <= same.length ? z : same)
      reg.serveImage(repo, '1', ociManifest(img), blobs)
    } },
    { title: 'config diff_ids not matching the layers', code: 'DigestMismatch', setup: (repo) => {
      const img = good()
      const cfg = JSON.parse(img.config.toString())
      cfg.rootfs.diff_ids = [sha256('something else')]
      img.config = Buffer.from(JSON.stringify(cfg))
      img.id = sha256(img.config)
      reg.serveImage(repo, '1', ociManifest(img), blobsOf(img))
    } },
    { title: 'config listing fewer layers than the manifest', code: 'ManifestInvalid', setup: (repo) => {
      const img = good()
      const cfg = JSON.parse(img.config.toString())
      cfg.rootfs.diff_ids = []
      img.config = Buffer.from(JSON.stringify(cfg))
      img.id = sha256(img.config)
      reg.serveImage(repo, '1', ociManifest(img), blobsOf(img))
    } },
    { title: 'manifest over 4 MiB', code: 'ManifestInvalid', setup: (repo) => {
      const img = good()
      const m = JSON.parse(ociManifest(img).toString())
      m.annotations = { pad: 'x'.repeat(4 << 20) }
      reg.serveImage(repo, '1', Buffer.from(JSON.stringify(m)), blobsOf(img))
    } },
    { title: 'index entry whose size lies', code: 'ManifestInvalid', setup: (repo) => {
      const img = good()
      const m = ociManifest(img)
      reg.serveImage(repo, 'inner', m, blobsOf(img))
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_INDEX, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(m), size: m.length + 7, platform: { os: 'linux', architecture: 'amd64' } }] }))
      reg.routes.set(`/v2/${repo}/manifests/1`, { body: index, headers: { 'content-type': MT_OCI_INDEX } })
    } },
    { title: 'config whose size lies', code: 'ManifestInvalid', setup: (repo) => {
      const img = good()
      const m = JSON.parse(ociManifest(img).toString())
      m.config.size += 3
      reg.serveImage(repo, '1', Buffer.from(JSON.stringify(m)), blobsOf(img))
    } },
    { title: 'layer longer than its descriptor', code: 'DigestMismatch', setup: (repo) => {
      const img = good()
      const blobs = blobsOf(img)
      blobs.set(sha256(img.blobs[0]), Buffer.concat([img.blobs[0], Buffer.from('trailing')]))
      reg.serveImage(repo, '1', ociManifest(img), blobs)
    } },
    { title: 'Docker-Content-Digest that lies', code: 'DigestMismatch', setup: (repo) => {
      const img = good()
      reg.serveImage(repo, '1', ociManifest(img), blobsOf(img))
      reg.routes.set(`/v2/${repo}/manifests/1`, { body: ociManifest(img), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': sha256('other') } })
    } },
    { title: 'schema 1 manifest', code: 'UnsupportedManifest', message: /schema 1 support is disabled/, setup: (repo) => {
      reg.routes.set(`/v2/${repo}/manifests/1`, { body: JSON.stringify({ schemaVersion: 1, name: repo, tag: '1', fsLayers: [] }), headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' } })
    } },
    { title: 'an HTML page instead of a manifest', code: 'ManifestInvalid', setup: (repo) => {
      reg.routes.set(`/v2/${repo}/manifests/1`, { body: '<html><body>welcome</body></html>', headers: { 'content-type': 'text/html' } })
    } },
    { title: 'an HTML error page', code: 'RegistryError', message: /502.*HTML/, setup: (repo) => {
      reg.routes.set(`/v2/${repo}/manifests/1`, { status: 502, body: '<html><body>bad gateway</body></html>', headers: { 'content-type': 'text/html' } })
    } },
    { title: 'a token endpoint answering garbage', code: 'RegistryError', message: /usable token/, setup: (repo) => {
      const img = good()
      reg.serveImage(repo, '1', ociManifest(img), blobsOf(img))
      const realm = `http://${reg.host}/garbage-token`
      reg.routes.set(`/v2/${repo}/manifests/1`, (req): Canned => req.headers.authorization
        ? { body: ociManifest(img), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } }
        : { status: 401, body: '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', headers: { 'www-authenticate': `Bearer realm="${realm}",service="x",scope="repository:${repo}:pull"` } })
      reg.routes.set('/garbage-token', { body: '<html>login</html>', headers: { 'content-type': 'text/html' } })
    } },
    ...unsafe.map(([title, entries]): Case => ({ title: `hostile layer: ${title}`, code: 'UnsafeLayerEntry', setup: (repo) => {
      const img = hostileLayer(entries)
      reg.serveImage(repo, '1', ociManifest(img), blobsOf(img))
    } })),
  ]
}

test('hostile registry: typed errors, the store and a canary untouched', async (t) => {
  const dir = tmpDir(t)
  const canary = path.join(dir, 'canary')
  fs.mkdirSync(canary)
  fs.writeFileSync(path.join(canary, 'secret'), 'do not touch\n')
  const root = path.join(dir, 'root')
  const store = await Store.open({ root })
  const before = snapshot(root, { mtimes: true })
  const canaryBefore = snapshot(canary, { mtimes: true })
  for (const [i, c] of cases(canary).entries()) {
    const repo = `case${i}`
    c.setup(repo)
    let err: StrataError | undefined
    try {
      await store.pull(`${reg.host}/${repo}:1`)
    } catch (e) {
      err = e as StrataError
    }
    t.truthy(err, `${c.title}: must fail`)
    t.is(err?.code, c.code, `${c.title}: ${err?.message}`)
    if (c.message) t.regex(err?.message ?? '', c.message, c.title)
    t.deepEqual(snapshot(root, { mtimes: true }), before, `${c.title}: store unchanged`)
    t.deepEqual(snapshot(canary, { mtimes: true }), canaryBefore, `${c.title}: canary untouched`)
  }
  await store.close()
})
