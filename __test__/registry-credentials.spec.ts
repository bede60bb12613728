/**
 * Credentials where Docker keeps them: config.json's format, atomic 0600 writes that keep every
 * other key, and the docker-credential-* helper protocol, spoken by a helper the test makes
 * (the protocol is what is under test; `docker` itself drives the same helper in
 * registry-login.spec.ts).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { tmpDir } from './helpers/fs'
import { makeCredentialHelper } from './helpers/credential-helper'
import { DockerConfig, serverKey, keyForRegistry, convertToHostname, configDir, INDEX_SERVER } from '../ts/registry/credentials'
import { StrataError } from '../ts/errors'

test('server keys are named as Docker names them', (t) => {
  t.is(serverKey(undefined), INDEX_SERVER)
  t.is(serverKey(''), INDEX_SERVER)
  t.is(serverKey('https://index.docker.io/v1/'), INDEX_SERVER)
  t.is(serverKey('docker.io'), INDEX_SERVER)
  t.is(serverKey('index.docker.io'), INDEX_SERVER)
  t.is(serverKey('registry-1.docker.io'), INDEX_SERVER)
  t.is(serverKey('localhost:5000'), 'localhost:5000')
  t.is(serverKey('https://registry.example:8443/v2/'), 'registry.example:8443')
  t.is(keyForRegistry('docker.io'), INDEX_SERVER)
  t.is(keyForRegistry('127.0.0.1:5000'), '127.0.0.1:5000')
  t.is(convertToHostname('http://h:1/x/y'), 'h:1')
  t.is(configDir({ DOCKER_CONFIG: '/x', HOME: '/h' }), '/x')
  t.is(configDir({ HOME: '/h' }), '/h/.docker')
})

test('the file: Docker format, mode 0600, other keys kept in order, symlink followed, erase in every form', async (t) => {
  const dir = tmpDir(t)
  const cfgDir = path.join(dir, 'docker')
  const config = new DockerConfig(cfgDir)
  t.is(await config.get('localhost:5000'), undefined, 'no file: no credentials')

  // A new file: auths first, tab indentation, no trailing newline (Go's MarshalIndent).
  const stored = await config.store({ serverAddress: 'localhost:5000', username: 'alice', password: 'p:ss' })
  t.deepEqual(stored, { file: path.join(cfgDir, 'config.json') })
  t.is(fs.readFileSync(config.file, 'utf8'), `{\n\t"auths": {\n\t\t"localhost:5000": {\n\t\t\t"auth": "${Buffer.from('alice:p:ss').toString('base64')}"\n\t\t}\n\t}\n}`)
  t.is(fs.statSync(config.file).mode & 0o777, 0o600)
  t.deepEqual(await config.get('localhost:5000'), { serverAddress: 'localhost:5000', username: 'alice', password: 'p:ss' })

  // Other keys (known to Docker or not) survive a store, in their order; a key with a scheme matches.
  const other = { psFormat: 'table {{.ID}}', proxies: { default: { httpProxy: 'http://p:3128' } }, auths: { 'https://old.example/v1/': { auth: Buffer.from('bob:x').toString('base64') } }, 'x-unknown': [1, 2] }
  fs.writeFileSync(config.file, JSON.stringify(other), { mode: 0o644 })
  t.deepEqual(await config.get('old.example'), { serverAddress: 'old.example', username: 'bob', password: 'x' })
  await config.store({ serverAddress: INDEX_SERVER, username: 'carol', password: 'y' })
  const after = JSON.parse(fs.readFileSync(config.file, 'utf8'))
  t.deepEqual(Object.keys(after), ['psFormat', 'proxies', 'auths', 'x-unknown'])
  t.deepEqual(after.proxies, other.proxies)
  t.deepEqual(after['x-unknown'], [1, 2])
  t.deepEqual(Object.keys(after.auths), ['https://old.example/v1/', INDEX_SERVER])
  t.is(fs.statSync(config.file).mode & 0o777, 0o600)
  t.deepEqual(fs.readdirSync(cfgDir), ['config.json'], 'no temp file left')

  // An identity token replaces the password; the username stays beside it.
  await config.store({ serverAddress: 'tok.example', username: 'dan', identityToken: 'refresh-123' })
  t.deepEqual(JSON.parse(fs.readFileSync(config.file, 'utf8')).auths['tok.example'], { auth: Buffer.from('dan:').toString('base64'), identitytoken: 'refresh-123' })
  t.deepEqual(await config.get('tok.example'), { serverAddress: 'tok.example', username: 'dan', password: '', identityToken: 'refresh-123' })

  // logout erases host, http://host and https://host forms.
  fs.writeFileSync(config.file, JSON.stringify({ auths: { 'h:1': { auth: 'YTpi' }, 'https://h:1': { auth: 'YTpi' }, keep: { auth: 'YTpi' } } }))
  const erased = await config.erase('h:1')
  t.is(erased.failed.size, 0)
  t.deepEqual(Object.keys(JSON.parse(fs.readFileSync(config.file, 'utf8')).auths), ['keep'])

  // A symlinked config.json is rewritten at its target, the link stays.
  const real = path.join(dir, 'real.json')
  fs.writeFileSync(real, '{}')
  fs.rmSync(config.file)
  fs.symlinkSync(real, config.file)
  await config.store({ serverAddress: 'l:2', username: 'u', password: 'p' })
  t.true(fs.lstatSync(config.file).isSymbolicLink())
  t.truthy(JSON.parse(fs.readFileSync(real, 'utf8')).auths['l:2'])
})

test('a corrupt file or auth entry is ConfigInvalid, and the secret is not in the message', async (t) => {
  const dir = tmpDir(t)
  const config = new DockerConfig(dir)
  fs.writeFileSync(config.file, '{"auths": ')
  const e1 = await t.throwsAsync(config.get('x'), { instanceOf: StrataError })
  t.is(e1.code, 'ConfigInvalid')
  fs.writeFileSync(config.file, JSON.stringify({ auths: { x: { auth: Buffer.from('no-colon-secret').toString('base64') } } }))
  const e2 = await t.throwsAsync(config.get('x'), { instanceOf: StrataError })
  t.is(e2.code, 'ConfigInvalid')
  t.false(e2.message.includes('no-colon-secret'))
  // Storing another server's credentials keeps the bad entry as it was (strata never decodes it).
  await config.store({ serverAddress: 'y', username: 'a', password: 'b' })
  const after = JSON.parse(fs.readFileSync(config.file, 'utf8'))
  t.deepEqual(Object.keys(after.auths), ['x', 'y'])
})

test('credsStore and credHelpers: the helper protocol (get / store / erase), tokens as <token>', async (t) => {
  const dir = tmpDir(t)
  const helper = makeCredentialHelper(dir, 'strata-test')
  const env = { PATH: `${helper.binDir}:${process.env.PATH}` }
  const prevPath = process.env.PATH
  process.env.PATH = env.PATH
  t.teardown(() => { process.env.PATH = prevPath })

  const config = new DockerConfig(path.join(dir, 'cfg'))
  fs.mkdirSync(path.join(dir, 'cfg'))
  fs.writeFileSync(config.file, JSON.stringify({ credsStore: 'strata-test', credHelpers: { 'special:1': 'nonexistent-helper' } }))
  t.is(await config.get('a:1'), undefined, 'helper says "credentials not found"')
  const where = await config.store({ serverAddress: 'a:1', username: 'alice', password: 'hunter2' })
  t.deepEqual(where, { helper: 'strata-test' })
  t.deepEqual(helper.secrets(), { 'a:1': { Username: 'alice', Secret: 'hunter2' } })
  const file = JSON.parse(fs.readFileSync(config.file, 'utf8'))
  t.deepEqual(file.auths, { 'a:1': {} }, 'the file names the server, without a secret')
  t.false(fs.readFileSync(config.file, 'utf8').includes('hunter2'))
  t.deepEqual(await config.get('a:1'), { serverAddress: 'a:1', username: 'alice', password: 'hunter2' })

  await config.store({ serverAddress: 'b:1', username: 'bob', identityToken: 'rt-1' })
  t.deepEqual(helper.secrets()['b:1'], { Username: '<token>', Secret: 'rt-1' })
  t.deepEqual(await config.get('b:1'), { serverAddress: 'b:1', identityToken: 'rt-1' })

  // erase: the helper's entry and the file's; forms the helper does not know fail, one succeeds.
  const erased = await config.erase('a:1')
  t.deepEqual([...erased.failed.keys()], ['http://a:1', 'https://a:1'])
  t.is(await config.get('a:1'), undefined)
  t.deepEqual(Object.keys(JSON.parse(fs.readFileSync(config.file, 'utf8')).auths), ['b:1'])

  // credHelpers wins over credsStore for its server; a missing helper is a typed error.
  const e = await t.throwsAsync(config.get('special:1'), { instanceOf: StrataError })
  t.is(e.code, 'CredentialHelperFailed')
  t.regex(e.message, /docker-credential-nonexistent-helper/)
})
