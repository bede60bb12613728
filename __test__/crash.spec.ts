import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import { Store } from '../ts'
import { tmpDir, cli, spawnCli, snapshot } from './helpers/fs'
import { tar, TarEntry } from './helpers/tar'
import { buildImage, writeArchive, busyboxEntries, BuiltImage, ArchiveForm } from './helpers/image'
import { checkConsistent } from './helpers/consistency'

/** A few layers with thousands of files and a large file, so a load takes long enough to be killed. */
function bigImage(tag: string, base = tar(busyboxEntries())): BuiltImage {
  const layers: Buffer[] = [base]
  for (let l = 0; l < 4; l++) {
    const entries: TarEntry[] = [{ name: `l${l}/`, type: 'dir' }]
    for (let i = 0; i < 1500; i++) entries.push({ name: `l${l}/f${i}`, data: randomBytes(512) })
    entries.push({ name: `l${l}/big`, data: randomBytes(8 << 20) })
    layers.push(tar(entries))
  }
  return buildImage({ layers, compression: ['none', 'gzip', 'none', 'gzip', 'none'], tags: [tag] })
}


test('kill -9 at any moment of load leaves nothing half-done, and the next load succeeds', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const img = bigImage('big:1')
  const archive = path.join(dir, 'big.tar')
  writeArchive(archive, [img], 'docker25')
  const delays = [40, 120, 250, 400, 600, 900]
  let killedMidway = 0
  for (const delay of delays) {
    const { child, closed } = spawnCli(root, ['load', '-q', '-i', archive])
    await new Promise((r) => setTimeout(r, delay))
    const exited = child.exitCode !== null
    child.kill('SIGKILL')
    await closed
    if (!exited) killedMidway++
    await checkConsistent(t, root)
    const store = await Store.open({ root })
    const images = await store.images.list()
    // Either nothing, or the whole image: never a partial one.
    t.true(images.length === 0 || (images.length === 1 && images[0].id === img.id))
    if (images.length) await store.images.remove(img.id, { force: true })
  }
  t.true(killedMidway >= 3, `at least three kills landed mid-load (${killedMidway})`)
  const res = await cli(root, ['load', '-i', archive])
  t.is(res.code, 0, res.stderr)
  t.is(res.stdout, 'Loaded image: big:1\n')
  await checkConsistent(t, root)
})

/** a.tar (a:1) and b.tar (b:1, in archive form `bForm`): two big images on one busybox base layer. */
function twoImagesSharingABase(t: Parameters<typeof tmpDir>[0], bForm: ArchiveForm): { dir: string; root: string } {
  const dir = tmpDir(t)
  const base = tar(busyboxEntries())
  writeArchive(path.join(dir, 'a.tar'), [bigImage('a:1', base)], 'docker25')
  writeArchive(path.join(dir, 'b.tar'), [bigImage('b:1', base)], bForm)
  return { dir, root: path.join(dir, 'root') }
}

test('two processes loading images that share a base layer at once: both land, the base is stored once', async (t) => {
  const { dir, root } = twoImagesSharingABase(t, 'legacy')
  await Store.open({ root })
  const [ra, rb] = await Promise.all([cli(root, ['load', '-i', path.join(dir, 'a.tar')]), cli(root, ['load', '-i', path.join(dir, 'b.tar')])])
  t.is(ra.code, 0, ra.stderr)
  t.is(rb.code, 0, rb.stderr)
  const store = await Store.open({ root })
  t.deepEqual((await store.images.list()).map((i) => i.repoTags[0]).sort(), ['a:1', 'b:1'])
  // 1 shared base + 4 + 4 layers.
  t.is(fs.readdirSync(path.join(root, 'image/overlay2/layerdb/sha256')).length, 9)
  t.is(fs.readdirSync(path.join(root, 'overlay2')).filter((d) => d !== 'l').length, 9)
  await checkConsistent(t, root)
})

test('a load and an rmi racing on one root keep the store consistent', async (t) => {
  const { dir, root } = twoImagesSharingABase(t, 'docker25')
  t.is((await cli(root, ['load', '-i', path.join(dir, 'a.tar')])).code, 0)
  const [load, rmi] = await Promise.all([cli(root, ['load', '-i', path.join(dir, 'b.tar')]), cli(root, ['rmi', 'a:1'])])
  t.is(load.code, 0, load.stderr)
  t.is(rmi.code, 0, rmi.stderr)
  const store = await Store.open({ root })
  t.deepEqual((await store.images.list()).map((i) => i.repoTags), [['b:1']])
  await checkConsistent(t, root)
  // b is intact: its layers still hold their files.
  const g = ((await store.images.inspect('b:1')).GraphDriver as { Data: Record<string, string> }).Data
  t.true(fs.existsSync(path.join(g.LowerDir.split(':').pop()!, 'bin/busybox')))
  t.is(Object.keys(snapshot(g.UpperDir, { xattrs: false })).length, 1502)
})
