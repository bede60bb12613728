/**
 * The daily commands against the real engine: the same image and the same containers (names,
 * labels, exit codes, bytes written) in a private Docker Engine and in strata, then the same
 * command lines through both CLIs — `ps` with each filter, `-n`, `-l`, `-q`, `-s` and
 * `--format`; `system df` and `system df -v` (sizes, shared and unique sizes, per container
 * sizes); `exec` (output, env, users, dirs, exit codes 126/137, `-i`, `-d`, errors); `pause`,
 * `unpause`, `top`, `rename`; `container prune`, `image prune [-a]`, `system prune` with their
 * prompts and "Total reclaimed space" lines. Container IDs differ between the engines, so
 * outputs are compared with each side's IDs replaced by the names they belong to.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Dockerd } from './helpers/dockerd'
import { buildImage, busyboxEntries, writeArchive } from './helpers/image'
import { tar } from './helpers/tar'
import { docker, strata, Ran } from './helpers/twin'

const engine = new Dockerd('strata-test-daily')
const IMAGE = 'strata-daily/bb:1'

interface Side {
  name: 'docker' | 'strata'
  run(args: string[], input?: Buffer | string): Promise<Ran>
  /** Full and short IDs → names, filled in as containers are made. */
  ids: Map<string, string>
}

let dir = ''
let sides: Side[] = []

/** stdout and stderr of `r` with this side's IDs replaced by names. */
function norm(s: Side, r: Ran): { code: number; out: string; err: string } {
  let out = r.stdout.toString()
  let err = r.stderr
  for (const [id, name] of [...s.ids].sort((a, b) => b[0].length - a[0].length)) {
    out = out.split(id).join(`<${name}>`)
    err = err.split(id).join(`<${name}>`)
  }
  return { code: r.code, out, err }
}

async function both(args: string[], input?: Buffer | string): Promise<[ReturnType<typeof norm>, ReturnType<typeof norm>]> {
  const [d, s] = await Promise.all(sides.map(async (side) => norm(side, await side.run(args, input))))
  return [d, s]
}

async function must(s: Side, args: string[]): Promise<string> {
  const r = await s.run(args)
  if (r.code !== 0) throw new Error(`${s.name} ${args.join(' ')}: ${r.stderr}`)
  return r.stdout.toString().trim()
}

async function named(s: Side, name: string, args: string[]): Promise<void> {
  await s.run(args)
  const id = await must(s, ['inspect', '--format', '{{.Id}}', name])
  s.ids.set(id, name)
  s.ids.set(id.slice(0, 12), name)
}

test.before(async () => {
  engine.start()
  dir = fs.mkdtempSync('/tmp/strata-daily-')
  writeArchive(path.join(dir, 'img.tar'), [buildImage({ layers: [tar(busyboxEntries())], tags: [IMAGE] })], 'docker25')
  sides = [
    { name: 'docker', run: (a, i) => docker(engine, a, i), ids: new Map() },
    { name: 'strata', run: (a, i) => strata(path.join(dir, 'root'), a, i), ids: new Map() },
  ]
  for (const s of sides) {
    await must(s, ['load', '-i', path.join(dir, 'img.tar')])
    // Created one at a time, oldest first: before/since and -n depend on the order.
    await named(s, 'created1', ['create', '--name', 'created1', '-l', 'tier=db', IMAGE, 'true'])
    await named(s, 'lab1', ['run', '--name', 'lab1', '-l', 'a=1', '-l', 'b', IMAGE, 'sh', '-c', 'echo x > /f; exit 3'])
    await named(s, 'lab2', ['run', '--name', 'lab2', '-l', 'a=2', IMAGE, 'sh', '-c', 'busybox dd if=/dev/zero of=/big bs=1k count=1500 2>/dev/null'])
    await named(s, 'run1', ['run', '-d', '--name', 'run1', IMAGE, 'sleep', '300'])
    await must(s, ['commit', 'lab2', 'strata-daily/big:1'])
  }
})

