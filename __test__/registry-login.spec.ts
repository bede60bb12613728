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
import { TestRegistry, PASSWORD, USER, TokenRequest } from './helpers/registry'
import { makeCredentialHelper } from './helpers/credential-helper'
import { Dockerd } from './helpers/dockerd'
import { Store, StrataError } from '../ts'

const DOCKER_2010 = '/usr/bin/docker'
const work = fs.mkdtempSync(path.join('/var/tmp', 'strata-login-'))
let reg: TestRegistry
let tokenReg: TestRegistry
let rotating: TestRegistry
const engine = new Dockerd('registry-login')

test.before(() => {
  reg = TestRegistry.start(path.join(work, 'reg'), 'htpasswd')
  tokenReg = TestRegistry.start(path.join(work, 'token'), 'token')
  rotating = TestRegistry.start(path.join(work, 'rotating'), 'token', { rotateRefresh: true })
  engine.start()
})
test.after.always(() => {
  for (const r of [reg, tokenReg, rotating]) r?.stop()
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

/** The token requests an issuer saw since `from`, without what differs from run to run. */
async function requestsSince(r: TestRegistry, from: number): Promise<TokenRequest[]> {
  return (await r.tokenStats()).log.slice(from)
}

const configOf = (cfg: string) => JSON.parse(fs.readFileSync(path.join(cfg, 'config.json'), 'utf8'))

test('identity tokens: login stores the issuer\'s refresh token as docker login does; docker\'s identitytoken works for strata, strata\'s for docker', async (t) => {
  const { dir, root } = await storeWithImage(t)
  const ours = path.join(dir, 'strata-cfg')
  const theirs = path.join(dir, 'docker-cfg')
  const host = tokenReg.host

  // Both logins ask the issuer the same way: Basic credentials, offline_token=true, client_id=docker.
  let seen = (await tokenReg.tokenStats()).log.length
  const ok = await cli(root, ['login', '-u', USER, '--password-stdin', host], PASSWORD, { DOCKER_CONFIG: ours })
  t.is(ok.code, 0, ok.stderr)
  const mineAsked = await requestsSince(tokenReg, seen)
  seen += mineAsked.length
  const d = docker(theirs, ['login', '-u', USER, '--password-stdin', host], PASSWORD)
  t.is(d.code, 0, d.stderr)
  const theirsAsked = await requestsSince(tokenReg, seen)
  t.deepEqual(mineAsked, theirsAsked)
  t.like(mineAsked[0], { method: 'GET', grant: 'basic', clientId: 'docker', offline: true, account: USER, refreshIssued: true })
  // The same lines (no "stored unencrypted" warning: a token, not the password, is stored) and
  // the same file, but for the token itself.
  t.is(ok.stdout, d.stdout)
  t.is(ok.stderr, d.stderr)
  const mineCfg = configOf(ours)
  const theirCfg = configOf(theirs)
  const token = mineCfg.auths[host].identitytoken as string
  t.truthy(token)
  t.not(token, theirCfg.auths[host].identitytoken)
  t.deepEqual(mineCfg, { auths: { [host]: { auth: Buffer.from(`${USER}:`).toString('base64'), identitytoken: token } } })
  t.is(fs.readFileSync(path.join(ours, 'config.json'), 'utf8'), fs.readFileSync(path.join(theirs, 'config.json'), 'utf8').replace(theirCfg.auths[host].identitytoken, token))
  t.false(fs.readFileSync(path.join(ours, 'config.json'), 'utf8').includes(PASSWORD))

  // strata pushes with docker's identity token: exchanged with the OAuth2 form, never a password.
  await cli(root, ['tag', 'busybox', `${host}/ident:1`])
  seen = (await tokenReg.tokenStats()).log.length
  const pushed = await cli(root, ['push', `${host}/ident:1`], undefined, { DOCKER_CONFIG: theirs })
  t.is(pushed.code, 0, pushed.stderr)
  const pushAsked = await requestsSince(tokenReg, seen)
  t.true(pushAsked.length >= 1)
  for (const r of pushAsked) t.like(r, { method: 'POST', grant: 'refresh_token', clientId: 'docker', account: USER })
  // docker pulls with strata's; so does strata, and `login` alone re-checks the stored token.
  const pulled = docker(ours, ['pull', `${host}/ident:1`])
  t.is(pulled.code, 0, pulled.stderr)
  const p = await cli(path.join(dir, 'root2'), ['pull', `${host}/ident:1`], undefined, { DOCKER_CONFIG: ours })
  t.is(p.code, 0, p.stderr)
  // `login SERVER` alone does not re-check a stored identity token (docker's CLI drops it and
  // asks for a password): the same refusal off a terminal from both, the file untouched.
  const again = await cli(root, ['login', host], '', { DOCKER_CONFIG: ours })
  const dAgain = docker(ours, ['login', host], '')
  t.is(again.code, 1)
  t.is(dAgain.code, 1)
  t.is(again.stderr.replace(/^strata: /, ''), dAgain.stderr, 'docker\'s message, after the CLI\'s own prefix')
  t.regex(again.stderr, /Cannot perform an interactive login from a non TTY device/)
  t.is(configOf(ours).auths[host].identitytoken, token)

  // A token the issuer does not know: Unauthorized, the store and the file untouched, no secret shown.
  const bogus = path.join(dir, 'bogus-cfg')
  fs.mkdirSync(bogus)
  fs.writeFileSync(path.join(bogus, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${USER}:`).toString('base64'), identitytoken: 'not-a-real-token-xyz' } } }))
  const store = await Store.open({ root: path.join(dir, 'root3'), dockerConfig: bogus })
  const e = await t.throwsAsync(store.pull(`${host}/ident:1`), { instanceOf: StrataError })
  t.is(e.code, 'Unauthorized')
  t.false(e.message.includes('not-a-real-token-xyz'))
  t.deepEqual(await store.images.list(), [])
  await store.close()
  const refused = await cli(root, ['pull', `${host}/ident:1`], undefined, { DOCKER_CONFIG: bogus })
  t.is(refused.code, 1)
  t.false(refused.stderr.includes('not-a-real-token-xyz'))
})

test('identity tokens: an issuer that rotates them; store.login() with the stored token stores the new one', async (t) => {
  const { dir, root } = await storeWithImage(t)
  const cfg = path.join(dir, 'cfg')
  const env = { DOCKER_CONFIG: cfg }
  const ok = await cli(root, ['login', '-u', USER, '--password-stdin', rotating.host], PASSWORD, env)
  t.is(ok.code, 0, ok.stderr)
  const first = configOf(cfg).auths[rotating.host].identitytoken as string
  t.truthy(first)
  const store = await Store.open({ root, dockerConfig: cfg })
  t.like(await store.login(rotating.host), { status: 'Login Succeeded', identityToken: true })
  await store.close()
  const second = configOf(cfg).auths[rotating.host].identitytoken as string
  t.truthy(second)
  t.not(second, first, 'the rotated token replaced the used one')
  t.deepEqual(Object.keys(configOf(cfg).auths[rotating.host]).sort(), ['auth', 'identitytoken'])
  // The used one is refused now; the new one works.
  await cli(root, ['tag', 'busybox', `${rotating.host}/rot:1`])
  const stale = path.join(dir, 'stale')
  fs.mkdirSync(stale)
  fs.writeFileSync(path.join(stale, 'config.json'), JSON.stringify({ auths: { [rotating.host]: { auth: Buffer.from(`${USER}:`).toString('base64'), identitytoken: first } } }))
  const refused = await cli(root, ['push', `${rotating.host}/rot:1`], undefined, { DOCKER_CONFIG: stale })
  t.is(refused.code, 1)
  t.regex(refused.stderr, /unauthorized/i)
  t.false(refused.stderr.includes(first))
  const pushed = await cli(root, ['push', `${rotating.host}/rot:1`], undefined, env)
  t.is(pushed.code, 0, pushed.stderr)
})
