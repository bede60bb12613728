/**
 * Image references: cases from distribution/reference's own normalize_test.go and
 * reference_test.go, plus the familiar forms docker prints.
 */
import test from 'ava'
import { StrataError } from '../ts/errors'
import {
  familiarString,
  isFullId,
  isIdPrefix,
  isValidTag,
  normalizeId,
  parse,
  parseDockerRef,
  parseNormalizedNamed,
  parseReference,
  trimNamed,
  withDigest,
  withTag,
} from '../ts/reference'

const DIGEST = 'sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa'
const HEX64 = '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a'

function invalid(t: import('ava').ExecutionContext, s: string, message?: RegExp): void {
  const err = t.throws(() => parseNormalizedNamed(s), { instanceOf: StrataError }, s)
  t.is(err?.code, 'InvalidReference', s)
  if (message) t.regex(err?.message ?? '', message, s)
}

test('normalises familiar names to docker.io/library and adds :latest', (t) => {
  const r = parseReference('busybox')
  t.is(r.domain, 'docker.io')
  t.is(r.path, 'library/busybox')
  t.is(r.name, 'docker.io/library/busybox')
  t.is(r.tag, 'latest')
  t.is(r.digest, undefined)
  t.is(r.familiarName, 'busybox')
  t.is(r.string(), 'docker.io/library/busybox:latest')
  t.is(r.familiarString(), 'busybox:latest')
  t.is(String(r), 'docker.io/library/busybox:latest')
})

test('user repositories keep their namespace', (t) => {
  const r = parseReference('user/x')
  t.is(r.name, 'docker.io/user/x')
  t.is(r.familiarString(), 'user/x:latest')
  t.is(parseReference('docker.io/user/x:1.0').familiarString(), 'user/x:1.0')
  t.is(parseReference('index.docker.io/user/x').name, 'docker.io/user/x')
  t.is(parseReference('docker.io/debian').name, 'docker.io/library/debian')
  t.is(parseReference('index.docker.io/debian').familiarString(), 'debian:latest')
  // library/ with nested namespaces is not shortened
  t.is(parseReference('library/foo/bar').familiarName, 'library/foo/bar')
  t.is(parseReference('other/library').familiarName, 'other/library')
})

test('host:port with and without tag', (t) => {
  const a = parseReference('localhost:5000/x:1')
  t.is(a.domain, 'localhost:5000')
  t.is(a.path, 'x')
  t.is(a.tag, '1')
  t.is(a.familiarString(), 'localhost:5000/x:1')
  t.is(a.string(), 'localhost:5000/x:1')

  const b = parseReference('localhost:5000/x')
  t.is(b.tag, 'latest')
  t.is(b.familiarString(), 'localhost:5000/x:latest')

  const c = parseNormalizedNamed('127.0.0.1:8000/private/moonbase')
  t.is(c.domain, '127.0.0.1:8000')
  t.is(c.path, 'private/moonbase')
  t.is(c.tag, undefined)
  t.is(parseReference('localhost/foo').domain, 'localhost')
  t.is(parseReference('example.com/privatebase').familiarName, 'example.com/privatebase')
  t.is(parseReference('[fc00::1]:5000/docker/docker').domain, '[fc00::1]:5000')
  t.is(parseReference('test-com:8080/foo').domain, 'test-com:8080')
  t.is(parseReference('xn--n3h.com:18080/foo').domain, 'xn--n3h.com:18080')
  // no dot, no colon, not localhost: a namespace on Docker Hub
  t.is(parseReference('test_com/foo').name, 'docker.io/test_com/foo')
})

