/**
 * Every instruction and flag, judged by BuildKit where the engine's BuildKit (0.8, Docker
 * 20.10) has them: the same config and history (times aside) and the same files; heredocs and
 * `RUN --network`, which that BuildKit lacks, on their own; ONBUILD through a child build;
 * `--target`, `--build-arg`, `--label`, `--no-cache-filter`; the CLI's output.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { gzipSync } from 'node:zlib'
import { cli } from './helpers/fs'
import { writeContext, strataTree, tree, buildSuite, BUILD_BASE, timeless } from './helpers/build'

const suite = buildSuite('strata-test-build-ins')
const engine = suite.engine
const BB = BUILD_BASE
const freshStore = suite.freshStore


const EVERYTHING = `FROM ${BB} AS base
MAINTAINER someone <a@b.c>
ARG PORT=8000
ARG WHO
ENV APP=/srv/app HOME_DIR="\${APP}/home" EMPTY=
LABEL "com.example.name"="$APP" plain=yes
WORKDIR \${APP}
WORKDIR sub/dir
SHELL ["/bin/sh", "-ec"]
RUN echo "$PORT:$WHO:$APP" > ports && pwd > where
RUN ["/bin/sh", "-c", "echo exec > exec-form"]
ADD files.tar.gz /unpacked/
ADD plain.txt /plain/
COPY --chmod=700 dir /dir700/
COPY dir/f? /globbed/
COPY nothing*.txt /nowhere/
USER $WHO
EXPOSE \${PORT}-8002/tcp 53/udp
VOLUME ["/data", "/logs"]
STOPSIGNAL 9
HEALTHCHECK --interval=30s --timeout=3s --start-period=1s --retries=3 CMD ["/bin/true"]
HEALTHCHECK NONE
ONBUILD RUN echo child > /tmp/child
ENTRYPOINT exec /bin/sh
CMD echo shell form
FROM base AS final
USER root
RUN test -f /srv/app/sub/dir/ports
`

function everythingContext(dir: string): void {
  const payload = path.join(dir, 'payload')
  writeContext(payload, { 'p/x.txt': 'x\n', 'p/y/z.txt': 'z\n' })
  fs.mkdirSync(dir, { recursive: true })
  execFileSync('tar', ['-czf', path.join(dir, 'files.tar.gz'), '-C', payload, '--owner=1000', '--group=1000', 'p'])
  fs.rmSync(payload, { recursive: true })
  writeContext(dir, { Dockerfile: EVERYTHING, 'plain.txt': 'plain\n', 'dir/f1': '1', 'dir/f2': '2', 'dir/other': 'o' })
}

test.serial('every instruction: the config, history and files BuildKit makes', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  everythingContext(ctx)
  const args = { WHO: 'nobody' }
  const ours = await store.build({ context: ctx, tags: ['all:1'], buildArgs: args, labels: { extra: 'L' } })
  const theirs = engine.build(ctx, ['-t', 'all-bk:1', '--build-arg', 'WHO=nobody', '--label', 'extra=L'])
  const ourCfg = JSON.parse((await store.context.images.get(ours.imageId))!.raw.toString())
  t.deepEqual(timeless(ourCfg), timeless(engine.rawConfig(theirs)))
  engine.exportTo('all-bk:1', path.join(dir, 'bk'))
  const mine = await strataTree(store, 'all:1', path.join(dir, 'ours'))
  t.deepEqual(mine, tree(path.join(dir, 'bk')))
  t.like(mine['unpacked/p/y/z.txt'], { uid: 1000, gid: 1000 })
  t.like(mine['dir700/f1'], { mode: 0o700 })
  t.false('nowhere' in mine)

  // --target builds the named stage only.
  const base = await store.build({ context: ctx, target: 'base', buildArgs: args })
  t.is(JSON.parse((await store.context.images.get(base.imageId))!.raw.toString()).config.User, 'nobody')
  t.false(base.steps.some((s) => s.name.includes('test -f')))
})

test.serial('ONBUILD triggers run in the child build, as BuildKit runs them', async (t) => {
  const { dir, store } = await freshStore(t)
  const parent = path.join(dir, 'parent')
  const child = path.join(dir, 'child')
  writeContext(parent, { Dockerfile: `FROM ${BB}\nONBUILD COPY hello /hello\nONBUILD RUN cat /hello > /seen\n` })
  writeContext(child, { Dockerfile: 'FROM onb-parent:1\nRUN cat /seen\n', hello: 'from the child context\n' })
  await store.build({ context: parent, tags: ['onb-parent:1'] })
  engine.build(parent, ['-t', 'onb-parent:1'])
  const ours = await store.build({ context: child, tags: ['onb-child:1'] })
  const theirs = engine.build(child, ['-t', 'onb-child-bk:1'])
  const cfg = JSON.parse((await store.context.images.get(ours.imageId))!.raw.toString())
  t.deepEqual(timeless(cfg), timeless(engine.rawConfig(theirs)))
  t.is(cfg.config.OnBuild, null)
  const run = await (await store.containers.create('onb-child:1', { cmd: ['cat', '/seen'], autoRemove: true })).run()
  t.is(run.stdout.toString(), 'from the child context\n')
})

test.serial('heredocs (RUN script, RUN with a shebang, COPY with and without expansion) and RUN --network', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, {
    Dockerfile: `FROM ${BB}\nENV WHO=world\nRUN <<EOF\necho "hello $WHO" > /greeting\necho second >> /greeting\nEOF\n` +
      `RUN <<EOF\n#!/bin/sh\necho "shebang $0" > /shebang\nEOF\n` +
      `COPY <<EOT /expanded\nhi $WHO\nEOT\nCOPY <<"EOT" /literal\nhi $WHO\nEOT\n` +
      'RUN --network=none cat /sys/class/net/*/operstate > /nets 2>/dev/null; ls /sys/class/net > /ifaces\n',
  })
  await store.build({ context: ctx, tags: ['here:1'] })
  const out = await (await store.containers.create('here:1', { cmd: ['sh', '-c', 'cat /greeting /shebang /expanded /literal /ifaces'], autoRemove: true })).run()
  t.is(out.stdout.toString(), 'hello world\nsecond\nshebang /dev/pipes/EOF\nhi world\nhi $WHO\nlo\n')
})

