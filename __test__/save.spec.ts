import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Store } from '../ts'
import { tmpDir } from './helpers/fs'
import { writeArchive, sha256 } from './helpers/image'
import { richImage, busyboxImage } from './helpers/fixtures'

function untar(file: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true })
  execFileSync('tar', ['-xf', file, '-C', dir])
}

test('save reproduces each loaded layer tar bit for bit, and load → save → load keeps image IDs', async (t) => {
  const dir = tmpDir(t)
  const img = richImage()
  writeArchive(path.join(dir, 'in.tar'), [img], 'legacy')
  const store = await Store.open({ root: path.join(dir, 'root') })
  await store.load(path.join(dir, 'in.tar'))
  await store.save(['rich:latest'], path.join(dir, 'out.tar'))
  const x = path.join(dir, 'x')
  untar(path.join(dir, 'out.tar'), x)
  const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8'))
  t.deepEqual(manifest[0].RepoTags, ['rich:latest'])
  t.deepEqual(fs.readFileSync(path.join(x, manifest[0].Config)), img.config)
  t.is(manifest[0].Layers.length, 4)
  manifest[0].Layers.forEach((name: string, i: number) => {
    t.true(fs.readFileSync(path.join(x, name)).equals(img.spec.layers[i]), `layer ${i} identical`)
    t.is(`sha256:${path.basename(name)}`, img.diffIds[i])
  })
  const index = JSON.parse(fs.readFileSync(path.join(x, 'index.json'), 'utf8'))
  t.is(index.manifests[0].annotations['io.containerd.image.name'], 'docker.io/library/rich:latest')

  const store2 = await Store.open({ root: path.join(dir, 'root2') })
  const res = await store2.load(path.join(dir, 'out.tar'))
  t.deepEqual(res.images, [{ id: img.id, tags: ['rich:latest'] }])
  await store2.save([img.id], path.join(dir, 'again.tar'))
  const y = path.join(dir, 'y')
  untar(path.join(dir, 'again.tar'), y)
  for (const d of img.diffIds) t.true(fs.readFileSync(path.join(y, 'blobs/sha256', d.slice(7))).equals(fs.readFileSync(path.join(x, 'blobs/sha256', d.slice(7)))))
  t.is(JSON.parse(fs.readFileSync(path.join(y, 'manifest.json'), 'utf8'))[0].RepoTags, null, 'saved by ID: no tags')
})

test('save --format oci writes an OCI layout (dir and tar) that skopeo and umoci accept', async (t) => {
  const dir = tmpDir(t)
  const img = richImage()
  writeArchive(path.join(dir, 'in.tar'), [img], 'docker25')
  const store = await Store.open({ root: path.join(dir, 'root') })
  await store.load(path.join(dir, 'in.tar'))
  const layoutDir = path.join(dir, 'oci')
  await store.save(['rich'], `${layoutDir}/`, { format: 'oci' })
  t.false(fs.existsSync(path.join(layoutDir, 'manifest.json')))
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(layoutDir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' })
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${layoutDir}:latest`]).toString())
  t.is(inspected.config.digest, img.id)
  const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${layoutDir}:latest`]).toString())
  t.deepEqual(cfg.rootfs.diff_ids, img.diffIds)
  // umoci unpacks it into a runtime bundle with the whiteouts applied.
  const bundle = path.join(dir, 'bundle')
  execFileSync('umoci', ['unpack', '--image', `${layoutDir}:latest`, bundle], { stdio: 'pipe' })
  t.true(fs.existsSync(path.join(bundle, 'rootfs/bin/busybox')))
  t.false(fs.existsSync(path.join(bundle, 'rootfs/usr/share/doc/a.txt')))
  t.deepEqual(fs.readdirSync(path.join(bundle, 'rootfs/opt/app')), ['fresh.txt'])
  // The tar form, read back by skopeo as an oci-archive and by strata.
  await store.save(['rich'], path.join(dir, 'oci.tar'), { format: 'oci' })
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${path.join(dir, 'oci.tar')}:latest`]).toString())
  t.is(raw.config.digest, img.id)
  const store2 = await Store.open({ root: path.join(dir, 'root2') })
  t.is((await store2.load(path.join(dir, 'oci.tar'))).images[0].id, img.id)
})

test('skopeo reads the docker-archive save output with the same config digest', async (t) => {
  const dir = tmpDir(t)
  const img = busyboxImage(['bb:1'])
  writeArchive(path.join(dir, 'in.tar'), [img], 'docker25')
  const store = await Store.open({ root: path.join(dir, 'root') })
  await store.load(path.join(dir, 'in.tar'))
  await store.save(['bb:1'], path.join(dir, 'out.tar'))
  const cfg = execFileSync('skopeo', ['inspect', '--config', '--raw', `docker-archive:${path.join(dir, 'out.tar')}`])
  t.is(sha256(cfg), img.id)
})

test('save to a stream writes the same archive as to a file', async (t) => {
  const dir = tmpDir(t)
  writeArchive(path.join(dir, 'in.tar'), [busyboxImage()], 'docker25')
  const store = await Store.open({ root: path.join(dir, 'root') })
  await store.load(path.join(dir, 'in.tar'))
  await store.save(['busybox'], path.join(dir, 'file.tar'))
  const ws = fs.createWriteStream(path.join(dir, 'stream.tar'))
  await store.save(['busybox'], ws)
  await new Promise<void>((r) => ws.end(r))
  t.true(fs.readFileSync(path.join(dir, 'file.tar')).equals(fs.readFileSync(path.join(dir, 'stream.tar'))))
})

test('save of an unknown image fails and writes nothing', async (t) => {
  const dir = tmpDir(t)
  const store = await Store.open({ root: path.join(dir, 'root') })
  const err = await t.throwsAsync(store.save(['nope:1'], path.join(dir, 'o.tar')))
  t.is((err as { code?: string }).code, 'ImageNotFound')
  t.deepEqual(fs.readdirSync(dir).filter((n) => n !== 'root'), [])
})
