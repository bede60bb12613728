/**
 * The real Docker Engine as the judge of seccomp (ts/containers/seccomp.ts):
 * - the runtime spec: a container started in the private engine, and the `config.json` the
 *   engine wrote into its runc bundle; its `linux.seccomp` must equal the one strata writes for
 *   the same kind of container (Docker's default capabilities, checked too) — with the default
 *   profile, with `--security-opt seccomp=unconfined` (none in either) and with a profile file;
 * - behaviour: a syscall the default profile denies without CAP_SYS_ADMIN (unshare(2), busybox's
 *   `unshare -U`) fails with EPERM in a container and in a build's RUN step, in both, while
 *   ordinary commands run (and in an exec'd process); unconfined, it succeeds in both.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { buildSuite, BUILD_BASE, writeContext } from './helpers/build'
import { cli } from './helpers/fs'

const suite = buildSuite('strata-test-seccomp')
const engine = suite.engine
const BB = BUILD_BASE

interface RuntimeSpec { process: { capabilities: { bounding: string[] } }; linux: { seccomp?: unknown } }

/** The spec dockerd (through its containerd) handed runc for a running container. */
function engineSpec(id: string): RuntimeSpec {
  const file = `/run/${engine.name}/containerd/daemon/io.containerd.runtime.v2.task/moby/${id}/config.json`
  return JSON.parse(fs.readFileSync(file, 'utf8')) as RuntimeSpec
}

/** `docker run -d … sleep`, its bundle's spec read while it runs, then removed. */
function dockerSpec(opts: string[]): RuntimeSpec {
  const id = engine.docker('run', '-d', '--network', 'none', ...opts, BB, 'sleep', '60').trim()
  try {
    return engineSpec(id)
  } finally {
    engine.docker('rm', '-f', id)
  }
}

/** `strata run` of `true` through the CLI, and the spec it wrote into the container's bundle. */
async function strataSpec(root: string, opts: string[]): Promise<RuntimeSpec> {
  const name = `sc-${Math.random().toString(16).slice(2, 10)}`
  const r = await cli(root, ['run', '--name', name, ...opts, BB, 'true'])
  if (r.code !== 0) throw new Error(r.stderr)
  const id = (await cli(root, ['inspect', '--format', '{{.Id}}', name])).stdout.trim()
  const spec = JSON.parse(fs.readFileSync(path.join(root, 'containers', id, 'bundle', 'config.json'), 'utf8')) as RuntimeSpec
  await cli(root, ['rm', '-f', name])
  return spec
}

/** A profile that uses every filter kind (arch map, name/names, errnoRet, args, caps, minKernel). */
const CUSTOM = {
  defaultAction: 'SCMP_ACT_ALLOW',
  archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }, { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: [] }],
  syscalls: [
    { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
    { name: 'chmod', action: 'SCMP_ACT_ERRNO', includes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['fchmodat'], action: 'SCMP_ACT_ERRNO', excludes: { minKernel: '4.0' } },
    { names: ['symlinkat'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0, valueTwo: 0, op: 'SCMP_CMP_NE' }], includes: { minKernel: '5.4' } },
    { names: ['rmdir'], action: 'SCMP_ACT_ERRNO', excludes: { caps: ['CAP_CHOWN'] } },
  ],
}

test.serial('runtime spec: linux.seccomp as dockerd writes it — default profile, unconfined, a profile file', async (t) => {
  const { dir, root } = await suite.freshStore(t)
  const profile = path.join(dir, 'profile.json')
  fs.writeFileSync(profile, JSON.stringify(CUSTOM, null, 2))

  const theirs = dockerSpec([])
  const ours = await strataSpec(root, ['--network', 'none'])
  // The same kind of container: Docker's default capability set in both.
  t.deepEqual(ours.process.capabilities.bounding, theirs.process.capabilities.bounding)
  t.truthy(theirs.linux.seccomp)
  t.deepEqual(ours.linux.seccomp, theirs.linux.seccomp)

  const unconfined = ['--security-opt', 'seccomp=unconfined']
  t.is(dockerSpec(unconfined).linux.seccomp, undefined)
  t.is((await strataSpec(root, unconfined)).linux.seccomp, undefined)

  const custom = ['--security-opt', `seccomp=${profile}`]
  const theirsCustom = dockerSpec(custom).linux.seccomp
  t.truthy(theirsCustom)
  t.deepEqual((await strataSpec(root, custom)).linux.seccomp, theirsCustom)
})

