/**
 * login / logout against the real distribution registry with htpasswd behind TLS, judged by
 * Docker 20.10's CLI (`/usr/bin/docker`, the private engine's): the same messages, and
 * credentials written by either tool work for the other — in the file and through a
 * docker-credential-* helper.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { tmpDir, cli } from './helpers/fs'
import { writeArchive } from './helpers/image'
import { busyboxImage } from './helpers/fixtures'
import { TestRegistry, PASSWORD, USER } from './helpers/registry'
import { makeCredentialHelper } from './helpers/credential-helper'
import { Dockerd } from './helpers/dockerd'
import { Store, StrataError } from '../ts'

const DOCKER_2010 = '/usr/bin/docker'
const work = fs.mkdtempSync(path.join('/var/tmp', 'strata-login-'))
let reg: TestRegistry
const engine = new Dockerd('registry-login')

test.before(() => {
  reg = TestRegistry.start(path.join(work, 'reg'), 'htpasswd')
  engine.start()
})
test.after.always(() => {
  reg?.stop()
  engine.stop()
  fs.rmSync(work, { recursive: true, force: true })
})

/** Docker 20.10's CLI with its own config dir (and PATH for helpers). */
function docker(cfg: string, args: string[], input?: string, extraPath?: string) {
  const r = spawnSync(DOCKER_2010, args, {
    input, encoding: 'utf8',
    env: { ...process.env, DOCKER_HOST: engine.host, DOCKER_CONFIG: cfg, ...(extraPath ? { PATH: `${extraPath}:${process.env.PATH}` } : {}) },
  })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

async function storeWithImage(t: Parameters<typeof tmpDir>[0]) {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  writeArchive(path.join(dir, 'in.tar'), [busyboxImage(['busybox:latest'])], 'docker25')
  t.is((await cli(root, ['load', '-i', path.join(dir, 'in.tar')])).code, 0)
  return { dir, root }
}

test('login and logout print what docker 20.10 prints; strata\'s credentials work for docker, docker\'s for strata', async (t) => {
  const { dir, root } = await storeWithImage(t)
  const ours = path.join(dir, 'strata-cfg')
  const theirs = path.join(dir, 'docker-cfg')
  const env = { DOCKER_CONFIG: ours }

  // A wrong password: refused, nothing stored.
  const wrong = await cli(root, ['login', '-u', USER, '-p', 'not-the-password', reg.host], undefined, env)
  t.is(wrong.code, 1)
  t.regex(wrong.stderr, /login attempt to .*\/v2\/ failed with status: 401 Unauthorized/)
  t.false(fs.existsSync(path.join(ours, 'config.json')))

  // Right: the same lines as docker's CLI (the file named is each one's own).
  const ok = await cli(root, ['login', '-u', USER, '-p', PASSWORD, reg.host], undefined, env)
  const d = docker(theirs, ['login', '-u', USER, '-p', PASSWORD, reg.host])
  t.is(d.code, 0, d.stderr)
  t.is(ok.code, 0, ok.stderr)
  t.is(ok.stdout, d.stdout)
  t.is(ok.stdout, 'Login Succeeded\n')
  t.is(ok.stderr.replaceAll(ours, 'CFG'), d.stderr.replaceAll(theirs, 'CFG'))
  t.is(fs.statSync(path.join(ours, 'config.json')).mode & 0o777, 0o600)
  t.is(fs.readFileSync(path.join(ours, 'config.json'), 'utf8'), fs.readFileSync(path.join(theirs, 'config.json'), 'utf8'), 'byte for byte the file docker writes')

  // --password-stdin: no warning about -p; without -u, docker's message.
  const stdin = await cli(root, ['login', '-u', USER, '--password-stdin', reg.host], `${PASSWORD}\n`, env)
  t.is(stdin.code, 0, stdin.stderr)
  t.false(stdin.stderr.includes('--password via the CLI'))
  t.regex((await cli(root, ['login', '--password-stdin', reg.host], PASSWORD, env)).stderr, /Must provide --username with --password-stdin/)
  t.regex((await cli(root, ['login', '-p', 'x', '--password-stdin', '-u', 'a', reg.host], 'x', env)).stderr, /--password and --password-stdin are mutually exclusive/)
  // No credentials given: the stored ones are checked again.
  const again = await cli(root, ['login', reg.host], '', env)
  t.is(again.stdout, 'Authenticating with existing credentials...\nLogin Succeeded\n')
  const none = await cli(root, ['login', `127.0.0.1:1`], '', env)
  t.regex(none.stderr, /Cannot perform an interactive login from a non TTY device/)

  // strata pushes with docker's credentials; docker pulls with strata's.
  await cli(root, ['tag', 'busybox', `${reg.host}/shared:1`])
  const pushed = await cli(root, ['push', `${reg.host}/shared:1`], undefined, { DOCKER_CONFIG: theirs })
  t.is(pushed.code, 0, pushed.stderr)
  const pulled = docker(ours, ['pull', `${reg.host}/shared:1`])
  t.is(pulled.code, 0, pulled.stderr)

  // logout: docker's line; the file keeps its other keys; docker is then refused.
  const out = await cli(root, ['logout', reg.host], undefined, env)
  t.is(out.stdout, `Removing login credentials for ${reg.host}\n`)
  t.is(out.stdout, docker(path.join(dir, 'other'), ['logout', reg.host]).stdout)
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(ours, 'config.json'), 'utf8')), { auths: {} })
  t.not(docker(ours, ['pull', `${reg.host}/shared:1`]).code, 0)
  t.is((await cli(root, ['logout'], undefined, env)).stdout, 'Removing login credentials for https://index.docker.io/v1/\n')

  // The API: typed errors, no secret in them.
  const store = await Store.open({ root, dockerConfig: ours })
  const e = await t.throwsAsync(store.login(reg.host, { username: USER, password: 'wrong-secret-xyz' }), { instanceOf: StrataError })
  t.is(e.code, 'Unauthorized')
  t.is(e.status, 401)
  t.false(e.message.includes('wrong-secret-xyz'))
  t.deepEqual(await store.login(reg.host, { username: USER, password: PASSWORD }), { serverAddress: reg.host, status: 'Login Succeeded', storedIn: { file: path.join(ours, 'config.json') }, identityToken: false })
  t.is((await store.logout(reg.host)).allFailed, false)
  await store.close()
})