test.after.always(async () => {
  for (const s of sides) await s.run(['rm', '-f', 'run1', 'run2', 'lab1', 'lab2', 'created1']).catch(() => undefined)
  engine.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

test.serial('ps: each filter, -n, -l, -q, -s and --format select and print what docker does', async (t) => {
  const names = ['--format', '{{.Names}}']
  const idOf = (s: Side, name: string) => [...s.ids].find(([id, n]) => n === name && id.length === 64)![0]
  const cases: string[][] = [
    ['-a'], [], ['-a', '--filter', 'status=exited'], ['--filter', 'status=running'], ['--filter', 'status=created'],
    ['-a', '-f', 'exited=3'], ['-a', '-f', 'exited=0'], ['-a', '-f', 'label=a'], ['-a', '-f', 'label=a=1', '-f', 'label=b'],
    ['-a', '-f', 'label=tier=db'], ['-a', '-f', 'name=lab'], ['-a', '-f', 'name=^lab1$'], ['-a', '-f', `ancestor=${IMAGE}`],
    ['-a', '-f', 'ancestor=strata-daily/big:1'], ['-a', '-f', 'before=lab2'], ['-a', '-f', 'since=lab1'],
    ['-a', '-f', 'status=exited', '-f', 'label=a=2'], ['-n', '2'], ['-n', '3'], ['-l'], ['-a', '-f', 'health=none'], ['-a', '-f', 'is-task=true'],
  ]
  for (const c of cases) {
    const [d, s] = await both(['ps', ...c, ...names])
    t.deepEqual(s, d, c.join(' '))
  }
  // id= takes a prefix of each side's own ID.
  const byId = await Promise.all(sides.map(async (s) => norm(s, await s.run(['ps', '-a', '-f', `id=${idOf(s, 'lab2').slice(0, 10)}`, ...names]))))
  t.deepEqual(byId[1], byId[0])
  for (const bad of [['-f', 'bogus=1'], ['-f', 'status=bogus'], ['-a', '-f', 'exited=x'], ['-f', 'before=nosuch'], ['-f', 'health=sick']]) {
    const [d, s] = await both(['ps', ...bad])
    t.deepEqual(s, d, bad.join(' '))
  }
  const [qd, qs] = await both(['ps', '-a', '-q'])
  t.deepEqual(qs, qd)
  // Sizes of the writable layers and the "virtual" sizes, and a template using .Size and .Label.
  const [sd, ss] = await both(['ps', '-a', '-s', '--format', '{{.Names}}\t{{.Size}}'])
  t.deepEqual(ss, sd)
  const [fd, fs2] = await both(['ps', '-a', '--format', '{{.Names}} {{.Size}} [{{.Labels}}] [{{.Label "a"}}] {{.State}} {{.Command}}'])
  t.deepEqual(fs2, fd)
  const [td, ts] = await both(['ps', '-a', '-s'])
  // Runs of spaces as one: the CREATED column is as wide as its longest text, and the two sides'
  // containers are seconds apart ("9 seconds ago" against "10 seconds ago").
  const header = (o: string) => o.split('\n')[0].replace(/\s+/g, ' ')
  t.is(header(ts.out), header(td.out), 'the header with SIZE')
})

test.serial('system df and df -v: layer totals, shared and unique sizes per image, container sizes', async (t) => {
  const [d, s] = await both(['system', 'df', '--format', '{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}} {{.Reclaimable}}'])
  t.deepEqual(s, d)
  const [vd, vs] = await both(['system', 'df', '-v'])
  t.is(vs.code, 0, vs.err)
  // Everything but the CREATED column (seconds apart) and the IDs of the committed image (its creation time differs).
  const cut = (o: string) => o.split('\n').map((l) => l.replace(/(\d+ seconds?|Less than a second|About a minute|\d+ minutes)( ago)?/g, 'T').replace(/\b[0-9a-f]{12}\b/g, 'ID')).join('\n')
  const section = (o: string, title: string) => cut(o).split(title)[1]?.split('\n\n')[1]
  // Columns compared with runs of spaces as one: the CREATED texts differ in width (9 vs 10 seconds ago) between the sides.
  t.deepEqual(section(vs.out, 'Images space usage:')?.split('\n').map((l) => l.replace(/\s+/g, ' ')), section(vd.out, 'Images space usage:')?.split('\n').map((l) => l.replace(/\s+/g, ' ')))
  t.deepEqual(section(vs.out, 'Containers space usage:')?.split('\n').map((l) => l.replace(/\s+/g, ' ')), section(vd.out, 'Containers space usage:')?.split('\n').map((l) => l.replace(/\s+/g, ' ')))
  t.is(cut(vs.out).split('Local Volumes space usage:')[1], cut(vd.out).split('Local Volumes space usage:')[1])
  // The numbers themselves: the base layer is stored once and shared by both images.
  const [jd, js] = await both(['system', 'df', '-v', '--format', '{{range .Images}}{{.Repository}}:{{.Tag}} {{.Size}} {{.SharedSize}} {{.UniqueSize}} {{.Containers}}\n{{end}}'])
  t.deepEqual(js, jd)
  t.regex(js.out, /^strata-daily\/big:1 \S+ (\S+) \S+ 0\nstrata-daily\/bb:1 \S+ \1 0B 4$/m)
})

test.serial('exec: output, env, users, working dirs, stdin, exit codes and errors as docker', async (t) => {
  const cases: [string[], string?][] = [
    [['exec', 'run1', 'sh', '-c', 'echo out; echo err >&2; exit 5']],
    [['exec', '-e', 'A=1', '-e', 'HOSTNAME=x', 'run1', 'env']],
    [['exec', '-u', 'nobody', 'run1', 'id']], [['exec', '-u', '1234:55', 'run1', 'id']], [['exec', 'run1', 'id']],
    [['exec', '-w', '/tmp', 'run1', 'pwd']],
    [['exec', 'run1', 'nosuch']], [['exec', 'run1', '/etc']], [['exec', '-w', '/nonexistent', 'run1', 'pwd']],
    [['exec', '-u', 'ghost', 'run1', 'id']], [['exec', 'run1', 'sh', '-c', 'kill -9 $$']],
    [['exec', '-i', 'run1', 'cat'], 'through stdin\n'], [['exec', '-d', 'run1', 'sleep', '1']], [['exec', '-d', 'run1', 'nosuch']],
    [['exec', 'created1', 'true']], [['exec', 'nosuch', 'true']],
  ]
  for (const [args, input] of cases) {
    const [d, s] = await both(args, input)
    t.deepEqual(s, d, args.join(' '))
  }
  const [hd, hs] = await both(['exec', 'run1', 'hostname'])
  t.is(hs.out, `<run1>\n`)
  t.is(hd.out, `<run1>\n`)
})

test.serial('pause, unpause, top, rename: output, state and errors as docker', async (t) => {
  const seq: string[][] = [
    ['pause', 'run1'], ['pause', 'run1'], ['exec', 'run1', 'true'], ['ps', '--format', '{{.Names}} {{.State}}'],
    ['unpause', 'run1'], ['unpause', 'run1'], ['pause', 'created1'], ['unpause', 'created1'], ['pause', 'nosuch'],
    ['top', 'created1'], ['rename', 'run1', 'run1'], ['rename', 'run1', 'lab1'], ['rename', 'nosuch', 'x2'],
    ['rename', 'run1', 'bad name!'], ['rename', 'run1', 'run2'], ['ps', '--format', '{{.Names}}'], ['rename', 'run2', 'run1'],
  ]
  for (const args of seq) {
    const [d, s] = await both(args)
    t.deepEqual(s, d, args.join(' '))
  }
  for (const ps of [[], ['-o', 'pid,comm'], ['-x'], ['aux']]) {
    const [d, s] = await both(['top', 'run1', ...ps])
    t.is(s.code, 0, s.err)
    const rows = (o: string) => o.trimEnd().split('\n').map((l) => l.split(/ {3,}/))
    const [rd, rs] = [rows(d.out), rows(s.out)]
    t.deepEqual(rs[0], rd[0], `titles of top ${ps.join(' ')}`)
    t.is(rs.length, rd.length)
    t.is(rs[1][rs[1].length - 1], rd[1][rd[1].length - 1], 'the command line')
    // Columns padded as docker's tabwriter pads them (minimum width 20).
    t.is(s.out.split('\n')[0], d.out.split('\n')[0])
  }
})

test.serial('prune: prompts, what goes, and the reclaimed space, as docker reports them', async (t) => {
  // No answer (stdin closed) and "n" cancel quietly; the prompt is on stdout.
  for (const input of ['', 'n\n']) {
    const [d, s] = await both(['container', 'prune'], input)
    t.deepEqual(s, d, JSON.stringify(input))
  }
  const [sp] = await both(['system', 'prune', '--filter', 'label=a=1'], '')
  const [, ss] = await both(['system', 'prune', '--filter', 'label=a=1'], '')
  t.is(ss.out, sp.out)
  const [bd, bs] = await both(['container', 'prune', '-f', '--filter', 'bogus=1'])
  t.deepEqual(bs, bd)
  const [ld, ls] = await both(['container', 'prune', '--filter', 'label=a=1'], 'y\n')
  t.deepEqual(ls, ld)
  t.regex(ls.out, /Deleted Containers:\n<lab1>\n\nTotal reclaimed space: 2B\n$/)
  // A dangling image: the tag moves to a second commit.
  for (const s of sides) await must(s, ['commit', 'lab2', 'strata-daily/big:1'])
  const [id, is] = await both(['image', 'prune', '-f'])
  t.is(is.code, 0, is.err)
  t.is(is.out.split('\n').filter((l) => l.startsWith('deleted: ')).length, id.out.split('\n').filter((l) => l.startsWith('deleted: ')).length)
  t.is(is.out.split('\n').pop() === '' && is.out.trimEnd().split('\n').pop(), id.out.trimEnd().split('\n').pop())
  const [cd, cs] = await both(['container', 'prune', '-f', '--filter', 'until=1s'])
  t.deepEqual(cs, cd)
  const [ad, as] = await both(['image', 'prune', '-a', '-f'])
  t.is(as.code, 0, as.err)
  const untagged = (o: string) => o.split('\n').filter((l) => l.startsWith('untagged: ')).sort()
  t.deepEqual(untagged(as.out), untagged(ad.out))
  t.is(as.out.trimEnd().split('\n').pop(), ad.out.trimEnd().split('\n').pop())
  const [yd, ys] = await both(['system', 'prune', '-a', '-f'])
  t.deepEqual(ys, yd)
  const [qd, qs] = await both(['ps', '-a', '--format', '{{.Names}}'])
  t.deepEqual(qs, qd)
})
