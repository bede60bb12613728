/**
 * mount / umount: kernel overlayfs (new mount API, one `lowerdir+` per layer, so 300 layers
 * mount), reference counts recorded on disk so another process knows what is mounted.
 * The plan itself is a pure function (first test, no root needed).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Store } from '../ts'
import { Layout } from '../ts/internal/layout'
import { containerMountPlan, lowerChain, lowerDirs } from '../ts/containers/plan'
import { cli } from './helpers/fs'
import { busyboxImage } from './helpers/fixtures'
import { storeWith, manyLayerImage } from './helpers/container'

function mountLine(target: string): string | undefined {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target)
}

test('mount plan: lowerdirs from the lower file (top first), upper/work/merged, the native plan\'s forced options', (t) => {
  const layout = new Layout('/s')
  t.is(lowerChain('INIT', 'l/A:l/B'), 'l/INIT:l/A:l/B')
  t.is(lowerChain('ONLY', undefined), 'l/ONLY')
  t.deepEqual(lowerDirs(layout, 'l/A:l/B\n'), ['/s/overlay2/l/A', '/s/overlay2/l/B'])
  t.deepEqual(containerMountPlan(layout, 'abc', 'l/I:l/A:l/B'), {
    lowerdirs: ['/s/overlay2/l/I', '/s/overlay2/l/A', '/s/overlay2/l/B'],
    upperdir: '/s/overlay2/abc/diff',
    workdir: '/s/overlay2/abc/work',
    target: '/s/overlay2/abc/merged',
    options: ['index=off', 'redirect_dir=off', 'metacopy=off'],
  })
})

test('strata mount twice returns the same MergedDir; umount undoes it when the last reference goes', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const c = await store.containers.create('bb', { name: 'm1', cmd: ['sh', '-c', 'echo via-run > /from-run'] })
  const merged = (await c.layers()).mergedDir
  const a = await cli(root, ['mount', 'm1'])
  t.is(a.code, 0, a.stderr)
  t.is(a.stdout, `${merged}\n`)
  t.is((await cli(root, ['mount', 'm1'])).stdout, `${merged}\n`)
  t.true(fs.existsSync(path.join(merged, 'bin/busybox')))
  t.true(fs.existsSync(path.join(merged, '.dockerenv')), 'the init layer is in the view')
  const line = mountLine(merged)!
  t.truthy(line)
  t.regex(line, / - overlay overlay /)
  // (index=off is in the plan; the kernel lists only non-default options, so mountinfo may not show it)
  // Another process (a fresh Store) knows: mounted, two references.
  const other = await Store.open({ root })
  t.true(await (await other.containers.get('m1')).isMounted())
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'containers', c.id, 'mount.json'), 'utf8')).refs, [{ kind: 'user' }, { kind: 'user' }])
  // A run while mounted shares the mount and leaves it mounted.
  t.is((await c.run()).exitCode, 0)
  t.is(fs.readFileSync(path.join(merged, 'from-run'), 'utf8'), 'via-run\n')
  t.truthy(mountLine(merged))
  // Writes through the mount land in the writable layer.
  fs.writeFileSync(path.join(merged, 'from-host'), 'x')
  t.true(fs.existsSync(path.join((await c.layers()).upperDir, 'from-host')))
  t.is((await cli(root, ['umount', 'm1'])).code, 0)
  t.truthy(mountLine(merged), 'one reference left')
  t.is((await cli(root, ['umount', 'm1'])).code, 0)
  t.is(mountLine(merged), undefined)
  t.false(await c.isMounted())
  t.deepEqual((await c.diff()).map((x) => x.path), ['/from-host', '/from-run'])
})

/** The super options of the overlay mounted at `target`, as the kernel shows them (`key=value`). */
function superOptions(target: string): Map<string, string> {
  const line = mountLine(target)
  if (!line) throw new Error(`nothing mounted at ${target}`)
  const opts = line.split(' - ')[1].split(' ')[2]
  return new Map(opts.split(',').map((o) => { const eq = o.indexOf('='); return eq < 0 ? [o, ''] : [o.slice(0, eq), o.slice(eq + 1)] }))
}

