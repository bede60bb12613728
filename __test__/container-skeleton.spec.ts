/**
 * Container skeletons (ts/containers/skeleton.ts): from its second create on, a process keeps
 * one skeleton built in tmp/; the next create fills it in and renames it into place. The
 * container it gives must be the same as one built inline, and the staging must never outlive
 * its store or block another process.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store } from '../ts'
import { busyboxImage } from './helpers/fixtures'
import { storeWith } from './helpers/container'
import { checkConsistent } from './helpers/consistency'

/** The staging dirs of skeletons under tmp/ and the container IDs staged in them. */
function staged(root: string): { dirs: string[]; ids: string[] } {
  const tmp = path.join(root, 'tmp')
  const dirs = fs.readdirSync(tmp).filter((n) => n.startsWith('skeletons-') && !n.endsWith('.lock'))
  const ids = dirs.flatMap((d) => fs.readdirSync(path.join(tmp, d)).filter((n) => n.endsWith('.ct')).map((n) => n.slice(0, -3)))
  return { dirs, ids }
}

/** The `writers/` entry a process killed mid-change leaves: its pid names no live process. */
function leaveDeadWriter(root: string): void {
  const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '').slice(0, 8)
  // Above the largest pid Linux hands out (pid_max is at most 2^22).
  fs.writeFileSync(path.join(root, 'writers', `${boot}-${2 ** 22}-1`), '')
}

async function waitForSkeleton(root: string): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const { ids } = staged(root)
    // Complete once its last piece (the container dir's config placeholder) is there.
    const done = ids.find((id) => staged(root).dirs.some((d) => fs.existsSync(path.join(root, 'tmp', d, `${id}.ct`, 'config.v2.json'))))
    if (done) {
      // Its files are written a moment before the build's promise hands it to the store.
      await new Promise((r) => setTimeout(r, 50))
      return done
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error('no skeleton was built')
}

test('the first create of a process builds inline and keeps no spare; from the second on one is ready and the next create uses it', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const first = await store.containers.create('bb', { name: 'one' })
  await new Promise((r) => setTimeout(r, 100))
  t.deepEqual(staged(root).ids, [], 'no spare after one create (a CLI create pays nothing extra)')

  await store.containers.create('bb', { name: 'two' })
  const spare = await waitForSkeleton(root)
  t.regex(spare, /^[0-9a-f]{64}$/)

  const c = await store.containers.create('bb', { name: 'three', cmd: ['sh', '-c', 'cat /etc/hostname; ls -a / | tr "\\n" " "; echo > /new'] })
  t.is(c.id, spare, 'the third container is the staged skeleton')
  t.false(staged(root).ids.includes(spare), 'its pieces left the staging dir')

  // Laid out exactly as an inline-built container (compare with the first one, piece by piece).
  const meta = (id: string) => path.join(root, 'image/overlay2/layerdb/mounts', id)
  const read = (p: string) => fs.readFileSync(p, 'utf8')
  const mountId = read(path.join(meta(c.id), 'mount-id'))
  t.is(read(path.join(meta(c.id), 'init-id')), `${mountId}-init`)
  t.is(read(path.join(meta(c.id), 'parent')), read(path.join(meta(first.id), 'parent')))
  const layer = path.join(root, 'overlay2', mountId)
  const init = path.join(root, 'overlay2', `${mountId}-init`)
  const firstInit = path.join(root, 'overlay2', `${read(path.join(meta(first.id), 'mount-id'))}-init`)
  t.is(read(path.join(init, 'lower')), read(path.join(firstInit, 'lower')), 'init layer sits on the image')
  t.is(read(path.join(layer, 'lower')), `l/${read(path.join(init, 'link'))}:${read(path.join(init, 'lower'))}`)
  t.is(fs.realpathSync(path.join(root, 'overlay2/l', read(path.join(layer, 'link')))), path.join(layer, 'diff'))
  t.is(fs.realpathSync(path.join(root, 'overlay2/l', read(path.join(init, 'link')))), path.join(init, 'diff'))
  const tree = (dir: string): string[] => fs.readdirSync(dir, { recursive: true }).map(String).sort()
  t.deepEqual(tree(path.join(init, 'diff')), tree(path.join(firstInit, 'diff')), 'the same init entries')
  const cdir = path.join(root, 'containers', c.id)
  t.deepEqual(fs.readdirSync(cdir).sort(), fs.readdirSync(path.join(root, 'containers', first.id)).sort())
  t.is(read(path.join(cdir, 'hostname')), `${c.id.slice(0, 12)}\n`)
  t.is(read(path.join(cdir, 'hosts')), read(path.join(root, 'containers', first.id, 'hosts')))
  const rec = JSON.parse(read(path.join(cdir, 'config.v2.json')))
  t.is(rec.ID, c.id)
  t.is(rec.Name, '/three')
  t.is(rec.Config.Hostname, c.id.slice(0, 12))
  t.is(JSON.parse(read(path.join(cdir, 'hostconfig.json'))).NetworkMode, 'none')

  // And it runs: hostname, the init layer's entries, a write to the writable layer.
  const r = await c.run()
  t.is(r.exitCode, 0, r.stderr.toString())
  t.true(r.stdout.toString().startsWith(`${c.id.slice(0, 12)}\n`))
  t.regex(r.stdout.toString(), /\.dockerenv/)
  t.deepEqual((await c.diff()).map((d) => `${d.kind} ${d.path}`), ['A /new'])
  t.deepEqual((await store.containers.list({ all: true })).map((x) => x.names[0]).sort(), ['one', 'three', 'two'])

  // Another spare follows; close removes it with its lock.
  await waitForSkeleton(root)
  await store.close()
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('skeletons-')), [])
  await checkConsistent(t, root)
})

