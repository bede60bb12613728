/**
 * The real Docker Engine as the judge of `pull`: `docker push` (a private dockerd) to the
 * distribution registry, then `strata pull` must give Docker's image ID and identical layer dirs,
 * and print what `docker pull` prints when not on a terminal.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as os from 'node:os'
import { Store } from '../ts'
import { tmpDir, snapshot, cli } from './helpers/fs'
import { Dockerd } from './helpers/dockerd'
import { writeArchive, buildImage, busyboxEntries } from './helpers/image'
import { tar } from './helpers/tar'
import { layer1Entries, layer3Entries } from './helpers/fixtures'
import { TestRegistry } from './helpers/registry'

const engine = new Dockerd('strata-registry-pull')
const docker = (...args: string[]): string => engine.docker(...args)
const base = fs.mkdtempSync(path.join(fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'strata-regd-'))
let reg: TestRegistry

test.before(() => {
  engine.start()
  reg = TestRegistry.start(path.join(base, 'reg'), 'plain')
})
test.after.always(() => {
  reg?.stop()
  engine.stop()
  fs.rmSync(base, { recursive: true, force: true })
})

/** Per-layer status sequences, in the order each id first appears, and the other lines. */
function shape(out: string): { plain: string[]; layers: Map<string, string[]> } {
  const plain: string[] = []
  const layers = new Map<string, string[]>()
  for (const line of out.trimEnd().split('\n')) {
    const m = /^([0-9a-f]{12}): (.*)$/.exec(line)
    if (m) layers.set(m[1], [...(layers.get(m[1]) ?? []), m[2]])
    else plain.push(line)
  }
  return { plain, layers }
}

test.serial('docker push → strata pull: Docker\'s image ID, identical layer dirs, docker pull\'s lines', async (t) => {
  const dir = tmpDir(t)
  const ref = `${reg.host}/interop/rich`
  // gzip layers (Docker 20.10 loads no zstd): busybox and what layer 3's whiteouts and opaque
  // dir act on. (The rich base layer's overlay xattrs on a file are where strata and Docker differ
  // on purpose; __test__/extract-docker.spec.ts compares the extractors entry by entry.)
  const base = [
    ...busyboxEntries(),
    { name: 'usr/', type: 'dir' as const }, { name: 'usr/share/', type: 'dir' as const }, { name: 'usr/share/doc/', type: 'dir' as const },
    { name: 'usr/share/doc/a.txt', data: 'whited out\n' }, { name: 'usr/share/doc/b.txt', data: 'stays\n' },
    { name: 'srv/', type: 'dir' as const }, { name: 'srv/data.txt', data: 'gone later\n' },
    { name: 'opt/', type: 'dir' as const }, { name: 'opt/app/', type: 'dir' as const }, { name: 'opt/app/old.txt', data: 'hidden\n' },
  ]
  const img = buildImage({ layers: [tar(base), tar(layer1Entries()), tar(layer3Entries())], compression: ['gzip', 'gzip', 'gzip'], tags: [`${ref}:1`] })
  writeArchive(path.join(dir, 'in.tar'), [img], 'legacy')
  docker('load', '-i', path.join(dir, 'in.tar'))
  docker('push', `${ref}:1`)
  const [info] = JSON.parse(docker('image', 'inspect', `${ref}:1`))
  docker('rmi', `${ref}:1`)
  const dockerOut = docker('pull', `${ref}:1`)
  const [pulled] = JSON.parse(docker('image', 'inspect', `${ref}:1`))

  const root = path.join(dir, 'root')
  const r = await cli(root, ['pull', `${ref}:1`])
  t.is(r.code, 0, r.stderr)
  const mine = shape(r.stdout)
  const theirs = shape(dockerOut)
  t.deepEqual(mine.plain, theirs.plain)
  t.deepEqual([...mine.layers.keys()].sort(), [...theirs.layers.keys()].sort())
  const full = ['Pulling fs layer', 'Verifying Checksum', 'Download complete', 'Pull complete']
  for (const [id, seq] of theirs.layers) {
    t.deepEqual(mine.layers.get(id), full, id)
    // Docker's transfer manager hands watchers only the latest status, so for a quick layer it may
    // drop `Verifying Checksum` and even `Download complete` (seen in CI); it waits for 3 download
    // slots where strata has 8 (`Waiting`). What Docker printed is strata's sequence with some of
    // the middle left out: it starts and ends as strata's does, in the same order.
    const core = seq.filter((s) => s !== 'Waiting')
    t.is(core[0], 'Pulling fs layer', `docker: ${id}`)
    t.is(core[core.length - 1], 'Pull complete', `docker: ${id}`)
    const inOrder = core.every((s, i) => full.includes(s) && (i === 0 || full.indexOf(s) > full.indexOf(core[i - 1])))
    t.true(inOrder, `docker: ${id}: ${core.join(', ')}`)
  }

  const store = await Store.open({ root })
  const insp = await store.images.inspect(`${ref}:1`)
  t.is(insp.Id, info.Id)
  t.deepEqual(insp.RepoDigests, pulled.RepoDigests)
  const dirsOf = (g: { Data: Record<string, string> }): string[] => [g.Data.UpperDir, ...(g.Data.LowerDir ? g.Data.LowerDir.split(':') : [])]
  const mineDirs = dirsOf(insp.GraphDriver as { Data: Record<string, string> })
  const theirDirs = dirsOf(pulled.GraphDriver)
  t.is(mineDirs.length, theirDirs.length)
  // Docker gives whiteouts (char 0/0) the time they were made, not the tar header's.
  const files = (d: string): ReturnType<typeof snapshot> => {
    const s = snapshot(d, { mtimes: true })
    for (const n of Object.values(s)) if (n.type === 'char' && n.rdev === 0) delete n.mtime
    return s
  }
  for (let i = 0; i < mineDirs.length; i++) t.deepEqual(files(mineDirs[i]), files(theirDirs[i]), `layer ${i} from the top`)
  await store.close()
  docker('rmi', `${ref}:1`)
})