test('a container mounts with index=off,redirect_dir=off,metacopy=off: the kernel says so, and copy-up and rename behave so', async (t) => {
  const { store } = await storeWith(t, [busyboxImage(['bb:opts'])])
  const c = await store.containers.create('bb:opts', { name: 'opts' })
  const merged = await c.mount()
  t.teardown(() => c.unmount())
  const shown = superOptions(merged)
  // The kernel lists an option only where it differs from the overlay module's default, so an
  // option it leaves out has the default value: that must be off too.
  const moduleDefault = (p: string): string => fs.readFileSync(`/sys/module/overlay/parameters/${p}`, 'utf8').trim()
  for (const opt of ['index', 'metacopy']) {
    if (shown.has(opt)) t.is(shown.get(opt), 'off', opt)
    else t.is(moduleDefault(opt), 'N', `${opt} not shown: the module default is off`)
  }
  // redirect_dir=off means "create no redirects" (the kernel then follows existing ones as
  // redirect_always_follow says, and shows `follow`/`nofollow`, or nothing when that is its default).
  if (shown.has('redirect_dir')) t.not(shown.get('redirect_dir'), 'on')
  else t.is(moduleDefault('redirect_dir'), 'N', 'redirect_dir not shown: the module default creates no redirects')
  t.true(shown.has('lowerdir') || shown.has('lowerdir+'), [...shown.keys()].join(','))
  // metacopy=off: a chmod copies the whole file up, no metacopy xattr pointing into a lower layer.
  fs.chmodSync(path.join(merged, 'bin/busybox'), 0o700)
  const upperBusybox = path.join((await c.layers()).upperDir, 'bin/busybox')
  t.is(fs.statSync(upperBusybox).size, fs.statSync('/bin/busybox').size)
  const xattrs = execFileSync('getfattr', ['-d', '-m', '-', '--absolute-names', upperBusybox], { encoding: 'utf8' })
  t.notRegex(xattrs, /overlay\.metacopy/)
  // redirect_dir=off: renaming a directory of a lower layer is EXDEV (mv copies), no redirect xattr.
  t.throws(() => fs.renameSync(path.join(merged, 'bin'), path.join(merged, 'bin2')), { code: 'EXDEV' })
})

test('a 300-layer image: the container mounts (one lowerdir+ per layer) and shows the top layer\'s files', async (t) => {
  const n = 300
  const { root, store } = await storeWith(t, [manyLayerImage(n, ['many:300'])])
  const c = await store.containers.create('many:300', { name: 'deep' })
  const lowers = ((await c.inspect()).GraphDriver as { Data: Record<string, string> }).Data.LowerDir.split(':')
  t.is(lowers.length, n + 1, 'init layer + every image layer')
  const merged = await c.mount()
  t.is(fs.readFileSync(path.join(merged, 'top'), 'utf8'), `layer ${n - 1}\n`)
  t.is(fs.readdirSync(path.join(merged, 'layers')).length, n - 1)
  t.true(fs.existsSync(path.join(merged, 'bin/busybox')))
  // and it runs on that mount
  const r = await (await store.containers.create('many:300', { cmd: ['cat', '/top', '/layers/1'], autoRemove: true })).run()
  t.is(r.exitCode, 0, r.stderr.toString())
  t.is(r.stdout.toString(), `layer ${n - 1}\n1\n`)
  await c.unmount()
  t.is(mountLine(merged), undefined)
  void root
})

test('a 500-layer image, the kernel\'s limit: the container has no init layer, mounts, runs, and diff hides the mount points runc made', async (t) => {
  const n = 500
  const { store } = await storeWith(t, [manyLayerImage(n, ['many:500'])])
  const c = await store.containers.create('many:500', { name: 'deepest' })
  const data = ((await c.inspect()).GraphDriver as { Data: Record<string, string> }).Data
  t.is(data.LowerDir.split(':').length, n, 'every image layer and no init layer')
  t.false(data.LowerDir.includes('-init'))
  const merged = await c.mount()
  t.is(fs.readFileSync(path.join(merged, 'top'), 'utf8'), `layer ${n - 1}\n`)
  await c.unmount()
  t.is(mountLine(merged), undefined)
  const r = await (await store.containers.create('many:500', { cmd: ['sh', '-c', 'cat /top; echo x > /new'] })).run()
  t.is(r.exitCode, 0, r.stderr.toString())
  t.is(r.stdout.toString(), `layer ${n - 1}\n`)
  const ran = (await store.containers.list({ all: true })).find((x) => x.id !== c.id)!
  t.deepEqual((await (await store.containers.get(ran.id)).diff()).map((x) => `${x.kind} ${x.path}`), ['A /new'])
})
