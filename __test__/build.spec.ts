/**
 * `store.build()` end to end, with BuildKit (Debian's docker 20.10 + the private engine) as
 * the judge: a multi-stage build runs in strata and, after `save`, in the engine, with the
 * files, modes and owners BuildKit builds and the config and history BuildKit writes; the
 * cache (unchanged, touched, one file changed, metadata steps); failures and bad input
 * (typed errors with lines, nothing tagged, nothing left behind).
 */
import test, { type ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import { BuildError } from '../ts/build/errors'
import { writeContext, strataTree, tree, buildSuite, BUILD_BASE, timeless, clockPast } from './helpers/build'
import { native } from '../ts/internal/native'
import { checkConsistent } from './helpers/consistency'

const suite = buildSuite('strata-test-build')
const engine = suite.engine
const BB = BUILD_BASE
const freshStore = suite.freshStore

const MULTI = `ARG BASE=${BB}
FROM $BASE AS builder
ARG GREETING=hi
WORKDIR /build
RUN echo "$GREETING built" > out.txt && mkdir -p /opt/x && chown 65534:65534 /opt/x && echo y > /opt/x/y && chmod 750 /opt/x
FROM ${BB} AS unused
RUN exit 1
FROM ${BB}
ENV A=1 B="two words"
LABEL maintainer="me" version=1.0
WORKDIR /app
COPY src/ /app/src/
COPY --from=builder /build/out.txt /app/
COPY --from=builder /opt/x /app/x
COPY --chown=65534:65534 --chmod=640 src/a.txt /app/owned.txt
COPY src/link src/sub/b.txt /app/flat/
RUN echo $A > /app/a && ls -la /app > /dev/null
USER nobody
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/out.txt /app/a"]
`

function multiContext(dir: string): void {
  writeContext(dir, {
    Dockerfile: MULTI, '.dockerignore': '*.log\n', 'x.log': 'ignored',
    'src/a.txt': 'hello\n', 'src/sub/b.txt': { content: 'world\n', mode: 0o600 }, 'src/link': { link: 'a.txt' }, 'src/skip.log': 'no',
  })
}


test.serial('multi-stage build: runs in strata and in the engine with the files, modes, owners, config and history BuildKit makes', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  multiContext(ctx)
  const r = await store.build({ context: ctx, tags: ['multi:1'] })
  // Only what the target needs: the `unused` stage (RUN exit 1) never ran.
  t.false(r.steps.some((s) => s.name.includes('exit 1')))
  const run = await (await store.containers.create('multi:1', { autoRemove: true })).run()
  t.is(run.stdout.toString(), 'hi built\n1\n')

  // The same image in the real engine, next to BuildKit's build of the same context.
  await store.save(['multi:1'], path.join(dir, 'multi.tar'))
  engine.cli(['load', '-i', path.join(dir, 'multi.tar')])
  t.is(engine.cli(['run', '--rm', '--network', 'none', 'multi:1']), 'hi built\n1\n')
  const theirs = engine.build(ctx, ['-t', 'multi-bk:1'])
  engine.exportTo('multi-bk:1', path.join(dir, 'bk'))
  const ours = await strataTree(store, 'multi:1', path.join(dir, 'ours'))
  t.deepEqual(ours, tree(path.join(dir, 'bk')))
  t.is(ours['app/x/y'].uid, 0)
  t.like(ours['app/owned.txt'], { mode: 0o640, uid: 65534, gid: 65534 })
  t.like(ours['app/flat/link'], { type: 'file' })

  const ourCfg = JSON.parse((await store.context.images.get(r.imageId))!.raw.toString())
  const bkCfg = engine.rawConfig(theirs)
  t.deepEqual(timeless(ourCfg), timeless(bkCfg))
  // The config's key order too (Go's encoding of BuildKit's structs).
  t.deepEqual(Object.keys(ourCfg), Object.keys(bkCfg))
  t.deepEqual(Object.keys(ourCfg.config), Object.keys(bkCfg.config as object))
})

