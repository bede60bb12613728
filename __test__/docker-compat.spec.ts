/**
 * Real Docker Engine as the judge of `save`: a private dockerd (scripts/peers/dockerd.sh, Debian
 * docker.io, overlay2, no networking, under a name of its own) loads what strata saved and must see the same image ID and
 * DiffIDs, and run it.
 */
import test from 'ava'
import * as path from 'node:path'
import { Store } from '../ts'
import { tmpDir } from './helpers/fs'
import { Dockerd } from './helpers/dockerd'
import { writeArchive } from './helpers/image'
import { richImage, busyboxImage } from './helpers/fixtures'

const engine = new Dockerd('strata-test-docker')
const docker = (...args: string[]): string => engine.docker(...args)

test.before(() => engine.start())
test.after.always(() => engine.stop())

test.serial('docker load accepts strata save output: same image ID, same DiffIDs, and it runs', async (t) => {
  const dir = tmpDir(t)
  const rich = richImage(['strata-test/rich:1'])
  const bb = busyboxImage(['strata-test/bb:1'])
  writeArchive(path.join(dir, 'in.tar'), [rich, bb], 'legacy')
  const store = await Store.open({ root: path.join(dir, 'root') })
  await store.load(path.join(dir, 'in.tar'))
  await store.save(['strata-test/rich:1', 'strata-test/bb:1'], path.join(dir, 'out.tar'))
  for (const ref of ['strata-test/rich:1', 'strata-test/bb:1']) {
    try { docker('rmi', '-f', ref) } catch { /* not there */ }
  }
  const out = docker('load', '-i', path.join(dir, 'out.tar'))
  t.regex(out, /Loaded image: strata-test\/rich:1/)
  t.regex(out, /Loaded image: strata-test\/bb:1/)
  const [info] = JSON.parse(docker('image', 'inspect', 'strata-test/rich:1'))
  t.is(info.Id, rich.id)
  t.deepEqual(info.RootFS.Layers, rich.diffIds)
  t.is(docker('run', '--rm', '--network', 'none', 'strata-test/rich:1', 'sh', '-c', 'cat /data/one.txt; ls /opt/app; test -e /usr/share/doc/a.txt || echo gone'), 'layer one\nfresh.txt\ngone\n')
  docker('rmi', '-f', 'strata-test/rich:1', 'strata-test/bb:1')
})