test('credsStore: docker and strata share credentials through the same docker-credential-* helper', async (t) => {
  const { dir, root } = await storeWithImage(t)
  const helper = makeCredentialHelper(dir, 'strata-test')
  const cfg = path.join(dir, 'cfg')
  fs.mkdirSync(cfg)
  fs.writeFileSync(path.join(cfg, 'config.json'), JSON.stringify({ credsStore: 'strata-test', psFormat: 'table {{.ID}}' }))
  const env = { DOCKER_CONFIG: cfg, PATH: `${helper.binDir}:${process.env.PATH}` }

  // docker login stores through the helper; strata pushes with what the helper gives.
  const d = docker(cfg, ['login', '-u', USER, '--password-stdin', reg.host], PASSWORD, helper.binDir)
  t.is(d.code, 0, d.stderr)
  t.deepEqual(helper.secrets()[reg.host], { Username: USER, Secret: PASSWORD })
  await cli(root, ['tag', 'busybox', `${reg.host}/helper:1`])
  const pushed = await cli(root, ['push', `${reg.host}/helper:1`], undefined, env)
  t.is(pushed.code, 0, pushed.stderr)

  // strata login through the helper: no "unencrypted" warning, the secret never in the file.
  const l = await cli(root, ['login', '-u', USER, '--password-stdin', reg.host], PASSWORD, env)
  t.is(l.code, 0, l.stderr)
  t.is(l.stderr, '')
  t.false(fs.readFileSync(path.join(cfg, 'config.json'), 'utf8').includes(PASSWORD))
  t.is(JSON.parse(fs.readFileSync(path.join(cfg, 'config.json'), 'utf8')).psFormat, 'table {{.ID}}')
  t.is(docker(cfg, ['pull', `${reg.host}/helper:1`], undefined, helper.binDir).code, 0)
  t.is((await cli(root, ['logout', reg.host], undefined, env)).code, 0)
  t.false(Object.hasOwn(helper.secrets(), reg.host))
})
