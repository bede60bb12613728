/**
 * The small parsers under the daily commands: tar streams as GNU tar, PAX and Go write them
 * (what `cp - C:/path` accepts) and as strata writes them; docker's detach keys; the `until`
 * values of prune filters.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Readable, PassThrough } from 'node:stream'
import { tmpDir } from './helpers/fs'
import { listTar } from './helpers/tar-list'
import { readTar, writeTar, TarEntry } from '../ts/archive/tarstream'
import { DetachScanner, parseDetachKeys } from '../ts/containers/detach-keys'
import { parseUntil } from '../ts/prune'

async function read(buf: Buffer): Promise<{ e: TarEntry; data: string }[]> {
  const out: { e: TarEntry; data: string }[] = []
  for await (const e of readTar(Readable.from([buf]))) {
    const chunks: Buffer[] = []
    if (e.body) for await (const c of e.body()) chunks.push(c)
    out.push({ e, data: Buffer.concat(chunks).toString() })
  }
  return out
}

test('tar streams of GNU tar (long names and links), PAX (xattrs) and ustar read as written; bodies may be skipped', async (t) => {
  const dir = tmpDir(t)
  const src = path.join(dir, 'src')
  const long = `${'d'.repeat(120)}/${'f'.repeat(110)}`
  fs.mkdirSync(path.join(src, 'd'.repeat(120)), { recursive: true })
  fs.writeFileSync(path.join(src, long), 'deep\n')
  fs.symlinkSync(`../${'t'.repeat(150)}`, path.join(src, 'link'))
  fs.writeFileSync(path.join(src, 'small'), 'x'.repeat(1000))
  execFileSync('setfattr', ['-n', 'user.k', '-v', 'v1', path.join(src, 'small')])
  for (const format of ['gnu', 'posix', 'ustar']) {
    const args = ['-C', src, `--format=${format}`, '-cf', '-', ...(format === 'ustar' ? ['small'] : ['.']), ...(format === 'posix' ? ['--xattrs'] : [])]
    const buf = execFileSync('tar', args)
    const got = await read(buf)
    const names = got.map((g) => g.e.name)
    if (format !== 'ustar') {
      t.true(names.includes(`./${long}`), format)
      t.is(got.find((g) => g.e.name === './link')!.e.linkname, `../${'t'.repeat(150)}`, format)
      t.is(got.find((g) => g.e.name === `./${long}`)!.data, 'deep\n')
    }
    const small = got.find((g) => g.e.name.endsWith('small'))!
    t.is(small.data, 'x'.repeat(1000), format)
    if (format === 'posix') t.is(small.e.xattrs.get('user.k')?.toString(), 'v1')
  }
  // A consumer that skips bodies still gets every entry.
  const names: string[] = []
  for await (const e of readTar(Readable.from([execFileSync('tar', ['-C', src, '-cf', '-', '.'])]))) names.push(e.name)
  t.true(names.includes('./small'))
})

test('writeTar writes what readTar and an independent lister read back; broken streams are Go\'s errors', async (t) => {
  const entries: TarEntry[] = [
    { name: 'dir/', type: 'dir', mode: 0o750, uid: 1, gid: 2, uname: 'daemon', gname: 'bin', size: 0, mtime: 1600000000, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map() },
    { name: `dir/${'n'.repeat(200)}`, type: 'file', mode: 0o4755, uid: 3000000, gid: 0, uname: '', gname: '', size: 3, mtime: 1600000001, linkname: '', devmajor: 0, devminor: 0, xattrs: new Map([['security.capability', Buffer.from([1, 0, 0, 2])]]), body: async function* () { yield Buffer.from('abc') } },
    { name: 'dir/l', type: 'symlink', mode: 0o777, uid: 0, gid: 0, uname: '', gname: '', size: 0, mtime: 0, linkname: '/x', devmajor: 0, devminor: 0, xattrs: new Map() },
  ]
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  const bytes = await writeTar((async function* () { yield* entries })(), out)
  const buf = Buffer.concat(chunks)
  t.is(bytes, buf.length)
  const listed = listTar(buf)
  t.deepEqual(listed.map((e) => [e.name, e.type, e.mode, e.uid, e.uname]), [
    ['dir/', '5', 0o40750, 1, 'daemon'], [`dir/${'n'.repeat(200)}`, '0', 0o104755, 3000000, ''], ['dir/l', '2', 0o120777, 0, ''],
  ])
  const back = await read(buf)
  t.is(back[1].data, 'abc')
  t.deepEqual(back[1].e.xattrs.get('security.capability'), Buffer.from([1, 0, 0, 2]))
  await t.throwsAsync(read(buf.subarray(0, 700)), { code: 'CorruptArchive', message: 'unexpected EOF' })
  await t.throwsAsync(read(Buffer.from('not a tar\n'.repeat(60))), { code: 'CorruptArchive', message: 'archive/tar: invalid tar header' })
  t.deepEqual(await read(Buffer.alloc(0)), [])
})

test('detach keys: docker\'s spellings; a partial sequence is held back, a broken one passed on, a whole one detaches', (t) => {
  t.deepEqual(parseDetachKeys('ctrl-p,ctrl-q'), Buffer.from([16, 17]))
  t.deepEqual(parseDetachKeys('ctrl-@,a,ctrl-[,ctrl-_'), Buffer.from([0, 97, 27, 31]))
  t.throws(() => parseDetachKeys('ctrl-1'), { code: 'InvalidArgument' })
  const s = new DetachScanner(Buffer.from([16, 17]))
  t.deepEqual(s.feed(Buffer.from('ab\x10')), { pass: Buffer.from('ab'), detached: false })
  t.deepEqual(s.feed(Buffer.from('c')), { pass: Buffer.from('\x10c'), detached: false })
  t.deepEqual(s.feed(Buffer.from('\x10')), { pass: Buffer.alloc(0), detached: false })
  t.deepEqual(s.feed(Buffer.from('\x10\x11rest')), { pass: Buffer.from('\x10'), detached: true })
})

test('prune `until`: durations, unix times, dates and date-times as docker reads them', (t) => {
  const now = Date.parse('2026-01-02T03:04:05Z')
  t.is(parseUntil('1h', now), now - 3_600_000)
  t.is(parseUntil('1h30m', now), now - 5_400_000)
  t.is(parseUntil('1600000000', now), 1_600_000_000_000)
  t.is(parseUntil('1600000000.5', now), 1_600_000_000_500)
  t.is(parseUntil('2020-01-02T03:04:05Z', now), Date.parse('2020-01-02T03:04:05Z'))
  t.is(parseUntil('2020-01-02T03:04:05+02:00', now), Date.parse('2020-01-02T01:04:05Z'))
  t.is(parseUntil('2020-01-02', now), new Date(2020, 0, 2).getTime())
  t.throws(() => parseUntil('yesterday', now), { code: 'InvalidArgument', message: 'failed to parse value as time or duration: "yesterday"' })
})
