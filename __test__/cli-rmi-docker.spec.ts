/**
 * The real Docker Engine as the judge of `rmi`: each case sets up the same state in the private
 * dockerd and in a fresh strata store (the same image loaded into both, then tags, stopped and
 * running containers, child images made by `commit`), runs the same `rmi` in both, and compares
 * stdout, stderr, the exit code and the image list afterwards.
 *
 * What is normalised, and only that: IDs that cannot be equal between two engines — container
 * IDs, and the image and layer IDs of images made by `commit` (their configs carry a creation
 * time) — are replaced by the name they were made under. Image IDs of the loaded image and its
 * layer ChainIDs are the same bytes in both and are compared as printed. The docker CLI's own
 * name in messages is not involved: rmi's messages come from the daemon.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { Dockerd } from './helpers/dockerd'
import { cli, tmpDir } from './helpers/fs'
import { buildImage, busyboxEntries, writeArchive } from './helpers/image'
import { tar } from './helpers/tar'
import { execFile } from 'node:child_process'

const engine = new Dockerd('strata-test-cli-rmi')
const run = randomBytes(3).toString('hex')
const W = `rmiw${run}`
const V = `rmiv${run}`

/** Two images sharing the busybox base layer. */
const world = buildImage({ layers: [tar(busyboxEntries()), tar([{ name: 'w', data: 'w\n' }])], tags: [`${W}:1`] })
const other = buildImage({ layers: [tar(busyboxEntries()), tar([{ name: 'v', data: 'v\n' }])], tags: [`${V}:1`] })

type Step =
  | ['tag', string, string]
  | ['create', string, string]
  | ['run', string, string]
  | ['commit', string, string]
  | ['rm', string]
  | ['rmi', string]

interface Case {
  title: string
  setup: Step[]
  /** The command compared; its arguments may name `@ID` (the loaded image's ID) or `@ID:<ref>` / `@SHORT`. */
  rmi: string[]
}

const ID = world.id
const CASES: Case[] = [
  { title: 'two tags, a container on one: rmi of the other untags', setup: [['tag', `${W}:1`, 'rmib:1'], ['create', 'c1', `${W}:1`]], rmi: ['rmib:1'] },
  { title: 'two tags, a container on one: rmi of that one untags too', setup: [['tag', `${W}:1`, 'rmib:1'], ['create', 'c1', `${W}:1`]], rmi: [`${W}:1`] },
  { title: 'single tag, stopped container: refused (must force)', setup: [['create', 'c1', `${W}:1`]], rmi: [`${W}:1`] },
  { title: 'single tag, stopped container, -f: untagged, the image stays', setup: [['create', 'c1', `${W}:1`]], rmi: ['-f', `${W}:1`] },
  { title: 'by ID, stopped container: refused (must be forced)', setup: [['create', 'c1', `${W}:1`]], rmi: [ID] },
  { title: 'by ID, stopped container, -f: untagged and deleted, the layers stay', setup: [['create', 'c1', `${W}:1`]], rmi: ['-f', ID] },
  { title: 'by short ID, running container, -f: refused (cannot be forced)', setup: [['run', 'r1', `${W}:1`]], rmi: ['-f', ID.slice(7, 19)] },
  { title: 'single tag, running container: refused', setup: [['run', 'r1', `${W}:1`]], rmi: [`${W}:1`] },
  { title: 'single tag, running container, -f: untagged only', setup: [['run', 'r1', `${W}:1`]], rmi: ['-f', `${W}:1`] },
  { title: 'tags in two repositories, by ID: refused', setup: [['tag', `${W}:1`, 'rmib:1']], rmi: [ID] },
  { title: 'tags in two repositories, by ID, -f: all untagged, deleted', setup: [['tag', `${W}:1`, 'rmib:1']], rmi: ['-f', ID] },
  { title: 'two tags in one repository, by ID: refused', setup: [['tag', `${W}:1`, `${W}:2`]], rmi: [ID] },
  { title: 'no containers, by tag: untagged, image and unshared layers deleted', setup: [], rmi: [`${W}:1`] },
  { title: 'shared base layer stays with the other image', setup: [], rmi: [`${W}:1`, `${V}:1`] },
  { title: 'unknown image, then a good one: error line, untag lines, exit 1', setup: [], rmi: ['nope:9', `${W}:1`] },
  { title: 'parent with a committed child: untagging the parent keeps it', setup: [['create', 'c1', `${W}:1`], ['commit', 'c1', 'rmichild:1'], ['rm', 'c1']], rmi: [`${W}:1`] },
  { title: 'parent with a child, by ID: refused (cannot be forced), even with -f', setup: [['create', 'c1', `${W}:1`], ['commit', 'c1', 'rmichild:1']], rmi: ['-f', ID] },
  { title: 'child removed: the untagged parent is pruned with it', setup: [['create', 'c1', `${W}:1`], ['commit', 'c1', 'rmichild:1'], ['rm', 'c1'], ['rmi', `${W}:1`]], rmi: ['rmichild:1'] },
  { title: 'child removed with --no-prune: the untagged parent stays', setup: [['create', 'c1', `${W}:1`], ['commit', 'c1', 'rmichild:1'], ['rm', 'c1'], ['rmi', `${W}:1`]], rmi: ['--no-prune', 'rmichild:1'] },
]

