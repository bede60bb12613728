/**
 * Build and registries, against the real distribution registry: a base image the store lacks is
 * pulled (as `docker build` does), one the registry lacks is `ImageNotFound` with its line and
 * nothing left behind; `--cache-to/--cache-from type=registry` carry the build cache from one
 * store to a fresh one (every step CACHED, the same image ID), through the API and the CLI.
 */
import test, { ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store, BuildError, StrataError } from '../ts'
import { tmpDir, cli } from './helpers/fs'
import { writeArchive } from './helpers/image'
import { buildBaseImage } from './helpers/build-image'
import { writeContext, strataTree, timeless } from './helpers/build'
import { checkConsistent } from './helpers/consistency'
import { TestRegistry } from './helpers/registry'

const work = fs.mkdtempSync(path.join('/var/tmp', 'strata-build-registry-'))
let registry: TestRegistry
let BASE = ''
let archive = ''

test.before(async () => {
  registry = TestRegistry.start(path.join(work, 'registry'), 'plain')
  BASE = `${registry.host}/build-base:1`
  const img = buildBaseImage([BASE])
  archive = path.join(work, 'base.tar')
  writeArchive(archive, [img], 'docker25')
  await registry.pushImage('build-base', '1', img)
})
test.after.always(() => {
  registry?.stop()
  fs.rmSync(work, { recursive: true, force: true })
})

/** A store under the test's tmp dir, with the base image loaded or not; closed after the test. */
async function storeOf(t: ExecutionContext, name: string, withBase: boolean): Promise<{ dir: string; root: string; store: Store }> {
  const dir = tmpDir(t, 'strata-build-reg-')
  const root = path.join(dir, name)
  const store = await Store.open({ root })
  if (withBase) await store.load(archive)
  t.teardown(() => store.close())
  return { dir, root, store }
}

const layerCount = (root: string): number => {
  const d = path.join(root, 'image/overlay2/layerdb/sha256')
  return fs.existsSync(d) ? fs.readdirSync(d).length : 0
}

const dockerfile = (base: string): string => `FROM ${base}
RUN echo built > /built.txt
COPY src/ /app/
ENV MODE=cached
WORKDIR /app/work
COPY top.txt /app/top.txt
`
const FILES = { 'top.txt': 'top\n', 'src/a.txt': 'aaaa\n', 'src/d/c.txt': 'cccc\n' }

test.serial('a base image the store lacks is pulled from its registry; the image equals a build on the loaded base', async (t) => {
  const local = await storeOf(t, 'local', true)
  const empty = await storeOf(t, 'empty', false)
  const ctx = path.join(local.dir, 'ctx')
  writeContext(ctx, { Dockerfile: dockerfile(BASE), ...FILES })
  const expected = await local.store.build({ context: ctx, tags: ['app:1'] })
  const events: string[] = []
  const pulled = await empty.store.build({ context: ctx, tags: ['app:1'], onProgress: (e) => { if (e.type === 'status') events.push(e.text) } })
  // The same image but for the times a build stamps.
  const configOf = async (s: Store, id: string): Promise<unknown> => timeless(JSON.parse((await s.context.images.get(id))!.raw.toString()) as Record<string, unknown>)
  t.deepEqual(await configOf(empty.store, pulled.imageId), await configOf(local.store, expected.imageId))
  t.true(events.some((e) => e === `pulling ${BASE}`), events.join('\n'))
  // The base is in the store as `docker pull` leaves it: tagged, its RepoDigest recorded.
  const base = await empty.store.images.inspect(BASE)
  t.true((base.RepoDigests as string[]).some((d) => d.startsWith(`${registry.host}/build-base@sha256:`)))
  t.deepEqual(await strataTree(empty.store, 'app:1', path.join(empty.dir, 't')), await strataTree(local.store, 'app:1', path.join(local.dir, 't')))
  // A second build uses the base it now has and hits every step.
  const again = await empty.store.build({ context: ctx, tags: ['app:1'] })
  t.true(again.steps.every((s) => s.cached))
  await checkConsistent(t, empty.root)
})