test.serial('CLI: BuildKit\'s plain progress, -q, --iidfile, and the error block of a failed step', async (t) => {
  const { dir, root, store } = await freshStore(t)
  await store.close()
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo building\nCOPY a /a\n`, a: 'a' })
  const first = await cli(root, ['build', '-t', 'cli:1', ctx])
  t.is(first.code, 0, first.stderr)
  t.is(first.stdout, '')
  t.regex(first.stderr, /^#1 \[internal\] load build definition from Dockerfile\n#1 sha256:[0-9a-f]{64}\n#1 transferring dockerfile: \d+B done\n#1 DONE \d+\.\ds\n/)
  t.regex(first.stderr, /#\d+ \[2\/3\] RUN echo building\n#\d+ sha256:[0-9a-f]{64}\n#\d+ \d+\.\d{3} building\n#\d+ DONE \d+\.\ds\n/)
  t.regex(first.stderr, /#\d+ exporting to image\n(.|\n)*#\d+ writing image sha256:[0-9a-f]{64} done\n#\d+ naming to docker.io\/library\/cli:1 done\n/)
  const iid = path.join(dir, 'iid')
  const again = await cli(root, ['build', '-q', '--iidfile', iid, '-t', 'cli:2', ctx])
  t.is(again.code, 0)
  t.regex(again.stdout, /^sha256:[0-9a-f]{64}\n$/)
  t.is(again.stderr, '')
  t.is(fs.readFileSync(iid, 'utf8'), again.stdout.trim())
  const plain = await cli(root, ['build', '--progress=plain', ctx])
  t.regex(plain.stderr, /\[2\/3\] RUN echo building\n#\d+ sha256:[0-9a-f]{64}\n#\d+ CACHED\n/)

  fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${BB}\nRUN echo fine\nRUN echo oops; exit 7\nRUN echo never\n`)
  const failed = await cli(root, ['build', '-t', 'cli:1', ctx])
  t.is(failed.code, 1)
  t.regex(failed.stderr, /#\d+ ERROR: process "\/bin\/sh -c echo oops; exit 7" did not complete successfully: exit code: 7\n/)
  t.regex(failed.stderr, /------\n > \[3\/4\] RUN echo oops; exit 7:\n#\d+ \d+\.\d{3} oops\n------\nDockerfile:3\n--------------------\n {3}1 \| FROM strata-build\/busybox:1\n {3}2 \| RUN echo fine\n {3}3 \| >>> RUN echo oops; exit 7\n {3}4 \| RUN echo never\n--------------------\nERROR: failed to solve: process "\/bin\/sh -c echo oops; exit 7" did not complete successfully: exit code: 7\n$/)
  // The tag did not move.
  const still = await cli(root, ['images', '-q', '--no-trunc', 'cli:1'])
  t.is(still.stdout.trim(), fs.readFileSync(iid, 'utf8'))
})

test.serial('CLI: a gzip context tar on stdin that names a path twice builds as the engine builds it (the later entry wins)', async (t) => {
  const { dir, root, store } = await freshStore(t)
  await store.close()
  const one = path.join(dir, 'one')
  const two = path.join(dir, 'two')
  writeContext(one, { Dockerfile: `FROM ${BB}\nCOPY a /a\n`, a: 'first\n' })
  writeContext(two, { a: 'second\n' })
  const tarFile = path.join(dir, 'ctx.tar')
  execFileSync('tar', ['-cf', tarFile, '-C', one, 'Dockerfile', 'a'])
  execFileSync('tar', ['-rf', tarFile, '-C', two, 'a'])
  const gz = gzipSync(fs.readFileSync(tarFile))
  const theirs = engine.cli(['build', '-q', '-'], { input: gz }).trim()
  engine.exportTo(theirs, path.join(dir, 'bk'))
  const ours = await cli(root, ['build', '-q', '-t', 'stdin:1', '-'], gz)
  t.is(ours.code, 0, ours.stderr)
  const out = await cli(root, ['run', '--rm', 'stdin:1', 'cat', '/a'])
  t.is(out.stdout, fs.readFileSync(path.join(dir, 'bk', 'a'), 'utf8'))
  t.is(out.stdout, 'second\n')
})

test.serial('ADD unpacks what the engine\'s builder unpacks: plain, gzip, bzip2 and xz tars; zstd and lzma tars are copied as files', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  const payload = path.join(dir, 'payload')
  writeContext(payload, { 'p/x.txt': 'x\n', 'p/y/z.txt': 'z\n' })
  fs.mkdirSync(ctx, { recursive: true })
  const formats: [string, string[]][] = [['t.tar', []], ['t.tar.gz', ['-z']], ['t.tar.bz2', ['-j']], ['t.tar.xz', ['-J']], ['t.tar.zst', ['--zstd']], ['t.tar.lzma', ['--lzma']]]
  for (const [name, flags] of formats) execFileSync('tar', ['-c', ...flags, '-f', path.join(ctx, name), '-C', payload, '--owner=1000', '--group=1000', 'p'])
  // GNU tar's --lzma writes xz here (xz-utils' `lzma`): the lzma-alone format made explicitly.
  execFileSync('sh', ['-c', `tar -c --owner=1000 --group=1000 -C ${payload} p | xz --format=lzma > ${ctx}/t.tar.lzma`])
  // Two concatenated xz streams (moby runs `xz -d`, which reads them both).
  execFileSync('sh', ['-c', `tar -c --owner=1000 --group=1000 -C ${payload} p/x.txt | xz > ${ctx}/two.xz && printf '' | xz >> ${ctx}/two.xz`])
  writeContext(ctx, { Dockerfile: `FROM ${BB}\n${[...formats.map(([n]) => n), 'two.xz'].map((n) => `ADD ${n} /fmt/${n.replace(/\./g, '_')}/`).join('\n')}\n` })
  await store.build({ context: ctx, tags: ['addfmt:1'] })
  engine.build(ctx, ['-t', 'addfmt-bk:1'])
  engine.exportTo('addfmt-bk:1', path.join(dir, 'bk'))
  const ours = await strataTree(store, 'addfmt:1', path.join(dir, 'ours'))
  t.deepEqual(ours, tree(path.join(dir, 'bk')))
  for (const n of ['t_tar', 't_tar_gz', 't_tar_bz2', 't_tar_xz', 'two_xz']) t.like(ours[`fmt/${n}/p/x.txt`], { type: 'file', uid: 1000 }, n)
  t.like(ours['fmt/t_tar_zst/t.tar.zst'], { type: 'file' })
  t.like(ours['fmt/t_tar_lzma/t.tar.lzma'], { type: 'file' })
})