test('digests: name@digest and name:tag@digest', (t) => {
  const d = parseReference(`busybox@${DIGEST}`)
  t.is(d.tag, undefined, 'no default tag when a digest is given')
  t.is(d.digest, DIGEST)
  t.is(d.familiarString(), `busybox@${DIGEST}`)
  t.is(d.string(), `docker.io/library/busybox@${DIGEST}`)

  const td = parseReference(`busybox:latest@${DIGEST}`)
  t.is(td.tag, 'latest')
  t.is(td.digest, DIGEST)
  t.is(td.string(), `docker.io/library/busybox:latest@${DIGEST}`)
  t.is(td.familiarString(), `busybox:latest@${DIGEST}`)

  t.is(parseReference(`localhost:5000/a/b:v1@${DIGEST}`).familiarString(), `localhost:5000/a/b:v1@${DIGEST}`)
  invalid(t, `busybox@sha256:${'a'.repeat(63)}`, /digest length/)
  invalid(t, `busybox@sha256:${'A'.repeat(64)}`, /digest format/)
  invalid(t, `busybox@md5:${'a'.repeat(32)}`, /unsupported digest algorithm/)
  invalid(t, 'busybox@sha256:xyz')
})

test('familiarString strips docker.io/library/', (t) => {
  t.is(familiarString('docker.io/library/busybox:latest'), 'busybox:latest')
  t.is(familiarString('docker.io/library/ubuntu-12.04-base'), 'ubuntu-12.04-base')
  t.is(familiarString('docker.io/dmcgowan/myapp:latest'), 'dmcgowan/myapp:latest')
  t.is(familiarString('quay.io/coreos/etcd:v3'), 'quay.io/coreos/etcd:v3')
})

test('valid names from distribution/reference', (t) => {
  for (const s of [
    'docker/docker',
    'library/debian',
    'debian',
    'docker.io/docker/docker',
    'docker.io/library/debian',
    'docker.io/debian',
    'index.docker.io/docker/docker',
    'index.docker.io/library/debian',
    'index.docker.io/debian',
    '127.0.0.1:5000/docker/docker',
    '127.0.0.1:5000/library/debian',
    '127.0.0.1:5000/debian',
    '192.168.0.1',
    '192.168.0.1:80',
    '192.168.0.1:8/debian',
    '192.168.0.2:25000/debian',
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    '[fc00::1]:5000/docker',
    '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
    `docker.io/${HEX64}`,
    'Docker/docker',
    'DOCKER/docker',
    'docker-rules/docker',
    'docker---rules/docker',
    'd/docker',
    'jess/t',
    'dock__er/docker',
    'a.b_c__d-e--f/g',
  ]) {
    t.notThrows(() => parseNormalizedNamed(s), s)
  }
  // An uppercase first component is taken as a domain (normalize.go).
  const up = parseNormalizedNamed('Foo/bar')
  t.is(up.domain, 'Foo')
  t.is(up.familiarName, 'Foo/bar')
})

test('invalid names from distribution/reference', (t) => {
  for (const s of [
    '',
    'https://github.com/docker/docker',
    '-docker',
    '-docker/docker',
    '-docker.io/docker/docker',
    'docker///docker',
    'docker.io/docker///docker',
    '[fc00::1]',
    '[fc00::1]:5000',
    'fc00::1:5000/debian',
    '[fe80::1%eth0]:5000/debian',
    '[2001:db8:3:4::192.0.2.33]:5000/debian',
    'docker-/docker',
    '-docker-/docker',
    '____/____',
    '_docker/_docker',
    'dock..er/docker',
    'dock_.er/docker',
    'dock-.er/docker',
    'docker/',
    'busybox:',
    'busybox:-tag',
    `busybox:${'a'.repeat(129)}`,
    'busybox@',
  ]) {
    invalid(t, s)
  }
})

test('uppercase repository names are rejected with docker message', (t) => {
  invalid(t, 'Busybox', /^invalid reference format: repository name \(library\/Busybox\) must be lowercase$/)
  invalid(t, 'docker/Docker', /must be lowercase/)
  invalid(t, 'docker.io/docker/Docker', /must be lowercase/)
  invalid(t, 'localhost:5000/Foo:1', /repository name \(Foo\) must be lowercase/)
  // tags may be uppercase
  t.is(parseReference('busybox:Latest').tag, 'Latest')
  // the strict parser has its own wording
  t.throws(() => parse('Busybox'), { message: 'repository name must be lowercase' })
})