test('a spare held by a live store survives another process\'s open and still makes a sound container; a dead one\'s is cleaned', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  await store.containers.create('bb', { name: 'ca' })
  await store.containers.create('bb', { name: 'cb' })
  const spare = await waitForSkeleton(root)
  // Another store opening (its cleanup runs) leaves the locked staging dir alone.
  const other = await Store.open({ root })
  t.true(staged(root).ids.includes(spare))
  t.deepEqual((await other.containers.list({ all: true })).map((x) => x.names[0]).sort(), ['ca', 'cb'], 'a skeleton is not a container')
  const c = await store.containers.create('bb', { name: 'cc' })
  t.is(c.id, spare)
  t.is((await (await other.containers.get('cc')).run()).exitCode, 0)

  // A staging dir whose owner is gone (no lock held) goes at the next open, pieces and all.
  const dead = path.join(root, 'tmp', 'skeletons-0123456789abcdef')
  fs.cpSync(path.join(root, 'tmp', staged(root).dirs[0]), dead, { recursive: true, verbatimSymlinks: true })
  fs.writeFileSync(`${dead}.lock`, '')
  await store.close()
  await other.close()
  await checkConsistent(t, root)
  t.deepEqual((await (await Store.open({ root })).containers.list({ all: true })).map((x) => x.names[0]).sort(), ['ca', 'cb', 'cc'])
})

test('a create cut short after its layers were placed but before its container dir was: the reopened store has neither', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const keep = await store.containers.create('bb', { name: 'keep' })
  const half = await store.containers.create('bb', { name: 'half' })
  await store.close()
  // The moment between placeOps' two syncfs: layer record, layer dirs and l/ links in place, the
  // container's dir still staged in a dead process's staging dir.
  const deadStaging = path.join(root, 'tmp', 'skeletons-fedcba9876543210')
  fs.mkdirSync(deadStaging)
  fs.renameSync(path.join(root, 'containers', half.id), path.join(deadStaging, `${half.id}.ct`))
  const mountId = fs.readFileSync(path.join(root, 'image/overlay2/layerdb/mounts', half.id, 'mount-id'), 'utf8')
  await checkConsistent(t, root)
  t.false(fs.existsSync(path.join(root, 'overlay2', mountId)))
  t.false(fs.existsSync(path.join(root, 'overlay2', `${mountId}-init`)))
  t.false(fs.existsSync(path.join(root, 'image/overlay2/layerdb/mounts', half.id)))
  const s = await Store.open({ root })
  t.deepEqual((await s.containers.list({ all: true })).map((c) => c.id), [keep.id])
  t.is((await (await s.containers.get('keep')).run()).exitCode, 0)
})

test('a create whose renames were cut short by a crash before its final sync: a container without its layers is removed on open', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  const kept = await store.containers.create('bb', { name: 'kept' })
  const torn = await store.containers.create('bb', { name: 'torn' })
  const mountId = fs.readFileSync(path.join(root, 'image/overlay2/layerdb/mounts', torn.id, 'mount-id'), 'utf8')
  // What a crash can leave of the renames when they never reached the disk in order: the
  // container's dir and record are there, its writable layer's dir is not.
  fs.rmSync(path.join(root, 'overlay2', mountId), { recursive: true })
  await store.close()
  // and, as every crash does, the entry of a writer that never unregistered (ts/writers.ts):
  // what makes the next open run the full repair.
  leaveDeadWriter(root)
  const reopened = await Store.open({ root })
  t.deepEqual((await reopened.containers.list({ all: true })).map((c) => c.names[0]), ['kept'])
  t.false(fs.existsSync(path.join(root, 'containers', torn.id)))
  t.false(fs.existsSync(path.join(root, 'overlay2', `${mountId}-init`)))
  t.true(fs.existsSync(path.join(root, 'containers', kept.id)))
  await checkConsistent(t, root)
})

test('a create that fails after building its skeleton (a name taken meanwhile) leaves the skeletons of concurrent creates alone', async (t) => {
  const { root, store } = await storeWith(t, [busyboxImage(['bb:latest'])])
  // Two creates want one name: both pass the first check and build, one fails under the lock.
  // The other 14 are building or placing their skeletons in the same staging dir meanwhile.
  const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) =>
    store.containers.create('bb', i < 2 ? { name: 'dup' } : {})))
  const failed = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)
  t.deepEqual(failed, ['NameInUse'])
  t.is((await store.containers.list({ all: true })).length, 15)
  await store.close()
  await checkConsistent(t, root)
})