test.serial('cache: unchanged and touched contexts give the same image; one changed file rebuilds exactly the later steps, as --no-cache would', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, {
    Dockerfile: `FROM ${BB}\nRUN echo base > /base\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nLABEL x=1\nCOPY b.txt /b.txt\nRUN cat /b.txt >> /copy\n`,
    'a.txt': 'A', 'b.txt': 'B',
  })
  const first = await store.build({ context: ctx })
  t.true(first.steps.every((s) => !s.cached))
  const again = await store.build({ context: ctx })
  t.is(again.imageId, first.imageId)
  t.true(again.steps.every((s) => s.cached))
  t.is(again.contextBytesRead, 0)

  const now = new Date(Date.now() + 5000)
  for (const f of ['a.txt', 'b.txt', 'Dockerfile']) fs.utimesSync(path.join(ctx, f), now, now)
  const touched = await store.build({ context: ctx })
  t.is(touched.imageId, first.imageId)

  fs.writeFileSync(path.join(ctx, 'b.txt'), 'B2')
  const changed = await store.build({ context: ctx, tags: ['c:1'] })
  t.deepEqual(changed.steps.map((s) => s.cached), [true, true, true, false, false])
  const fresh = await store.build({ context: ctx, noCache: true, tags: ['c:nocache'] })
  t.true(fresh.steps.every((s) => !s.cached))
  t.deepEqual(await strataTree(store, 'c:1', path.join(dir, 'a')), await strataTree(store, 'c:nocache', path.join(dir, 'b')))

  // Metadata instructions do not break the cache of the filesystem steps after them.
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), fs.readFileSync(path.join(ctx, 'Dockerfile'), 'utf8').replace('LABEL x=1', 'LABEL x=2\nEXPOSE 80'))
  const relabeled = await store.build({ context: ctx })
  t.true(relabeled.steps.every((s) => s.cached))
  t.not(relabeled.imageId, changed.imageId)
})

function layerCount(root: string): number {
  return fs.readdirSync(path.join(root, 'image/overlay2/layerdb/sha256')).length
}

async function nothingLeft(t: ExecutionContext, root: string, layers: number): Promise<void> {
  t.is(layerCount(root), layers)
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-')), [])
  t.deepEqual(native.overlayMounts(root), [])
  t.deepEqual(fs.existsSync(path.join(root, 'runc')) ? fs.readdirSync(path.join(root, 'runc')) : [], [])
}