/** `sh -c SCRIPT` (stderr into stdout) in a removed container of each engine, as `CODE:OUTPUT`. */
async function both(root: string, opts: string[], script: string): Promise<{ docker: string; strata: string }> {
  const d = spawnSync('docker', ['run', '--rm', '--network', 'none', ...opts, BB, 'sh', '-c', `{ ${script}; } 2>&1`], { env: { ...process.env, DOCKER_HOST: engine.host }, encoding: 'utf8' })
  const s = await cli(root, ['run', '--rm', ...opts, BB, 'sh', '-c', `{ ${script}; } 2>&1`])
  return { docker: `${d.status}:${d.stdout}${d.stderr}`, strata: `${s.code}:${s.stdout}${s.stderr}` }
}

const UNSHARE = 'busybox unshare -U true; echo rc=$?; echo ok'

test.serial('a container: creating a user namespace fails with EPERM as in Docker, ordinary commands run; unconfined it works', async (t) => {
  const { root } = await suite.freshStore(t)
  const confined = await both(root, [], UNSHARE)
  t.is(confined.strata, confined.docker)
  t.regex(confined.strata, /^0:unshare: unshare\(0x10000000\): Operation not permitted\nrc=1\nok\n$/)
  const open = await both(root, ['--security-opt', 'seccomp=unconfined'], UNSHARE)
  t.is(open.strata, open.docker)
  t.is(open.strata, '0:rc=0\nok\n')
})

test.serial('exec: the process runs under the container\'s filter, as in Docker', async (t) => {
  const { root } = await suite.freshStore(t)
  const did = engine.docker('run', '-d', '--network', 'none', BB, 'sleep', '60').trim()
  const s = await cli(root, ['run', '-d', BB, 'sleep', '60'])
  t.is(s.code, 0, s.stderr)
  try {
    const theirs = spawnSync('docker', ['exec', did, 'sh', '-c', `{ ${UNSHARE}; } 2>&1`], { env: { ...process.env, DOCKER_HOST: engine.host }, encoding: 'utf8' })
    const ours = await cli(root, ['exec', s.stdout.trim(), 'sh', '-c', `{ ${UNSHARE}; } 2>&1`])
    t.is(ours.stdout, theirs.stdout)
    t.is(ours.stdout, 'unshare: unshare(0x10000000): Operation not permitted\nrc=1\nok\n')
  } finally {
    engine.docker('rm', '-f', did)
    await cli(root, ['rm', '-f', s.stdout.trim()])
  }
})

test.serial('a RUN step: the same syscall fails with EPERM under strata build as under BuildKit', async (t) => {
  const { dir, store } = await suite.freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN busybox unshare -U true 2>/err; echo $? > /rc; echo ok > /ok\n` })
  const { imageId: id } = await store.build({ context: ctx, tags: ['sc-run:1'] })
  const c = await store.containers.create(id, { cmd: ['cat', '/rc', '/err', '/ok'], autoRemove: true })
  const ours = (await c.run()).stdout.toString()
  const into = path.join(dir, 'bk')
  engine.exportTo(engine.build(ctx), into)
  const theirs = ['rc', 'err', 'ok'].map((f) => fs.readFileSync(path.join(into, f), 'utf8')).join('')
  t.is(ours, theirs)
  t.is(ours, '1\nunshare: unshare(0x10000000): Operation not permitted\nok\n')
})

test.serial('bad --security-opt values are refused before anything is created', async (t) => {
  const { dir, root } = await suite.freshStore(t)
  const bad = path.join(dir, 'bad.json')
  fs.writeFileSync(bad, '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}')
  for (const [opt, msg] of [[`seccomp=${bad}`, /Decoding seccomp profile failed/], [`seccomp=${dir}/missing.json`, /opening seccomp profile/], ['apparmor=x', /invalid --security-opt/]] as const) {
    const r = await cli(root, ['create', '--security-opt', opt, BB, 'true'])
    t.is(r.code, 1, r.stderr)
    t.regex(r.stderr, msg)
  }
  t.is((await cli(root, ['ps', '-aq'])).stdout, '')
})
