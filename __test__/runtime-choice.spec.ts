/**
 * Which runtime binary runs (ts/containers/runtime.ts): `$STRATA_RUNTIME` as it is at each use
 * (a path, or a bare name found on `$PATH`), a container's HostConfig.Runtime. The "runtimes"
 * are shell wrappers that note each call and exec the real runc. Serial: they change this
 * process's environment.
 */
import test, { type ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { storeWith } from './helpers/container'
import { busyboxImage } from './helpers/fixtures'
import { tmpDir } from './helpers/fs'
import type { Store } from '../ts'

const REAL_RUNC = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim()

/** `<dir>/<name>`: notes each call in `<dir>/<name>.calls`, then runs the real runc. */
function wrapper(dir: string, name: string): { file: string; calls: () => string[] } {
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, name)
  const log = `${file}.calls`
  fs.writeFileSync(file, `#!/bin/sh\necho "$*" >> '${log}'\nexec '${REAL_RUNC}' "$@"\n`, { mode: 0o755 })
  return { file, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []) }
}

/** A build whose one RUN step runs (no cache): the runtime's `run` calls. */
async function buildRun(store: Store, ctx: string): Promise<void> {
  await store.build({ context: ctx, noCache: true })
}

async function setup(t: ExecutionContext): Promise<{ store: Store; ctx: string; dir: string }> {
  const { store } = await storeWith(t, [busyboxImage(['bb:rt'])])
  const dir = tmpDir(t, 'strata-rt-')
  const ctx = path.join(dir, 'ctx')
  fs.mkdirSync(ctx)
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM bb:rt\nRUN echo ran > /ran\n')
  const env = { PATH: process.env.PATH, STRATA_RUNTIME: process.env.STRATA_RUNTIME }
  t.teardown(() => {
    process.env.PATH = env.PATH
    if (env.STRATA_RUNTIME === undefined) delete process.env.STRATA_RUNTIME
    else process.env.STRATA_RUNTIME = env.STRATA_RUNTIME
  })
  return { store, ctx, dir }
}

const runs = (calls: string[]): number => calls.filter((c) => / run --bundle /.test(c)).length

test.serial('$STRATA_RUNTIME as it is at each use (a path, a bare name on $PATH), and a container\'s HostConfig.Runtime', async (t) => {
  const { store, ctx, dir } = await setup(t)
  const base = process.env.PATH!
  const byPath = wrapper(path.join(dir, 'abs'), 'rt-abs')
  const byName = wrapper(path.join(dir, 'named'), 'rt-named')
  const own = wrapper(path.join(dir, 'own'), 'rt-own')
  process.env.STRATA_RUNTIME = byPath.file
  await buildRun(store, ctx)
  t.is(runs(byPath.calls()), 1, 'a path')
  process.env.STRATA_RUNTIME = 'rt-named'
  process.env.PATH = `${base}:${path.join(dir, 'named')}`
  await buildRun(store, ctx)
  t.deepEqual([runs(byPath.calls()), runs(byName.calls())], [1, 1], 'a bare name, from $PATH')
  // A container keeps the runtime it was created with; one created with the default ('runc')
  // follows $STRATA_RUNTIME.
  const c = await store.containers.create('bb:rt', { cmd: ['true'], runtime: own.file })
  t.is((await c.run()).exitCode, 0)
  t.is(runs(own.calls()), 1, 'HostConfig.Runtime')
  const d = await store.containers.create('bb:rt', { cmd: ['true'] })
  t.is((await d.run()).exitCode, 0)
  t.is(runs(byName.calls()), 2, 'the default: $STRATA_RUNTIME')
  delete process.env.STRATA_RUNTIME
  await buildRun(store, ctx)
  t.deepEqual([runs(byPath.calls()), runs(byName.calls()), runs(own.calls())], [1, 2, 1], 'unset: runc')
})