test('64-hex strings are IDs, not repository names', (t) => {
  invalid(t, HEX64, /cannot specify 64-byte hexadecimal strings/)
  t.is(parseReference(HEX64.slice(0, 63)).name, `docker.io/library/${HEX64.slice(0, 63)}`)
  t.is(parseReference('dbcc1').name, 'docker.io/library/dbcc1')
})

test('name length: at most 255 characters including the domain', (t) => {
  // docker.io/library/ is 18 characters
  const ok = 'a'.repeat(255 - 18)
  t.is(parseReference(ok).name.length, 255)
  invalid(t, 'a'.repeat(256 - 18), /must not be more than 255 characters/)
  invalid(t, `example.com/${'a'.repeat(256 - 12)}`, /must not be more than 255 characters/)
  t.notThrows(() => parseNormalizedNamed(`example.com/${'a'.repeat(255 - 12)}`))
  invalid(t, `${'a'.repeat(256)}:tag`)
  // tags are 128 characters at most
  t.is(parseReference(`busybox:${'t'.repeat(128)}`).tag?.length, 128)
})

test('strict parse does not normalise', (t) => {
  const r = parse('busybox')
  t.is(r.domain, '')
  t.is(r.path, 'busybox')
  t.is(r.tag, undefined)
  t.is(r.string(), 'busybox')
  const h = parse('localhost:5000/x:1')
  t.is(h.domain, 'localhost:5000')
  t.is(h.tag, '1')
  // without normalisation a dotless first component is part of the path
  t.is(parse('foo/bar').domain, 'foo')
})

test('withTag / withDigest / trimNamed', (t) => {
  const r = parseNormalizedNamed('busybox')
  t.is(withTag(r, 'v1').familiarString(), 'busybox:v1')
  t.throws(() => withTag(r, '-foo'), { instanceOf: StrataError, message: 'invalid tag format' })
  t.is(withDigest(r, DIGEST).familiarString(), `busybox@${DIGEST}`)
  t.throws(() => withDigest(r, 'foo'), { instanceOf: StrataError })
  t.is(trimNamed(parseReference(`busybox:1@${DIGEST}`)).string(), 'docker.io/library/busybox')
  t.true(isValidTag('v1.2_3-rc'))
  t.false(isValidTag('.v1'))
})

test('isIdPrefix / isFullId / normalizeId', (t) => {
  for (const s of ['a', 'e1d7dc9731da', HEX64, `sha256:${HEX64}`, 'sha256:e1d7']) t.true(isIdPrefix(s), s)
  for (const s of ['', 'sha256:', 'xyz', 'E1D7', `${HEX64}0`, 'md5:abcd', 'busybox', 'e1d7:latest']) t.false(isIdPrefix(s), s)
  t.true(isFullId(HEX64))
  t.true(isFullId(`sha256:${HEX64}`))
  t.false(isFullId('e1d7dc9731da'))
  t.is(normalizeId('e1d7'), 'sha256:e1d7')
  t.is(normalizeId(`sha256:${HEX64}`), `sha256:${HEX64}`)
  t.throws(() => normalizeId('nope'), { instanceOf: StrataError })
})

test('parseDockerRef keeps only the digest of tag+digest references', (t) => {
  t.is(parseDockerRef(`busybox:latest@${DIGEST}`).string(), `docker.io/library/busybox@${DIGEST}`)
  t.is(parseDockerRef('busybox').string(), 'docker.io/library/busybox:latest')
  t.is(parseDockerRef(`busybox@${DIGEST}`).familiarString(), `busybox@${DIGEST}`)
})
