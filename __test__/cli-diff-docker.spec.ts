/**
 * The real Docker Engine as the judge of `diff`: seeded random change scripts (adds, appends,
 * no-op and real chmod/chown, touch, deletes, renames, hard links, symlinks, directories removed
 * and re-created, fifos and device nodes) run in a container of the same image under the private
 * dockerd and under strata; `strata diff` must list exactly the lines `docker diff` lists.
 *
 * The engine builds its list from Go maps, so its order changes from call to call; the test
 * sorts docker's lines by path (component-wise, as strata prints them) and compares with
 * strata's output as printed — the same lines, and strata's in path order. Nothing else is
 * normalised.
 */
import test from 'ava'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import { Dockerd } from './helpers/dockerd'
import { cli } from './helpers/fs'
import { storeWith } from './helpers/container'
import { buildImage, busyboxEntries, writeArchive } from './helpers/image'
import { tar, TarEntry } from './helpers/tar'
import { rng } from './helpers/union-fuzz'

const engine = new Dockerd('strata-test-cli-diff')
const docker = (...args: string[]): string => engine.docker(...args)
const SCRIPTS = 60
const IMAGE = `strata-diff/world:${randomBytes(3).toString('hex')}`

/**
 * busybox, a layer with a small world to change (modes, owners, a symlink, a hard link, a fifo,
 * nested and empty dirs), and a layer over it with a whiteout and an opaque dir, so lookups in
 * the lowers meet both.
 */
function worldImage() {
  const world: TarEntry[] = [
    { name: 'data/', type: 'dir' },
    { name: 'data/a', data: 'a\n' },
    { name: 'data/b', data: 'bb\n', mode: 0o640, uid: 1000, gid: 1000 },
    { name: 'data/c', data: '', mode: 0o600 },
    { name: 'data/exe', data: '#!/bin/sh\n', mode: 0o755 },
    { name: 'data/link', type: 'symlink', linkname: 'a' },
    { name: 'data/hard', type: 'hardlink', linkname: 'data/a' },
    { name: 'data/fifo', type: 'fifo', mode: 0o644 },
    { name: 'data/empty/', type: 'dir', mode: 0o750 },
    { name: 'data/sub/', type: 'dir' },
    { name: 'data/sub/x', data: 'x\n' },
    { name: 'data/sub/y', data: 'yy\n' },
    { name: 'data/sub/inner/', type: 'dir', mode: 0o700 },
    { name: 'data/sub/inner/z', data: 'z\n' },
    { name: 'opt/', type: 'dir' }, { name: 'opt/app/', type: 'dir' },
    { name: 'opt/app/old.txt', data: 'old\n' }, { name: 'opt/app/keep.txt', data: 'keep\n' },
    { name: 'srv/', type: 'dir' }, { name: 'srv/data.txt', data: 'data\n' }, { name: 'srv/more.txt', data: 'more\n' },
    { name: 'etc/', type: 'dir' }, { name: 'etc/motd', data: 'hello\n' },
  ]
  const over: TarEntry[] = [
    { name: 'srv/', type: 'dir' }, { name: 'srv/.wh.data.txt', data: '' },
    { name: 'opt/', type: 'dir' }, { name: 'opt/app/', type: 'dir' }, { name: 'opt/app/.wh..wh..opq', data: '' },
    { name: 'opt/app/fresh.txt', data: 'fresh\n' },
    { name: 'data/', type: 'dir' }, { name: 'data/sub/', type: 'dir' }, { name: 'data/sub/later', data: 'later\n' },
  ]
  return buildImage({ layers: [tar(busyboxEntries()), tar(world), tar(over)], tags: [IMAGE] })
}

const FILES = ['/data/a', '/data/b', '/data/c', '/data/exe', '/data/hard', '/data/sub/x', '/data/sub/y', '/data/sub/inner/z', '/data/sub/later', '/opt/app/fresh.txt', '/srv/more.txt', '/etc/motd']
const DIRS = ['/data', '/data/sub', '/data/sub/inner', '/data/empty', '/opt/app', '/opt', '/srv']
const SPECIAL = ['/data/link', '/data/fifo']