test.serial('a base image its registry lacks is ImageNotFound with its line; nothing tagged, pulled or left behind', async (t) => {
  const { dir, root, store } = await storeOf(t, 'root', true)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BASE}\nRUN true\nFROM ${registry.host}/nope:1\nRUN true\n` })
  const layers = layerCount(root)
  const e = await t.throwsAsync(store.build({ context: ctx, tags: ['bad:1'] }), { instanceOf: BuildError }) as BuildError
  t.is(e.code, 'ImageNotFound')
  t.is(e.line, 3)
  await t.throwsAsync(store.images.inspect('bad:1'), { message: /No such image/ })
  t.is(layerCount(root), layers)
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-') || n.startsWith('pull')), [])
  await checkConsistent(t, root)
})

test.serial('registry cache: store A pushes its cache, a fresh store B pulls base and cache: every step CACHED, the same image', async (t) => {
  const a = await storeOf(t, 'a', true)
  const b = await storeOf(t, 'b', false)
  const ctx = path.join(a.dir, 'ctx')
  writeContext(ctx, { Dockerfile: dockerfile(BASE), ...FILES })
  const ref = `${registry.host}/build-cache:api`
  const built = await a.store.build({ context: ctx, tags: ['app:1'], cacheTo: [{ type: 'registry', ref }] })
  // What the registry holds: an OCI manifest of strata's cache records and the layers.
  const m = JSON.parse((await registry.request('GET', '/v2/build-cache/manifests/api', undefined, { accept: 'application/vnd.oci.image.manifest.v1+json' })).body.toString()) as { config: { mediaType: string }; layers: unknown[] }
  t.is(m.config.mediaType, 'application/vnd.strata.build.cache.v1+json')
  t.is(m.layers.length, built.steps.filter((s) => s.diffId).length)

  const imported = await b.store.build({ context: ctx, tags: ['app:1'], cacheFrom: [{ type: 'registry', ref }] })
  t.true(imported.steps.length > 0 && imported.steps.every((s) => s.cached), JSON.stringify(imported.steps))
  t.is(imported.imageId, built.imageId)
  t.deepEqual(await strataTree(b.store, 'app:1', path.join(b.dir, 't')), await strataTree(a.store, 'app:1', path.join(a.dir, 't')))
  await checkConsistent(t, b.root)

  // One file changed: the steps before it still come from the imported cache.
  fs.writeFileSync(path.join(ctx, 'top.txt'), 'changed\n')
  const changed = await b.store.build({ context: ctx, tags: ['app:2'] })
  t.deepEqual(changed.steps.map((s) => s.cached), [true, true, true, false])
})

test.serial('registry cache through the CLI: --cache-to and --cache-from type=registry; a missing cache ref only warns', async (t) => {
  const a = await storeOf(t, 'a', true)
  const b = await storeOf(t, 'b', false)
  await a.store.close()
  await b.store.close()
  const ctx = path.join(a.dir, 'ctx')
  writeContext(ctx, { Dockerfile: dockerfile(BASE), ...FILES, 'top.txt': 'cli\n' })
  const ref = `${registry.host}/build-cache:cli`
  // No cache there yet: the first build goes on without it (BuildKit's behaviour).
  const first = await cli(a.root, ['build', '--progress', 'plain', '--cache-from', `type=registry,ref=${ref}`, '--cache-to', `type=registry,ref=${ref},mode=max`, '-t', 'app:1', ctx])
  t.is(first.code, 0, first.stderr)
  t.regex(first.stderr, new RegExp(`importing cache manifest from ${ref.replace(/[.]/g, '\\.')}`))
  t.regex(first.stderr, /exporting cache to/)
  const id = /writing image (sha256:[0-9a-f]{64})/.exec(first.stderr)![1]
  const second = await cli(b.root, ['build', '--progress', 'plain', '--cache-from', `type=registry,ref=${ref}`, '-t', 'app:1', ctx])
  t.is(second.code, 0, second.stderr)
  t.is((second.stderr.match(/ CACHED$/gm) ?? []).length, 4, second.stderr)
  t.is(/writing image (sha256:[0-9a-f]{64})/.exec(second.stderr)![1], id)
  // BuildKit's shorthand: a bare ref for --cache-from.
  const third = await cli(b.root, ['build', '-q', '--cache-from', ref, ctx])
  t.is(third.stdout.trim(), id)
})

test.serial('registry cache: bad input is a typed error and leaves the store as it was', async (t) => {
  const { dir, root, store } = await storeOf(t, 'root', true)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: dockerfile(BASE), ...FILES })
  const layers = layerCount(root)
  // An ordinary image is no build cache.
  const notCache = await t.throwsAsync(store.build({ context: ctx, tags: ['x:1'], cacheFrom: [{ type: 'registry', ref: BASE }] }), { instanceOf: StrataError })
  t.is(notCache?.code, 'ManifestInvalid')
  // No registry listening there.
  const unreachable = await t.throwsAsync(store.build({ context: ctx, tags: ['x:1'], cacheFrom: [{ type: 'registry', ref: '127.0.0.1:1/cache:1' }] }), { instanceOf: StrataError })
  t.is(unreachable?.code, 'RegistryUnreachable')
  const badRef = await t.throwsAsync(store.build({ context: ctx, tags: ['x:1'], cacheTo: [{ type: 'registry', ref: `${registry.host}/Upper:1` }] }), { instanceOf: StrataError })
  t.is(badRef?.code, 'InvalidReference')
  await t.throwsAsync(store.images.inspect('x:1'), { message: /No such image/ })
  t.is(layerCount(root), layers)
  const r = await cli(root, ['build', '--cache-to', 'type=registry', ctx])
  t.not(r.code, 0)
  t.regex(r.stderr, /needs ref=/)
  await checkConsistent(t, root)
})
