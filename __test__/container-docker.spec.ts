/**
 * Real Docker Engine as the judge of `commit`: the image strata commits from a container,
 * `save`d, is accepted by `docker load` (same image ID, same DiffIDs, the new layer on top)
 * and runs under Docker with the same result as under strata.
 */
import test from 'ava'
import * as path from 'node:path'
import { storeWith } from './helpers/container'
import { busyboxImage } from './helpers/fixtures'
import { Dockerd } from './helpers/dockerd'

const engine = new Dockerd('strata-test-ctr-docker')
const docker = (...args: string[]): string => engine.docker(...args)

test.before(() => engine.start())
test.after.always(() => engine.stop())

test.serial('commit → save → docker load → docker run gives what strata run gives', async (t) => {
  const bb = busyboxImage(['strata-ctr/bb:1'])
  const { dir, store } = await storeWith(t, [bb])
  const c = await store.containers.create('strata-ctr/bb:1', {
    name: 'src', cmd: ['sh', '-c', 'echo hi > /greeting; mkdir -p /opt/x && echo y > /opt/x/y; rm /etc/group'],
  })
  t.is((await c.run()).exitCode, 0)
  const id = await c.commit({ ref: 'strata-ctr/bb:hi', message: 'greet', author: 'strata', changes: ['CMD ["sh", "-c", "cat /greeting /opt/x/y; test -e /etc/group || echo gone"]'] })
  const ours = await (await store.containers.create('strata-ctr/bb:hi', { autoRemove: true })).run()
  t.is(ours.stdout.toString(), 'hi\ny\ngone\n')

  await store.save(['strata-ctr/bb:hi'], path.join(dir, 'hi.tar'))
  try { docker('rmi', '-f', 'strata-ctr/bb:hi') } catch { /* not there */ }
  t.regex(docker('load', '-i', path.join(dir, 'hi.tar')), /Loaded image: strata-ctr\/bb:hi/)
  const [info] = JSON.parse(docker('image', 'inspect', 'strata-ctr/bb:hi'))
  t.is(info.Id, id)
  t.is(info.RootFS.Layers.length, 2)
  t.is(info.RootFS.Layers[0], bb.diffIds[0])
  t.is(info.Comment, 'greet')
  t.is(info.Author, 'strata')
  t.is(docker('run', '--rm', '--network', 'none', 'strata-ctr/bb:hi'), 'hi\ny\ngone\n')
  const hist = docker('history', '--no-trunc', '--format', '{{.CreatedBy}}|{{.Comment}}', 'strata-ctr/bb:hi').trim().split('\n')
  t.is(hist[0], 'sh -c echo hi > /greeting; mkdir -p /opt/x && echo y > /opt/x/y; rm /etc/group|greet')
  docker('rmi', '-f', 'strata-ctr/bb:hi')
})