/** A change script of 2 to 8 steps; steps that fail (a path already gone) fail alike in both engines. */
function changeScript(seed: number): string {
  const rnd = rng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  let n = 0
  const fresh = (): string => `${pick(['/data', '/data/sub', '/srv', '/opt/app', '/data/empty', '/'])}/n${seed}-${n++}`.replace('//', '/')
  const any = (): string => pick([...FILES, ...FILES, ...DIRS, ...SPECIAL])
  const steps: (() => string)[] = [
    () => `echo ${seed} > ${fresh()}`,
    () => `echo more >> ${pick(FILES)}`,
    () => { const f = pick([...FILES, ...DIRS]); return `chmod $(stat -c %a ${f}) ${f}` },
    () => `chmod ${pick(['600', '644', '755', '700', '4755'])} ${pick([...FILES, ...DIRS])}`,
    () => { const f = pick([...FILES, ...DIRS]); return `busybox chown $(stat -c %u:%g ${f}) ${f}` },
    () => `busybox chown ${pick(['1000:1000', '0:0', '4321:1234'])} ${pick([...FILES, ...DIRS])}`,
    () => `touch ${pick([...FILES, ...DIRS])}`,
    () => { const f = pick(FILES); return `touch -r ${f} ${f}` },
    () => `rm -f ${pick([...FILES, ...SPECIAL])}`,
    () => `rm -rf ${pick(DIRS)}`,
    () => `mv ${any()} ${fresh()}`,
    () => `mv ${pick(FILES)} ${pick(FILES)}`,
    () => `ln ${pick(FILES)} ${fresh()}`,
    () => `ln -s ${pick(['a', '/data/b', '../x', 'nowhere'])} ${fresh()}`,
    () => { const d = pick(DIRS); return `rm -rf ${d} && mkdir ${d}` },
    () => { const d = pick(DIRS); return `rm -rf ${d} && mkdir -p ${d} && echo again > ${d}/${pick(['x', 'z', 'later', 'keep.txt', 'fresh.txt', 'new'])}` },
    () => `busybox mkfifo ${fresh()}`,
    () => `busybox mknod ${fresh()} c 1 3`,
    () => `busybox mknod ${fresh()} b 7 ${Math.floor(rnd() * 8)}`,
    () => `mkdir -p ${fresh()}/deep/er && echo d > ${fresh()}`,
    () => { const f = pick(FILES); return `rm -f ${f} && mkdir ${f}` },
    () => { const d = pick(DIRS); return `rm -rf ${d} && echo file > ${d}` },
    () => `echo resurrected > /srv/data.txt`,
    () => `echo > ${pick(['/opt/app/old.txt', '/data/sub/inner/new', '/data/empty/e'])}`,
  ]
  const count = 2 + Math.floor(rnd() * 7)
  return Array.from({ length: count }, () => `${pick(steps)()} 2>/dev/null`).join('; ').concat('; true')
}

/** `docker diff`'s path order as strata prints it: component-wise ('/' before any other byte). */
function byPath(lines: string[]): string[] {
  const key = (l: string) => l.slice(2).split('/')
  return [...lines].sort((x, y) => {
    const a = key(x)
    const b = key(y)
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1
    return a.length - b.length
  })
}

test.before(() => engine.start())
test.after.always(() => engine.stop())

test.serial(`${SCRIPTS} seeded change scripts: strata diff prints what docker diff prints`, async (t) => {
  const img = worldImage()
  const { dir, root, store } = await storeWith(t, [img])
  writeArchive(path.join(dir, 'world.tar'), [img], 'docker25')
  docker('load', '-i', path.join(dir, 'world.tar'))
  t.teardown(() => { try { docker('rmi', '-f', IMAGE) } catch { /* gone */ } })
  const bad: string[] = []
  let nonEmpty = 0
  for (let seed = 1; seed <= SCRIPTS; seed++) {
    const script = changeScript(seed)
    const name = `diff-${seed}-${randomBytes(3).toString('hex')}`
    docker('run', '--name', name, '--network', 'none', IMAGE, 'sh', '-c', script)
    const want = byPath(docker('diff', name).split('\n').filter(Boolean))
    docker('rm', name)
    const c = await store.containers.create(IMAGE, { name, cmd: ['sh', '-c', script] })
    const r = await c.run()
    t.is(r.exitCode, 0, r.stderr.toString())
    // The CLI for the first scripts (what a user sees), the API for the rest (same code below).
    const got = seed <= 5 ? (await cli(root, ['diff', name])).stdout.split('\n').filter(Boolean) : (await c.diff()).map((x) => `${x.kind} ${x.path}`)
    if (want.length > 0) nonEmpty++
    if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(`seed ${seed}: ${script}\n  docker: ${want.join(', ')}\n  strata: ${got.join(', ')}`)
    await store.containers.remove(c.id)
  }
  t.true(nonEmpty > SCRIPTS / 2, 'most scripts change something')
  t.deepEqual(bad, [], `${bad.length} of ${SCRIPTS} scripts differ`)
})