interface Result { code: number; stdout: string; stderr: string }

function dockerCmd(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile('docker', args, { env: { ...process.env, DOCKER_HOST: engine.host } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

/** The two sides: `docker` against the engine, `strata` against a fresh root. */
interface Side {
  name: 'docker' | 'strata'
  cmd(args: string[]): Promise<Result>
}

async function must(side: Side, args: string[]): Promise<string> {
  const r = await side.cmd(args)
  if (r.code !== 0) throw new Error(`${side.name} ${args.join(' ')}: exit ${r.code}: ${r.stderr}`)
  return r.stdout.trim()
}

const chain = (ids: string[]): string[] => {
  const out: string[] = []
  for (const d of ids) out.push(out.length === 0 ? d : `sha256:${createHash('sha256').update(`${out[out.length - 1]} ${d}`).digest('hex')}`)
  return out
}

/** Runs a case's set-up on one side; returns the IDs to replace by names. */
async function setUp(side: Side, steps: Step[]): Promise<Map<string, string>> {
  const names = new Map<string, string>()
  for (const step of steps) {
    const [op, a, b] = step
    if (op === 'tag') await must(side, ['tag', a, b])
    else if (op === 'create') names.set(await must(side, ['create', '--name', a, '--network', 'none', b, 'true']), `<container ${a}>`)
    else if (op === 'run') names.set(await must(side, ['run', '-d', '--name', a, '--network', 'none', b, 'sleep', '300']), `<container ${a}>`)
    else if (op === 'commit') {
      const id = await must(side, ['commit', a, b])
      names.set(id.startsWith('sha256:') ? id : `sha256:${id}`, `<image ${b}>`)
      const layers: string[] = JSON.parse(await must(side, ['inspect', '--format', '{{json .RootFS.Layers}}', b]))
      names.set(chain(layers).pop()!, `<layer of ${b}>`)
    } else if (op === 'rm') await must(side, ['rm', '-f', a])
    else await must(side, ['rmi', a])
  }
  return names
}

function normalise(s: string, names: Map<string, string>): string {
  let out = s
  for (const [id, name] of names) {
    const h = id.replace(/^sha256:/, '')
    out = out.split(`sha256:${h}`).join(name).split(h).join(name).split(h.slice(0, 12)).join(name)
  }
  return out
}

async function imagesOf(side: Side, names: Map<string, string>): Promise<string> {
  const out = await must(side, ['images', '-a', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'])
  return normalise(out.split('\n').filter(Boolean).sort().join('\n'), names)
}

async function cleanDocker(): Promise<void> {
  const ids = (await dockerCmd(['ps', '-aq'])).stdout.split('\n').filter(Boolean)
  if (ids.length) await dockerCmd(['rm', '-f', ...ids])
  const imgs = (await dockerCmd(['images', '-aq'])).stdout.split('\n').filter(Boolean)
  if (imgs.length) await dockerCmd(['rmi', '-f', ...new Set(imgs)])
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-rmi-'))
const archive = path.join(work, 'images.tar')
test.before(() => {
  engine.start()
  writeArchive(archive, [world, other], 'docker25')
})
test.after.always(async () => {
  await cleanDocker()
  engine.stop()
  fs.rmSync(work, { recursive: true, force: true })
})

for (const c of CASES) {
  test.serial(`rmi as the engine decides it: ${c.title}`, async (t) => {
    await cleanDocker()
    await must({ name: 'docker', cmd: dockerCmd }, ['load', '-i', archive])
    const root = path.join(tmpDir(t), 'root')
    const strata: Side = { name: 'strata', cmd: (args) => cli(root, args) }
    const docker: Side = { name: 'docker', cmd: dockerCmd }
    await must(strata, ['load', '-i', archive])
    const names = new Map([...(await setUp(docker, c.setup)), ...(await setUp(strata, c.setup))])
    const want = await docker.cmd(['rmi', ...c.rmi])
    const got = await strata.cmd(['rmi', ...c.rmi])
    t.is(normalise(got.stdout, names), normalise(want.stdout, names), 'stdout')
    t.is(normalise(got.stderr, names), normalise(want.stderr, names), 'stderr')
    t.is(got.code, want.code, 'exit code')
    t.is(await imagesOf(strata, names), await imagesOf(docker, names), 'images afterwards')
    await strata.cmd(['rm', '-f', 'r1', 'c1'])
  })
}
