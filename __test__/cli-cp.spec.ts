/**
 * `cp` against the real engine: the same image in a private Docker Engine and in strata, the
 * same `cp` requests through both CLIs, and the results compared — the files each leaves on
 * the host (types, modes, owners, sizes, contents, link targets, mtimes), what each leaves in its
 * container (read back as the tar stream `cp C:/path -` produces, entry by entry, header fields
 * and data), stdout tar streams, error messages and exit codes. Both directions; trailing `/`
 * and `/.`, symlinks with and without `-L` (an absolute one resolved inside the container), `-a`
 * with a container user, a tar on stdin; stopped containers (strata reads and writes their
 * layers without mounting them) and running ones.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Dockerd } from './helpers/dockerd'
import { snapshot } from './helpers/fs'
import { buildImage, busyboxEntries, writeArchive } from './helpers/image'
import { tar, TarEntry } from './helpers/tar'
import { listTar } from './helpers/tar-list'
import { docker, strata, Ran } from './helpers/twin'
import { Store } from '../ts'

const engine = new Dockerd('strata-test-cp')
const IMAGE = 'strata-cp/img:1'
const T0 = 1600000000

function image() {
  const data: TarEntry[] = [
    { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1234:1234::/home/app:/bin/sh\n' },
    { name: 'etc/group', data: 'root:x:0:\nnogroup:x:65534:\napp:x:1234:\n' },
    { name: 'data/', type: 'dir', mtime: T0 },
    { name: 'data/dir/', type: 'dir', mode: 0o750, uid: 1234, gid: 1234, mtime: T0 },
    { name: 'data/dir/a.txt', data: 'alpha\n', uid: 1234, gid: 1234, mtime: T0 },
    { name: 'data/dir/sub/', type: 'dir', mtime: T0 },
    { name: 'data/dir/sub/b.txt', data: 'beta\n', mode: 0o600, mtime: T0 },
    { name: 'data/dir/hard', type: 'hardlink', linkname: 'data/dir/a.txt', uid: 1234, gid: 1234, mtime: T0 },
    { name: 'data/link-rel', type: 'symlink', linkname: 'dir/a.txt', mtime: T0 },
    { name: 'data/link-abs', type: 'symlink', linkname: '/data/dir', mtime: T0 },
    { name: 'data/link-etc', type: 'symlink', linkname: '/etc/passwd', mtime: T0 },
    { name: 'data/setuid', data: '#!/bin/sh\n', mode: 0o4755, mtime: T0 },
    { name: 'data/fifo', type: 'fifo', mode: 0o640, mtime: T0 },
  ]
  return buildImage({ layers: [tar(busyboxEntries()), tar(data)], tags: [IMAGE] })
}

/** The host tree both CLIs copy from. */
function sourceTree(dir: string): string {
  const src = path.join(dir, 'src')
  fs.mkdirSync(path.join(src, 'dir/sub'), { recursive: true })
  fs.writeFileSync(path.join(src, 'dir/f1'), 'one\n')
  fs.writeFileSync(path.join(src, 'dir/sub/f2'), 'two\n')
  fs.symlinkSync('f1', path.join(src, 'dir/lnk'))
  fs.symlinkSync('/etc/passwd', path.join(src, 'dir/abs'))
  fs.linkSync(path.join(src, 'dir/f1'), path.join(src, 'dir/hl'))
  fs.writeFileSync(path.join(src, 'file.txt'), 'file\n')
  fs.symlinkSync('dir', path.join(src, 'linkdir'))
  fs.chmodSync(path.join(src, 'dir/f1'), 0o4750)
  fs.chownSync(path.join(src, 'dir/f1'), 1234, 5678)
  for (const p of ['dir/f1', 'dir/sub/f2', 'file.txt', 'dir/sub', 'dir']) fs.utimesSync(path.join(src, p), T0, T0)
  return src
}

interface Side {
  name: 'docker' | 'strata'
  run(args: string[], input?: Buffer | string): Promise<Ran>
  /** This side's host output dir. */
  out: string
}

let dir = ''
let sides: Side[] = []
let root = ''

test.before(async () => {
  engine.start()
  dir = fs.mkdtempSync('/tmp/strata-cp-')
  root = path.join(dir, 'root')
  writeArchive(path.join(dir, 'img.tar'), [image()], 'docker25')
  sourceTree(dir)
  sides = [
    { name: 'docker', run: (a, i) => docker(engine, a, i), out: path.join(dir, 'out-docker') },
    { name: 'strata', run: (a, i) => strata(root, a, i), out: path.join(dir, 'out-strata') },
  ]
  for (const s of sides) {
    fs.mkdirSync(s.out)
    const r = await s.run(['load', '-i', path.join(dir, 'img.tar')])
    if (r.code !== 0) throw new Error(`${s.name} load: ${r.stderr}`)
    for (const [name, extra] of [['cpa', []], ['cpu', ['-u', 'nobody']]] as const) {
      const c = await s.run(['create', '--name', name, ...extra, IMAGE, 'sleep', '300'])
      if (c.code !== 0) throw new Error(`${s.name} create: ${c.stderr}`)
    }
  }
})

