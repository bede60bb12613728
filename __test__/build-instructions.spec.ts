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