test.serial('a failing RUN: BuildFailed with the step, line and exit code in Docker\'s words; the tag stays; nothing left behind', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo one > /one\nRUN echo out; echo err >&2; exit 3\n` })
  const before = await store.build({ context: path.join(ctx), dockerfileText: `FROM ${BB}\nRUN echo ok\n`, tags: ['f:1'] })
  const layers = layerCount(root)
  const events: string[] = []
  const e = await t.throwsAsync(store.build({ context: ctx, tags: ['f:1'], onProgress: (ev) => { if (ev.type === 'log') events.push(ev.data.toString()) } }), { instanceOf: BuildError }) as BuildError
  t.is(e.code, 'BuildFailed')
  t.is(e.line, 3)
  t.is(e.exitCode, 3)
  t.is(e.step, '[3/3] RUN echo out; echo err >&2; exit 3')
  t.is(e.message, 'process "/bin/sh -c echo out; echo err >&2; exit 3" did not complete successfully: exit code: 3')
  t.true(events.join('').includes('out') && events.join('').includes('err'))
  t.is((await store.images.inspect('f:1')).Id, before.imageId)
  // `RUN echo one > /one` completed and stays cached (its layer is kept by its record).
  await nothingLeft(t, root, layers + 1)
})

test.serial('a stage runs its steps before a COPY --from while the source stage still builds; the source\'s failure kills them and is the error', async (t) => {
  t.timeout(60_000)
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  // The target's RUN would take a minute: it starts while `gen` still runs (as in BuildKit),
  // and `gen`'s failure kills it rather than waiting for it.
  writeContext(ctx, { Dockerfile: `FROM ${BB} AS gen\nRUN sleep 3; exit 4\nFROM ${BB}\nRUN sleep 60\nCOPY --from=gen /etc/hostname /x\n` })
  const layers = layerCount(root)
  const started: string[] = []
  const e = await t.throwsAsync(store.build({ context: ctx, tags: ['conc:1'], onProgress: (ev) => { if (ev.type === 'vertex') started.push(ev.name) } }), { instanceOf: BuildError }) as BuildError
  t.is(e.code, 'BuildFailed')
  t.is(e.exitCode, 4)
  t.is(e.line, 2)
  t.true(started.includes('[stage-1 2/3] RUN sleep 60'), started.join('\n'))
  await t.throwsAsync(store.images.inspect('conc:1'), { code: 'ImageNotFound' })
  await nothingLeft(t, root, layers)
})

for (const [name, files, code, line] of [
  ['a Dockerfile syntax error', { Dockerfile: `FROM ${BB}\nRUN true\nNOPE x\n` }, 'DockerfileParse', 3],
  ['an unknown flag', { Dockerfile: `FROM ${BB}\nCOPY --frm=x a /\n` }, 'DockerfileParse', 2],
  ['a COPY source outside the context', { Dockerfile: `FROM ${BB}\nRUN true\nCOPY ../x /x\n` }, 'ContextEscape', 3],
  ['a symlink leading out of the context', { Dockerfile: `FROM ${BB}\nCOPY out /x\n`, out: { link: '../../etc' } }, 'ContextEscape', 2],
  ['an absolute symlink', { Dockerfile: `FROM ${BB}\nCOPY abs/passwd /x\n`, abs: { link: '/etc' } }, 'ContextEscape', 2],
  ['a missing COPY source', { Dockerfile: `FROM ${BB}\nRUN true\nCOPY missing.txt /x\n` }, 'SourceNotFound', 3],
  ['a missing COPY --from stage', { Dockerfile: `FROM ${BB}\nCOPY --from=nostage /a /b\n` }, 'StageNotFound', 2],
  ['several sources into a file', { Dockerfile: `FROM ${BB}\nCOPY a b /dest\n`, a: 'a', b: 'b' }, 'InvalidArgument', 2],
] as const) {
  test.serial(`bad input: ${name} is a typed error with its line; nothing tagged or left behind`, async (t) => {
    const { dir, store, root } = await freshStore(t)
    const ctx = path.join(dir, 'ctx')
    writeContext(ctx, files as Record<string, string>)
    const layers = layerCount(root)
    const e = await t.throwsAsync(store.build({ context: ctx, tags: ['bad:1'] }), { instanceOf: BuildError }) as BuildError
    t.is(e.code, code)
    t.is(e.line, line)
    await t.throwsAsync(store.images.inspect('bad:1'), { message: /No such image/ })
    // `RUN true` steps before the failure change nothing: no layer.
    await nothingLeft(t, root, layers)
  })
}

test.serial('bad input: a context over the limit is ContextTooLarge', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nCOPY . /\n`, big: 'x'.repeat(4096) })
  const e = await t.throwsAsync(store.build({ context: ctx, contextLimits: { maxBytes: 1024 } }), { instanceOf: BuildError })
  t.is(e?.code, 'ContextTooLarge')
  await nothingLeft(t, root, 1)
})

