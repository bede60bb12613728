/**
 * How the CLI reports expected errors: one `strata: <message>` line (or docker's own per-object
 * lines), never a JavaScript stack trace, and docker's exit status — the real docker CLI against
 * a private engine is the judge of the status for the same command line on the same image.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { Store } from '../ts'
import { cli, tmpDir } from './helpers/fs'
import { writeArchive } from './helpers/image'
import { busyboxImage } from './helpers/fixtures'
import { Dockerd } from './helpers/dockerd'

const engine = new Dockerd('cli-errors')
test.before(() => engine.start())
test.after.always(() => engine.stop())

function docker(args: string[]): { code: number; stderr: string } {
  const r = spawnSync('docker', args, { env: { ...process.env, DOCKER_HOST: engine.host }, encoding: 'utf8', timeout: 60_000 })
  return { code: r.status ?? -1, stderr: r.stderr }
}

/** Command lines whose exit status both CLIs must agree on (the image is `errs:1` on both sides). */
const CASES: { args: string[]; note: string }[] = [
  { args: ['tag'], note: 'wrong number of arguments' },
  { args: ['images', '--bogus'], note: 'unknown flag' },
  { args: ['images', '-f', 'bogus=1'], note: 'unknown filter' },
  { args: ['rmi', 'nope'], note: 'no such image' },
  { args: ['tag', 'nope', 'x:1'], note: 'no such image' },
  { args: ['history', 'nope'], note: 'no such image' },
  { args: ['inspect', 'nope'], note: 'no such object' },
  { args: ['tag', 'errs:1', 'Bad:Ref'], note: 'invalid reference' },
  { args: ['diff', 'nope'], note: 'no such container' },
  { args: ['logs', 'nope'], note: 'no such container' },
  { args: ['stop', 'nope'], note: 'no such container' },
  { args: ['rm', 'nope'], note: 'no such container' },
  { args: ['run', '--rm', 'nope:404', 'true'], note: 'run: no such image (docker fails to pull)' },
  { args: ['run', '--rm', '--bogus', 'errs:1', 'true'], note: 'run: unknown flag' },
  { args: ['run', '--rm', '-w', 'rel', 'errs:1', 'true'], note: 'run: relative workdir' },
  { args: ['run', '--rm', 'errs:1', 'no-such-command'], note: 'run: command not found' },
  { args: ['run', '--rm', 'errs:1', '/etc/passwd'], note: 'run: not executable' },
  { args: ['run', '--rm', 'errs:1', 'sh', '-c', 'exit 3'], note: 'run: the process\'s status' },
  { args: ['bogus-command'], note: 'unknown command' },
]

test('exit statuses match the docker CLI; messages are one strata: line or docker\'s per-object line; no stack traces', async (t) => {
  const dir = tmpDir(t)
  const archive = path.join(dir, 'errs.tar')
  writeArchive(archive, [busyboxImage(['errs:1'])], 'docker25')
  const root = path.join(dir, 'root')
  await (await Store.open({ root })).load(archive)
  t.is(docker(['load', '-i', archive]).code, 0)
  for (const c of CASES) {
    const want = docker(c.args)
    const got = await cli(root, c.args)
    t.is(got.code, want.code, `${c.note}: strata ${c.args.join(' ')} (docker said: ${want.stderr.trim()})\nstrata said: ${got.stderr}`)
    t.notRegex(got.stderr, /\n\s+at .+\(.*:\d+:\d+\)/, `${c.note}: no stack trace`)
    t.notRegex(got.stderr, /StrataError|TypeError|Internal/, c.note)
  }
  // The error line of a failure main() reports, exactly.
  const diff = await cli(root, ['diff', 'nope'])
  t.is(diff.stderr, 'strata: No such container: nope\n')
  const filter = await cli(root, ['images', '-f', 'bogus=1'])
  t.regex(filter.stderr, /^strata: .*filter 'bogus'/i)
  const flag = await cli(root, ['images', '--bogus'])
  t.regex(flag.stderr, /^strata: unknown flag: --bogus/)
})

test('a store that cannot be opened (an Io error before any command): one strata: line, exit 1', async (t) => {
  const dir = tmpDir(t)
  // A store root that is a file: Store.open fails with ENOTDIR/EEXIST, an expected Io error.
  const file = path.join(dir, 'file')
  fs.writeFileSync(file, 'x')
  const r = await cli(path.join(file, 'root'), ['images'])
  t.is(r.code, 1)
  t.regex(r.stderr, /^strata: cannot create store at /)
  t.notRegex(r.stderr, /\n\s+at /)
})