/** A layer dir as comparable rows: (path bytes in hex, type, mode, owner, sha256, link bytes, xattrs), via python (bytes names). */
function layerRows(dir: string): unknown {
  const py = `
import os, sys, json, hashlib, stat
root = sys.argv[1].encode()
rows = []
for d, dirs, files in os.walk(root):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        x = sorted((k, os.getxattr(p, k, follow_symlinks=False).hex()) for k in os.listxattr(p, follow_symlinks=False) if not k.startswith('trusted.overlay.'))
        body = hashlib.sha256(open(p, 'rb').read()).hexdigest() if stat.S_ISREG(st.st_mode) else None
        link = os.readlink(p).hex() if stat.S_ISLNK(st.st_mode) else None
        rows.append([rel.hex(), stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, body, link, x])
print(json.dumps(sorted(rows)))
`
  return JSON.parse(execFileSync('python3', ['-c', py, dir], { encoding: 'utf8' }))
}

test.serial('names that are not UTF-8 keep their bytes, and xattrs come along (user, trusted, security), as BuildKit copies them', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  fs.mkdirSync(ctx, { recursive: true })
  const b = (s: string): Buffer => Buffer.concat([Buffer.from(`${ctx}/`), Buffer.from(s, 'latin1')])
  fs.writeFileSync(b('caf\xe9.txt'), 'latin-1 name\n')
  fs.mkdirSync(b('d\xff'))
  fs.writeFileSync(b('d\xff/x'), 'x\n')
  fs.symlinkSync(Buffer.from('caf\xe9.txt', 'latin1'), b('link\xfe'))
  fs.writeFileSync(b('plain.txt'), 'plain\n')
  execFileSync('setfattr', ['-n', 'user.one', '-v', '1', path.join(ctx, 'plain.txt')])
  execFileSync('setfattr', ['-n', 'trusted.two', '-v', '2', path.join(ctx, 'plain.txt')])
  execFileSync('setfattr', ['-n', 'security.three', '-v', '3', path.join(ctx, 'plain.txt')])
  // (a path that is not UTF-8 cannot be an argument string: python gets its bytes in hex)
  execFileSync('python3', ['-c', 'import os, sys; os.setxattr(bytes.fromhex(sys.argv[1]), "user.dir", b"d")', b('d\xff').toString('hex')])
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${BB}\nCOPY . /ctx/\n`)
  const ours = await store.build({ context: ctx, tags: ['bytes:1'] })
  const theirs = engine.build(ctx, ['-t', 'bytes-bk:1'])
  const ourDir = (await store.images.inspect(ours.imageId)) as { GraphDriver: { Data: { UpperDir: string } } }
  const theirDir = engine.cli(['image', 'inspect', '--format', '{{.GraphDriver.Data.UpperDir}}', theirs]).trim()
  const mine = layerRows(ourDir.GraphDriver.Data.UpperDir)
  t.deepEqual(mine, layerRows(theirDir))
  const names = (mine as [string][]).map((r) => Buffer.from(r[0], 'hex').toString('latin1'))
  t.true(names.includes('ctx/caf\xe9.txt') && names.includes('ctx/d\xff/x') && names.includes('ctx/link\xfe'))
  // Unchanged: every step hits; an xattr changed (nothing else): the COPY runs again.
  t.true((await store.build({ context: ctx })).steps.every((s) => s.cached))
  execFileSync('setfattr', ['-n', 'user.one', '-v', 'changed', path.join(ctx, 'plain.txt')])
  t.deepEqual((await store.build({ context: ctx })).steps.map((s) => s.cached), [false])
})