test.serial('the context is read from the start, beside the steps before its first COPY: a build that fails before that COPY fails with its own error, shows no context step and leaves no stamp file', async (t) => {
  const { dir, store, root } = await freshStore(t)
  for (const [name, files, limits] of [
    ['over the limit', { Dockerfile: `FROM ${BB}\nRUN exit 5\nCOPY . /\n`, big: 'x'.repeat(4096) }, { maxBytes: 1024 }],
    ['with a bad .dockerignore pattern', { Dockerfile: `FROM ${BB}\nRUN exit 5\nCOPY . /\n`, '.dockerignore': 'a[\n' }, {}],
    ['hashed in full', { Dockerfile: `FROM ${BB}\nRUN exit 5\nCOPY . /\n`, ...Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, randomBytes(4096).toString('hex')])) }, {}],
  ] as const) {
    const ctx = path.join(dir, `ctx-${name.replaceAll(' ', '-')}`)
    writeContext(ctx, files as Record<string, string>)
    const layers = layerCount(root)
    const started: string[] = []
    const e = await t.throwsAsync(store.build({ context: ctx, contextLimits: limits, onProgress: (ev) => { if (ev.type === 'vertex') started.push(ev.name) } }), { instanceOf: BuildError }) as BuildError
    t.is(e.code, 'BuildFailed', name)
    t.is(e.exitCode, 5, name)
    t.false(started.some((n) => n.includes('load build context')), name)
    await nothingLeft(t, root, layers)
    const idx = path.join(root, 'builder', 'statindex')
    t.deepEqual(fs.existsSync(idx) ? fs.readdirSync(idx).filter((n) => n.endsWith('.tmp')) : [], [], name)
  }
})

test.serial('what the context scan hashed goes into the stat index while the steps run: a build failing after its COPY has recorded it', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nCOPY . /x\nRUN exit 3\n`, a: 'a', 'sub/b': 'bb' })
  // Recorded only once the clock is past the files' times (racily clean otherwise).
  await clockPast(ctx)
  const e = await t.throwsAsync(store.build({ context: ctx }), { instanceOf: BuildError }) as BuildError
  t.is(e.code, 'BuildFailed')
  const idx = path.join(root, 'builder', 'statindex')
  const files = fs.readdirSync(idx)
  t.is(files.length, 1)
  const rows = (JSON.parse(fs.readFileSync(path.join(idx, files[0]), 'utf8')) as { entries: string[] }).entries
  t.deepEqual(rows.filter((_, i) => i % 3 === 0).sort(), ['Dockerfile', 'a', 'sub/b'])
})

/** Pids of the processes whose command line holds `marker`. */
function processesWith(marker: string): number[] {
  const pids: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(marker)) pids.push(Number(name))
    } catch {
      /* gone meanwhile */
    }
  }
  return pids
}

test.serial('an abort during a RUN rejects with Aborted at once; the step is killed and nothing is left behind', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  // The step's processes carry a marker in their command lines, to find them after the abort.
  const marker = `strata-abort-${randomBytes(6).toString('hex')}`
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo started; sh -c 'sleep 30; true' ${marker}\n` })
  const ac = new AbortController()
  const e = await t.throwsAsync(store.build({
    context: ctx, tags: ['ab:1'], signal: ac.signal,
    onProgress: (ev) => { if (ev.type === 'log' && ev.data.toString().includes('started')) ac.abort() },
  }))
  t.is((e as BuildError).code, 'Aborted')
  t.deepEqual(processesWith(marker), [], 'the step\'s processes are gone when the build rejects')
  await nothingLeft(t, root, 1)
})

