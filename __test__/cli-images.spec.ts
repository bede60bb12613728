import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { tmpDir, cli } from './helpers/fs'
import { writeArchive, buildImage, busyboxLayer } from './helpers/image'
import { richImage, busyboxImage } from './helpers/fixtures'
import { tar } from './helpers/tar'

async function loaded(t: Parameters<typeof tmpDir>[0]) {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const rich = richImage(['rich:latest'])
  const bb = busyboxImage(['busybox:latest'])
  writeArchive(path.join(dir, 'in.tar'), [rich, bb], 'docker25')
  const r = await cli(root, ['load', '-i', path.join(dir, 'in.tar')])
  t.is(r.code, 0, r.stderr)
  return { dir, root, rich, bb }
}

test('images prints Docker columns, sizes and ages; -q, --no-trunc, --digests, --format, filters', async (t) => {
  const { root, rich, bb } = await loaded(t)
  const r = await cli(root, ['images'])
  t.is(r.code, 0, r.stderr)
  const lines = r.stdout.trimEnd().split('\n')
  t.regex(lines[0], /^REPOSITORY\s{3,}TAG\s{3,}IMAGE ID\s{3,}CREATED\s{3,}SIZE$/)
  t.is(lines.length, 3)
  const row = lines.find((l) => l.startsWith('rich '))!
  t.regex(row, new RegExp(`^rich\\s+latest\\s+${rich.id.slice(7, 19)}\\s+2 years ago\\s+\\d+(\\.\\d+)?[kM]B$`))
  // Columns line up as docker's tabwriter does.
  t.is(lines[0].indexOf('IMAGE ID'), row.indexOf(rich.id.slice(7, 19)))
  t.deepEqual((await cli(root, ['images', '-q'])).stdout.trim().split('\n').sort(), [rich.id.slice(7, 19), bb.id.slice(7, 19)].sort())
  t.true((await cli(root, ['images', '-q', '--no-trunc'])).stdout.includes(rich.id))
  t.regex((await cli(root, ['images', '--digests'])).stdout.split('\n')[0], /^REPOSITORY\s+TAG\s+DIGEST\s+IMAGE ID\s+CREATED\s+SIZE$/)
  t.is((await cli(root, ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}', 'rich'])).stdout, `rich:latest ${rich.id.slice(7, 19)}\n`)
  t.is((await cli(root, ['images', '-f', 'reference=busy*', '--format', '{{.Repository}}'])).stdout, 'busybox\n')
  t.is((await cli(root, ['images', '-f', 'dangling=true', '-q'])).stdout, '')
  const bad = await cli(root, ['images', '-f', 'color=blue'])
  t.is(bad.code, 1)
  t.regex(bad.stderr, /invalid filter 'color'/)
})

test('tag, then rmi prints Untagged/Deleted lines as Docker does, and refuses conflicts without -f', async (t) => {
  const { root, bb } = await loaded(t)
  t.is((await cli(root, ['tag', 'busybox', 'mine/bb:v1'])).code, 0)
  t.is((await cli(root, ['tag', 'busybox:latest', 'localhost:5000/bb:2'])).code, 0)
  const listed = (await cli(root, ['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.trim().split('\n').sort()
  t.deepEqual(listed, ['busybox:latest', 'localhost:5000/bb:2', 'mine/bb:v1', 'rich:latest'])
  // By ID while several repositories reference it: a conflict.
  const conflict = await cli(root, ['rmi', bb.id.slice(7, 19)])
  t.is(conflict.code, 1)
  t.is(conflict.stderr, `Error: conflict: unable to delete ${bb.id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories\n`)
  // By tag: only untags.
  const untag = await cli(root, ['rmi', 'mine/bb:v1'])
  t.is(untag.stdout, 'Untagged: mine/bb:v1\n')
  // Forced by ID: untags the rest and deletes image and layer.
  const gone = await cli(root, ['rmi', '-f', bb.id.slice(7, 19)])
  t.is(gone.code, 0, gone.stderr)
  const out = gone.stdout.trim().split('\n')
  t.deepEqual(out.slice(0, 2).sort(), ['Untagged: busybox:latest', 'Untagged: localhost:5000/bb:2'])
  t.is(out[2], `Deleted: ${bb.id}`)
  t.is(out[3], `Deleted: ${bb.diffIds[0]}`, 'the one layer, by ChainID (= DiffID for a base layer)')
  t.is(out.length, 4)
  const missing = await cli(root, ['rmi', 'busybox'])
  t.is(missing.code, 1)
  t.is(missing.stderr, 'Error: No such image: busybox:latest\n')
})

test('rmi keeps layers another image still uses', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const base = busyboxLayer()
  const a = buildImage({ layers: [base, tar([{ name: 'a', data: 'a' }])], tags: ['a:1'] })
  const b = buildImage({ layers: [base, tar([{ name: 'b', data: 'b' }])], tags: ['b:1'] })
  writeArchive(path.join(dir, 'ab.tar'), [a, b], 'docker25')
  await cli(root, ['load', '-i', path.join(dir, 'ab.tar')])
  const r = await cli(root, ['rmi', 'a:1'])
  const lines = r.stdout.trim().split('\n')
  t.is(lines.length, 3, r.stdout) // Untagged, Deleted image, Deleted top layer only
  t.is(lines[0], 'Untagged: a:1')
  t.is(lines[1], `Deleted: ${a.id}`)
  const base0 = a.diffIds[0]
  t.true(fs.existsSync(path.join(root, 'image/overlay2/layerdb/sha256', base0.slice(7))))
})

test('inspect prints Docker image JSON; --format with field paths and json', async (t) => {
  const { root, rich } = await loaded(t)
  const r = await cli(root, ['inspect', 'rich'])
  t.is(r.code, 0, r.stderr)
  t.true(r.stdout.startsWith('[\n    {\n        "Id": "sha256:'))
  const [info] = JSON.parse(r.stdout)
  t.deepEqual(Object.keys(info), ['Id', 'RepoTags', 'RepoDigests', 'Parent', 'Comment', 'Created', 'Container', 'ContainerConfig', 'DockerVersion', 'Author', 'Config', 'Architecture', 'Os', 'Size', 'VirtualSize', 'GraphDriver', 'RootFS', 'Metadata'])
  t.is(info.Id, rich.id)
  t.deepEqual(info.RepoTags, ['rich:latest'])
  t.is(info.Created, '2024-01-02T03:04:05.123456789Z')
  t.deepEqual(info.Config.Cmd, ['sh'])
  t.is(info.Config.Hostname, '')
  t.deepEqual(info.RootFS, { Type: 'layers', Layers: rich.diffIds })
  t.is(info.GraphDriver.Name, 'overlay2')
  t.true(fs.existsSync(info.GraphDriver.Data.UpperDir))
  t.is((await cli(root, ['inspect', '--format', '{{.Id}}', 'rich'])).stdout, `${rich.id}\n`)
  t.is((await cli(root, ['image', 'inspect', '-f', '{{json .RootFS}}', 'rich'])).stdout, `${JSON.stringify({ Type: 'layers', Layers: rich.diffIds })}\n`)
  t.is((await cli(root, ['inspect', '-f', '{{.Config.Cmd}} {{.Os}}', 'rich'])).stdout, '[sh] linux\n')
  const none = await cli(root, ['inspect', 'nothing:here'])
  t.is(none.code, 1)
  t.is(none.stderr, 'Error: No such object: nothing:here\n')
  t.is(none.stdout, '[]\n')
})

test('history shows each step with <missing> below the image, sizes and comments', async (t) => {
  const { root, rich } = await loaded(t)
  const r = await cli(root, ['history', 'rich'])
  t.is(r.code, 0, r.stderr)
  const lines = r.stdout.trimEnd().split('\n')
  t.regex(lines[0], /^IMAGE\s{3,}CREATED\s{3,}CREATED BY\s{3,}SIZE\s{3,}COMMENT$/)
  t.is(lines.length, 5)
  t.true(lines[1].startsWith(rich.id.slice(7, 19)))
  t.regex(lines[1], /\/bin\/sh -c rm -rf \/srv \/usr\/share\/doc\/a\.txt\s+\d+B/)
  t.regex(lines[2], /^<missing>\s+2 years ago\s+\/bin\/sh -c true\s+0B\s*$/)
  t.true(lines[4].startsWith('<missing>'))
  const q = await cli(root, ['history', '-q', 'rich'])
  t.deepEqual(q.stdout.trim().split('\n'), [rich.id.slice(7, 19), '<missing>', '<missing>', '<missing>'])
  const full = await cli(root, ['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}|{{.Size}}', 'rich'])
  t.is(full.stdout.split('\n')[0], `${rich.id}|/bin/sh -c rm -rf /srv /usr/share/doc/a.txt|${full.stdout.split('\n')[0].split('|')[2]}`)
})

test('import makes a one-layer image from a rootfs tarball, from a file or stdin, as docker import', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  const rootfs = busyboxLayer()
  fs.writeFileSync(path.join(dir, 'rootfs.tar'), rootfs)
  const a = await cli(root, ['import', path.join(dir, 'rootfs.tar'), 'base:file'])
  t.is(a.code, 0, a.stderr)
  t.regex(a.stdout, /^sha256:[0-9a-f]{64}\n$/)
  const b = await cli(root, ['import', '-c', 'CMD ["sh"]', '-c', 'ENV A=1', '-', 'base:stdin'], rootfs)
  t.is(b.code, 0, b.stderr)
  const [info] = JSON.parse((await cli(root, ['inspect', 'base:stdin'])).stdout)
  t.deepEqual(info.Config.Cmd, ['sh'])
  t.deepEqual(info.Config.Env, ['A=1'])
  t.is(info.Comment, 'Imported from -')
  t.is(info.RootFS.Layers.length, 1)
  const h = await cli(root, ['history', '--format', '{{.Comment}}', 'base:file'])
  t.is(h.stdout, `Imported from ${path.join(dir, 'rootfs.tar')}\n`)
  const bad = await cli(root, ['import', path.join(dir, 'rootfs.tar'), 'Bad:Ref'])
  t.is(bad.code, 1)
  t.regex(bad.stderr, /must be lowercase/)
  t.deepEqual((await cli(root, ['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.trim().split('\n').sort(), ['base:file', 'base:stdin'])
})

test('save and load through the CLI, stdin and stdout included', async (t) => {
  const { dir, root, rich } = await loaded(t)
  const s = await cli(root, ['save', '-o', path.join(dir, 'out.tar'), 'rich'])
  t.is(s.code, 0, s.stderr)
  const root2 = path.join(dir, 'root2')
  const l = await cli(root2, ['load'], fs.readFileSync(path.join(dir, 'out.tar')))
  t.is(l.code, 0, l.stderr)
  t.is(l.stdout, 'Loaded image: rich:latest\n')
  t.is(JSON.parse((await cli(root2, ['inspect', 'rich'])).stdout)[0].Id, rich.id)
})