test.after.always(async () => {
  for (const s of sides) await s.run(['rm', '-f', 'cpa', 'cpu', 'cpr']).catch(() => undefined)
  engine.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Runs `cp` with `args` (`@OUT` = this side's host dir, `@SRC` = the shared source tree) on both sides. */
async function both(args: string[], input?: Buffer): Promise<Record<string, Ran & { stderrNorm: string }>> {
  const res: Record<string, Ran & { stderrNorm: string }> = {}
  for (const s of sides) {
    const a = args.map((x) => x.replace('@OUT', s.out).replace('@SRC', path.join(dir, 'src')))
    const r = await s.run(['cp', ...a], input)
    res[s.name] = { ...r, stderrNorm: r.stderr.split(s.out).join('@OUT') }
  }
  return res
}

/** Tar entries, with the mtimes of directories the copies changed (now, give or take a second) left out. */
function entries(buf: Buffer): unknown[] {
  return listTar(buf).map((e) => ({ ...e, mtime: e.type === '5' && e.mtime > T0 ? 'recent' : e.mtime }))
}

/** What a path in a container holds, as the tar stream `cp C:/path -` gives. */
async function inContainer(s: Side, container: string, p: string): Promise<unknown[]> {
  const r = await s.run(['cp', `${container}:${p}`, '-'])
  if (r.code !== 0) return [r.code, r.stderr]
  return entries(r.stdout)
}

function hostTree(p: string): unknown {
  if (!fs.existsSync(p)) return 'missing'
  const st = fs.lstatSync(p)
  if (!st.isDirectory()) return { single: snapshot(path.dirname(p), { mtimes: true, xattrs: false })[path.basename(p)] }
  return snapshot(p, { mtimes: true, xattrs: false })
}

const TO_CONTAINER: [string, string[], string][] = [
  ['a dir to a new path', ['@SRC/dir', 'cpa:/new1'], '/new1'],
  ['a dir into an existing dir', ['@SRC/dir', 'cpa:/data/dir'], '/data/dir'],
  ['a dir\'s contents (/.) into an existing dir', ['@SRC/dir/.', 'cpa:/data/dir/sub'], '/data/dir/sub'],
  ['a file to a new name', ['@SRC/file.txt', 'cpa:/new2.txt'], '/new2.txt'],
  ['a file into a dir', ['@SRC/file.txt', 'cpa:/data'], '/data/file.txt'],
  ['a file over a dir symlink (followed)', ['@SRC/file.txt', 'cpa:/data/link-abs'], '/data/dir/file.txt'],
  ['a symlink as a symlink', ['@SRC/linkdir', 'cpa:/ld'], '/ld'],
  ['a symlink followed (-L)', ['-L', '@SRC/linkdir', 'cpa:/ldL'], '/ldL'],
  ['-a in a container with a user', ['-a', '@SRC/dir', 'cpu:/owned'], '/owned'],
  ['without -a: owners from the source', ['@SRC/dir', 'cpu:/kept'], '/kept'],
]

test.serial('host → stopped container: the same files in both engines, for each kind of request', async (t) => {
  for (const [what, args, check] of TO_CONTAINER) {
    const r = await both(args)
    t.deepEqual([r.strata.code, r.strata.stderrNorm], [r.docker.code, r.docker.stderrNorm], what)
    const container = args.find((a) => a.includes(':'))!.split(':')[0]
    const [d, s] = await Promise.all(sides.map((side) => inContainer(side, container, check)))
    t.deepEqual(s, d, what)
  }
  // strata did it all without mounting the stopped containers.
  const store = await Store.open({ root })
  try {
    for (const name of ['cpa', 'cpu']) t.false(await (await store.containers.get(name)).isMounted(), name)
  } finally {
    await store.close()
  }
})

test.serial('host → container: a tar on stdin, and the errors docker reports', async (t) => {
  const stdinTar = execFileSync('tar', ['-C', path.join(dir, 'src'), '-cf', '-', 'dir', 'file.txt'])
  const r = await both(['-', 'cpa:/data/dir/sub'], stdinTar)
  t.deepEqual([r.strata.code, r.strata.stderrNorm], [r.docker.code, r.docker.stderrNorm])
  const [d, s] = await Promise.all(sides.map((side) => inContainer(side, 'cpa', '/data/dir/sub')))
  t.deepEqual(s, d)
  for (const [args, input] of [
    [['@SRC/nonexistent', 'cpa:/']], [['@SRC/dir', 'cpa:/nonexistent/deeper/']], [['@SRC/file.txt', 'cpa:/newdir/']],
    [['@SRC/dir', 'cpa:/data/dir/a.txt']], [['-', 'cpa:/data/setuid'], Buffer.alloc(0)], [['-', 'cpa:/tmp'], Buffer.from('not a tar\n')],
    [['@SRC/dir', 'nosuch:/x']], [['cpa:/etc', 'cpu:/x']], [['@SRC/a', '@OUT/b']],
  ] as [string[], Buffer?][]) {
    const e = await both(args, input)
    t.is(e.strata.code, e.docker.code, args.join(' '))
    t.is(e.strata.stderrNorm, e.docker.stderrNorm, args.join(' '))
  }
})

const FROM_CONTAINER: [string, string[], string][] = [
  ['a dir to a new path', ['cpa:/data/dir', '@OUT/d1'], 'd1'],
  ['a dir into an existing dir', ['cpa:/data/dir', '@OUT/'], 'dir'],
  ['a dir\'s contents (/.)', ['cpa:/data/dir/.', '@OUT/d2'], 'd2'],
  ['a relative symlink as is', ['cpa:/data/link-rel', '@OUT/l1'], 'l1'],
  ['a relative symlink followed (-L)', ['-L', 'cpa:/data/link-rel', '@OUT/l2'], 'l2'],
  ['an absolute dir symlink followed inside the container (-L)', ['-L', 'cpa:/data/link-abs', '@OUT/l3'], 'l3'],
  ['an absolute file symlink followed inside the container (-L)', ['-L', 'cpa:/data/link-etc', '@OUT/passwd-copy'], 'passwd-copy'],
  ['a setuid file', ['cpa:/data/setuid', '@OUT/'], 'setuid'],
  ['a fifo', ['cpa:/data/fifo', '@OUT/'], 'fifo'],
  ['a file over an existing file', ['cpa:/data/dir/a.txt', '@OUT/setuid'], 'setuid'],
]

test.serial('stopped container → host: the same files from both engines, and the same tar streams on stdout', async (t) => {
  for (const [what, args, check] of FROM_CONTAINER) {
    const r = await both(args)
    t.deepEqual([r.strata.code, r.strata.stderrNorm], [r.docker.code, r.docker.stderrNorm], what)
    const [d, s] = sides.map((side) => hostTree(path.join(side.out, check)))
    t.deepEqual(s, d, what)
  }
  for (const src of ['cpa:/data/dir', 'cpa:/data/dir/', 'cpa:/data/dir/.', 'cpa:/data/link-abs', 'cpa:/data/link-abs/', 'cpa:/etc/passwd', 'cpa:/data']) {
    const r = await both([src, '-'])
    t.is(r.strata.code, 0, r.strata.stderr)
    t.deepEqual(entries(r.strata.stdout), entries(r.docker.stdout), src)
  }
  const followed = await both(['-L', 'cpa:/data/link-etc', '-'])
  t.deepEqual(entries(followed.strata.stdout), entries(followed.docker.stdout))
  for (const args of [['cpa:/nonexistent', '@OUT/'], ['cpa:/data/dir', '@OUT/setuid'], ['cpa:/data/dir', '@OUT/no/such/dir'], ['cpa:/etc', '/dev/null']]) {
    const e = await both(args)
    t.is(e.strata.code, e.docker.code, args.join(' '))
    t.is(e.strata.stderrNorm, e.docker.stderrNorm, args.join(' '))
  }
})

test.serial('running container: both ways through the mounted rootfs, the same results as docker', async (t) => {
  for (const s of sides) t.is((await s.run(['run', '-d', '--name', 'cpr', IMAGE, 'sleep', '300'])).code, 0)
  for (const [what, args, check] of [
    ['in', ['@SRC/dir', 'cpr:/new1'], '/new1'],
    ['in, contents', ['@SRC/dir/.', 'cpr:/data/dir'], '/data/dir'],
  ] as [string, string[], string][]) {
    const r = await both(args)
    t.deepEqual([r.strata.code, r.strata.stderrNorm], [r.docker.code, r.docker.stderrNorm], what)
    const [d, s] = await Promise.all(sides.map((side) => inContainer(side, 'cpr', check)))
    t.deepEqual(s, d, what)
  }
  const out = await both(['cpr:/data/dir', '@OUT/running'])
  t.is(out.strata.code, 0, out.strata.stderr)
  t.deepEqual(hostTree(path.join(sides[1].out, 'running')), hostTree(path.join(sides[0].out, 'running')))
  // What the container's processes see is what was copied in.
  const seen = await Promise.all(sides.map((s) => s.run(['exec', 'cpr', 'cat', '/new1/sub/f2'])))
  t.deepEqual(seen.map((r) => r.stdout.toString()), ['two\n', 'two\n'])
})
