/**
 * pull and push on a terminal (a real pseudo-terminal, `helpers/pty.ts`), judged by Docker
 * 20.10's CLI on the same kind of terminal: per-layer lines redrawn in place, with Docker's bar
 * and byte counts while bytes move (Downloading, then Extracting), and the same final screen.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import { tmpDir, cli, CLI } from './helpers/fs'
import { Dockerd } from './helpers/dockerd'
import { buildImage, busyboxEntries, writeArchive } from './helpers/image'
import { layer1Entries } from './helpers/fixtures'
import { tar } from './helpers/tar'
import { TestRegistry } from './helpers/registry'
import { runInPty, replay } from './helpers/pty'

const engine = new Dockerd('strata-registry-terminal')
const work = fs.mkdtempSync(path.join('/var/tmp', 'strata-term-'))
let reg: TestRegistry
// Two gzip layers (Docker 20.10 pulls no zstd), the larger ~1 MB so its bar is drawn on the way.
const img = buildImage({ layers: [tar(busyboxEntries()), tar(layer1Entries())], compression: ['gzip', 'gzip'], tags: ['term:1'] })
// Layers of its own for push (none the registry or the engine's records know: every layer is
// uploaded, none mounted), 2 MiB that gzip cannot shrink so the bars have bytes to count.
const pushImg = buildImage({ layers: [tar([{ name: 'noise.bin', data: randomBytes(2 << 20) }]), tar([{ name: 'small', data: 'x\n' }])], tags: ['term-push:1'] })

test.before(async () => {
  engine.start()
  reg = TestRegistry.start(path.join(work, 'reg'), 'plain')
  await reg.pushImage('term', '1', img)
})
test.after.always(() => {
  reg?.stop()
  engine.stop()
  fs.rmSync(work, { recursive: true, force: true })
})

const dockerArgv = (...args: string[]): string[] => ['docker', ...args]
const dockerEnv = (): NodeJS.ProcessEnv => ({ DOCKER_HOST: engine.host })
const strataArgv = (root: string, ...args: string[]): string[] => [process.execPath, CLI, '--root', root, ...args]

/** A progress line as jsonmessage draws it past 110 columns: `ID: Status [===>   ]  1.2MB/3.4MB`. */
const BAR = (status: string): RegExp => new RegExp(`^[0-9a-f]{12}: ${status} \\[=*> *\\] +[\\d.]+[kMGT]?B/[\\d.]+[kMGT]?B$`)

test.serial('pull on a terminal: Docker\'s bars with bytes while downloading, Docker\'s final screen', async (t) => {
  const ref = `${reg.host}/term:1`
  const theirs = await runInPty(dockerArgv('pull', ref), { env: dockerEnv() })
  t.teardown(() => { try { engine.docker('rmi', ref) } catch { /* not there */ } })
  t.is(theirs.code, 0, theirs.raw)
  const root = path.join(tmpDir(t), 'root')
  const mine = await runInPty(strataArgv(root, 'pull', ref))
  t.is(mine.code, 0, mine.raw)
  const ours = replay(mine.raw)
  const docker = replay(theirs.raw)
  t.deepEqual(ours.final, docker.final)
  t.is(ours.final[ours.final.length - 1], ref)
  t.true(docker.drawn.some((l) => BAR('Downloading').test(l)), 'the judge draws such bars')
  const bars = ours.drawn.filter((l) => BAR('Downloading').test(l))
  t.true(bars.length >= 1, ours.drawn.join('\n'))
  // Then Docker's Extracting bar (full: strata extracted while it downloaded) until Pull complete.
  t.true(docker.drawn.some((l) => /^[0-9a-f]{12}: Extracting \[/.test(l)), 'the judge draws Extracting bars')
  t.true(ours.drawn.some((l) => BAR('Extracting').test(l) && l.includes('[' + '='.repeat(50) + '>]')), ours.drawn.join('\n'))
  // Each layer's line is redrawn in place: the cursor goes up to it and the line is erased.
  t.regex(mine.raw, /\x1b\[\d+A\r?\x1b\[2K[0-9a-f]{12}: Downloading \[/)

  // Narrower than 111 columns: bytes without the bar, as Docker draws them.
  const narrow = await runInPty(strataArgv(path.join(tmpDir(t), 'root2'), 'pull', ref), { cols: 100 })
  t.is(narrow.code, 0, narrow.raw)
  const lines = replay(narrow.raw).drawn.filter((l) => / Downloading /.test(l))
  t.true(lines.length >= 1)
  for (const l of lines) t.regex(l, /^[0-9a-f]{12}: Downloading +[\d.]+[kMGT]?B\/[\d.]+[kMGT]?B$/)
})

test.serial('push on a terminal: Docker\'s bars while pushing, Docker\'s final screen', async (t) => {
  const dir = tmpDir(t)
  const archive = path.join(dir, 'in.tar')
  writeArchive(archive, [pushImg], 'legacy')
  const root = path.join(dir, 'root')
  t.is((await cli(root, ['load', '-i', archive])).code, 0)
  engine.docker('load', '-i', archive)
  const mineRef = `${reg.host}/term-strata:1`
  const theirRef = `${reg.host}/term-docker:1`
  t.is((await cli(root, ['tag', 'term-push:1', mineRef])).code, 0)
  engine.docker('tag', 'term-push:1', theirRef)
  t.teardown(() => { try { engine.docker('rmi', 'term-push:1', theirRef) } catch { /* gone */ } })
  const theirs = await runInPty(dockerArgv('push', theirRef), { env: dockerEnv() })
  t.is(theirs.code, 0, theirs.raw)
  const mine = await runInPty(strataArgv(root, 'push', mineRef))
  t.is(mine.code, 0, mine.raw)
  const shape = (lines: string[]): string[] => lines.map((l) => l.replace(/term-(strata|docker)/, 'REPO').replace(/sha256:[0-9a-f]{64} size: \d+/, 'DIGEST size: N'))
  t.deepEqual(shape(replay(mine.raw).final), shape(replay(theirs.raw).final))
  t.true(replay(theirs.raw).drawn.some((l) => /^[0-9a-f]{12}: Pushing \[=*> *\] /.test(l)), 'the judge draws such bars')
  const bars = replay(mine.raw).drawn.filter((l) => BAR('Pushing').test(l))
  t.true(bars.length >= 1, replay(mine.raw).drawn.join('\n'))
})
