/**
 * `.dockerignore` with Docker's semantics: moby's patternmatcher against @balena/dockerignore
 * (which follows Docker) on generated patterns and paths; where the two disagree, the real
 * engine's build decides (BuildKit's context walk through `COPY . /ctx`).
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import ignore from '@balena/dockerignore'
import { PatternMatcher, readIgnoreFile, cleanPath, BadPatternError } from '../ts/build/dockerignore'
import { BuildContext } from '../ts/build/context'
import { tmpDir } from './helpers/fs'
import { BuildKitPeer } from './helpers/buildkit'

/** A small deterministic PRNG so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const NAMES = ['a', 'b', 'ab', 'c.txt', 'd.md', '.x']
const PIECES = ['a', 'b', '*', '?', '**', 'a*', '*.txt', '[ab]', 'c.txt', '.x', '*b', 'd.md']

function genPattern(r: () => number): string {
  const n = 1 + Math.floor(r() * 3)
  const parts: string[] = []
  for (let i = 0; i < n; i++) parts.push(PIECES[Math.floor(r() * PIECES.length)])
  let p = parts.join('/')
  if (r() < 0.15) p = `/${p}`
  if (r() < 0.1) p = `${p}/`
  if (r() < 0.25) p = `!${p}`
  return p
}

function genPaths(r: () => number, count: number): string[] {
  const out = new Set<string>()
  while (out.size < count) {
    const depth = 1 + Math.floor(r() * 4)
    const parts: string[] = []
    for (let i = 0; i < depth; i++) parts.push(NAMES[Math.floor(r() * NAMES.length)])
    out.add(parts.join('/'))
  }
  return [...out]
}

test('readIgnoreFile: comments, trimming, exceptions, cleaning, leading slash', (t) => {
  t.deepEqual(readIgnoreFile('\ufeff# comment\n  a/b/../c  \n\n!/d/./e\n/\n  # not a comment\n*.log\r\n'), ['a/c', '!d/e', '/', '# not a comment', '*.log'])
  t.is(cleanPath('a//b/./../c/'), 'a/c')
  t.throws(() => new PatternMatcher(['[a']), { instanceOf: BadPatternError })
  t.throws(() => new PatternMatcher(['!']), { instanceOf: BadPatternError })
})

/** Generated pattern sets compared with balena; the sets where the two disagree go to the engine. */
function compareWithBalena(): { compared: number; disagreements: { patterns: string[]; file: string }[] } {
  const r = rng(20261130)
  const disagreements: { patterns: string[]; file: string }[] = []
  let compared = 0
  for (let round = 0; round < 400; round++) {
    const patterns = Array.from({ length: 1 + Math.floor(r() * 4) }, () => genPattern(r))
    const cleaned = readIgnoreFile(patterns.join('\n'))
    let pm: PatternMatcher
    try {
      pm = new PatternMatcher(cleaned)
    } catch {
      continue
    }
    const ig = ignore({ ignorecase: false }).add(patterns)
    for (const file of genPaths(r, 12)) {
      compared++
      if (pm.matches(file) !== ig.ignores(file)) disagreements.push({ patterns: cleaned, file })
    }
  }
  return { compared, disagreements }
}
const balena = compareWithBalena()

test('patternmatcher agrees with @balena/dockerignore on generated patterns (or the engine decides)', (t) => {
  t.true(balena.compared > 3000)
  // balena generalises `**` in parent paths beyond what moby's matcher does; the engine judges those.
  t.true(balena.disagreements.length < balena.compared / 20, `${balena.disagreements.length} of ${balena.compared}`)
  for (const d of balena.disagreements) t.true(d.patterns.some((p) => p.includes('**')), JSON.stringify(d))
})

const engine = new BuildKitPeer('strata-test-build-ignore')
test.before(() => engine.start())
test.after.always(() => engine.stop())

test.serial('the context walk matches what the real engine sends for the same .dockerignore', async (t) => {
  const r = rng(7)
  const dir = tmpDir(t)
  const files = genPaths(r, 60).filter((f, _i, all) => !all.some((o) => o.startsWith(`${f}/`)))
  t.true(files.length > 20)
  fs.mkdirSync(dir, { recursive: true })
  // Pattern sets that stress `**`, exceptions below excluded dirs, and dir-only matches.
  const disputed = [...new Set(balena.disagreements.map((d) => JSON.stringify(d.patterns)))].slice(0, 6).map((s) => JSON.parse(s) as string[])
  const sets = [
    ...disputed,
    ['a', '!a/b'], ['**/b', '!ab/**/b'], ['*/a*', '!*/ab/c.txt'], ['**', '!**/*.txt'], ['a/**', '!a/.x/**'],
    ['?/*', '!b/a'], ['[ab]*/**/d.md'], ['**/.x', '!.x'], ['a*', '!ab', 'ab/b'], ['*.md', '**/*.md', '!a/**/d.md'],
  ]
  for (const [i, set] of sets.entries()) {
    const ctx = path.join(dir, `ctx${i}`)
    fs.mkdirSync(ctx)
    for (const f of files) {
      fs.mkdirSync(path.join(ctx, path.dirname(f)), { recursive: true })
      fs.writeFileSync(path.join(ctx, f), f)
    }
    fs.writeFileSync(path.join(ctx, '.dockerignore'), `${set.join('\n')}\n`)
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY . /ctx/\n')
    const ours = await BuildContext.scan(ctx, readIgnoreFile(set.join('\n')), path.join(dir, 'idx'))
    const oursFiles = [...ours.entries.values()].filter((e) => (e.mode & 0o170000) === 0o100000).map((e) => e.rel).sort()
    const theirs = engine.contextFiles(ctx).filter((f) => f.startsWith('ctx/')).map((f) => f.slice(4)).sort()
    t.deepEqual(oursFiles, theirs, `patterns ${JSON.stringify(set)}`)
  }
})