for (const [name, failing] of [['exits 1', 'RUN sleep 2; exit 1'], ['runs a missing binary', 'RUN sleep 2\nRUN ["/no/such/binary"]']] as const) {
  test.serial(`a RUN that ${name} while another stage's RUN runs: the build rejects once that step is stopped; no mount, container or staging left`, async (t) => {
    const { dir, store, root } = await freshStore(t)
    const ctx = path.join(dir, 'ctx')
    const marker = `strata-par-${randomBytes(6).toString('hex')}`
    // Stages a and b build concurrently (the last stage copies from both); a fails while b's
    // step is mounted and running.
    writeContext(ctx, {
      Dockerfile: `FROM ${BB} AS a\n${failing}\nFROM ${BB} AS b\nRUN echo started; sh -c 'sleep 30; true' ${marker}\nFROM ${BB}\nCOPY --from=a /etc/hostname /a\nCOPY --from=b /etc/hostname /b\n`,
    })
    const layers = layerCount(root)
    let started = false
    const e = await t.throwsAsync(store.build({
      context: ctx, tags: ['par:1'], onProgress: (ev) => { if (ev.type === 'log' && ev.data.toString().includes('started')) started = true },
    }), { instanceOf: BuildError }) as BuildError
    t.is(e.code, 'BuildFailed')
    t.true(started, 'the other stage\'s RUN was running')
    t.deepEqual(processesWith(marker), [], 'the other step\'s processes are gone when the build rejects')
    await nothingLeft(t, root, layers)
    await store.close()
    await checkConsistent(t, root)
  })
}

test.serial('an onProgress listener that throws rejects the build (its error as the cause); nothing tagged', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo hi > /hi\n` })
  const boom = new Error('listener failed')
  const e = await t.throwsAsync(store.build({ context: ctx, tags: ['boom:1'], onProgress: () => { throw boom } }))
  // The API boundary hands every failure out as a StrataError; the listener's own error is its cause.
  t.is((e as BuildError).cause, boom)
  await t.throwsAsync(store.images.inspect('boom:1'))
  await nothingLeft(t, root, layerCount(root))
})

test.serial('--no-cache-filter rebuilds the named stage only; <Dockerfile>.dockerignore wins over .dockerignore', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, {
    'Dockerfile.dev': `FROM ${BB} AS gen\nARG V=gen\nRUN echo $V > /gen\nFROM ${BB}\nCOPY . /ctx/\nCOPY --from=gen /gen /gen\nRUN cat /gen > /copy\n`,
    'Dockerfile.dev.dockerignore': 'secret.txt\n', '.dockerignore': 'public.txt\n', 'secret.txt': 's', 'public.txt': 'p',
  })
  const first = await store.build({ context: ctx, dockerfile: 'Dockerfile.dev', tags: ['dev:1'] })
  const files = await strataTree(store, 'dev:1', path.join(dir, 't1'))
  t.true('ctx/public.txt' in files)
  t.false('ctx/secret.txt' in files)
  t.true(first.steps.every((s) => !s.cached))
  const cachedOf = (r: { steps: { name: string; cached: boolean }[] }): Record<string, boolean> =>
    Object.fromEntries(r.steps.map((s) => [s.name.replace(/^\[[^\]]*\] /, ''), s.cached]))
  // The gen stage runs again and writes the same /gen (a new mtime, so a new layer): a
  // COPY --from is keyed by the content it copies, as BuildKit keys it (Docker 20.10 with
  // DOCKER_BUILDKIT=1 shows the COPY --from and the steps after it CACHED after a rebuilt
  // source stage with the same files), so the rest of the stage hits.
  const again = await store.build({ context: ctx, dockerfile: 'Dockerfile.dev', noCacheFilter: ['gen'] })
  t.deepEqual(cachedOf(again), { 'RUN echo gen > /gen': false, 'COPY . /ctx/': true, 'COPY --from=gen /gen /gen': true, 'RUN cat /gen > /copy': true })
  t.is(again.imageId, first.imageId)
  // Other content in the source stage: the COPY --from and what follows it are rebuilt.
  const changed = await store.build({ context: ctx, dockerfile: 'Dockerfile.dev', buildArgs: { V: 'other' } })
  t.deepEqual(cachedOf(changed), { 'RUN echo other > /gen': false, 'COPY . /ctx/': true, 'COPY --from=gen /gen /gen': false, 'RUN cat /gen > /copy': false })
})
