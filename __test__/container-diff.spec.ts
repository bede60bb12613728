/**
 * `diff` prints what `docker diff` prints for an overlay2 container, as the Docker Engine shows it
 * (__test__/cli-diff-docker.spec.ts runs random scripts in both and compares): A for new paths,
 * C for changed ones and for every ancestor dir of a change, D for what is gone; a dir deleted
 * and made again is C, with D for each of its old children. The init layer's files never show.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { cli } from './helpers/fs'
import { storeWith, appImage } from './helpers/container'

test('adds, changes, deletes and opaque dirs, as docker diff lists them', async (t) => {
  const { root, store } = await storeWith(t, [appImage(['app:1'])])
  const script = [
    'echo new > /new.txt',
    'mkdir -p /newdir/sub && echo x > /newdir/sub/f',
    'echo more >> /etc/motd',
    'rm /etc/group',
    'rm -rf /srv',
    'rm -rf /opt/app && mkdir /opt/app && echo fresh > /opt/app/fresh.txt',
  ].join(' && ')
  const c = await store.containers.create('app:1', { name: 'd1', cmd: ['sh', '-c', script] })
  const r = await c.run()
  t.is(r.exitCode, 0, r.stderr.toString())
  const expected = [
    'C /etc',
    'D /etc/group',
    'C /etc/motd',
    'A /new.txt',
    'A /newdir',
    'A /newdir/sub',
    'A /newdir/sub/f',
    'C /opt',
    'C /opt/app',
    'A /opt/app/fresh.txt',
    'D /opt/app/keep.txt',
    'D /opt/app/old.txt',
    'D /srv',
  ]
  t.deepEqual((await c.diff()).map((x) => `${x.kind} ${x.path}`), expected)
  const out = await cli(root, ['diff', 'd1'])
  t.is(out.code, 0, out.stderr)
  t.is(out.stdout, expected.map((l) => `${l}\n`).join(''))

  // What is on disk: a whiteout char device 0/0 for /etc/group, an opaque /opt/app.
  const { upperDir } = await c.layers()
  const st = fs.lstatSync(path.join(upperDir, 'etc/group'))
  t.true(st.isCharacterDevice())
  t.is(st.rdev, 0)
  t.is(execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', path.join(upperDir, 'opt/app')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), 'y')
})

test('a container that changed nothing has an empty diff (init files and mount points never show)', async (t) => {
  const { root, store } = await storeWith(t, [appImage(['app:1'])])
  const c = await store.containers.create('app:1', { name: 'quiet', cmd: ['sh', '-c', 'cat /etc/hosts /etc/hostname /etc/resolv.conf > /dev/null; ls /proc /sys /dev > /dev/null'] })
  t.is((await c.run()).exitCode, 0)
  t.deepEqual(await c.diff(), [])
  t.is((await cli(root, ['diff', 'quiet'])).stdout, '')
  // The init files are in the init layer, below the writable one.
  const { initDir } = await c.layers()
  if (!initDir) return t.fail('a container of a shallow image has an init layer')
  for (const f of ['.dockerenv', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'dev/console', 'dev/pts', 'dev/shm', 'proc', 'sys']) {
    t.true(fs.existsSync(path.join(initDir, f)), f)
  }
  t.is(fs.readlinkSync(path.join(initDir, 'etc/mtab')), '/proc/mounts')
})

test('diff of an unknown container is ContainerNotFound', async (t) => {
  const { root, store } = await storeWith(t, [appImage(['app:1'])])
  await t.throwsAsync(store.containers.get('nope'), { code: 'ContainerNotFound', message: 'No such container: nope' })
  const r = await cli(root, ['diff', 'nope'])
  t.is(r.code, 1)
  t.is(r.stderr, 'strata: No such container: nope\n')
})
