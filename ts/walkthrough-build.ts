/**
 * The build part of the walkthrough (seed 004: "each Dockerfile instruction makes a new
 * layer ... if a layer's content has not changed, the cached layer is reused"): build a small
 * multi-step Dockerfile on demo/base, look at `history` (one row per step, 0B for the
 * metadata-only ones), run the image, change one source file and build again — the steps
 * before the change are CACHED, only the ones after it run.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store } from './store'

const IMAGE = 'demo/built:1'

const DOCKERFILE = `FROM demo/base:latest
ENV GREETING=hello
WORKDIR /app
COPY hello.sh /app/
RUN chmod 755 /app/hello.sh && echo "built on $(uname -m)" > /app/built.txt
COPY version.txt /app/
LABEL seed=004
CMD ["/app/hello.sh"]
`

export const walkBuild = {
  async cleanupBefore(store: Store): Promise<void> {
    await store.images.remove(IMAGE, { force: true }).catch(() => undefined)
  },

  async run(
    work: string,
    strata: (...args: string[]) => Promise<number>,
    sh: (cmd: string) => void,
    say: (text: string) => void,
  ): Promise<void> {
    const ctx = path.join(work, 'build-context')
    fs.mkdirSync(ctx, { recursive: true })
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), DOCKERFILE)
    fs.writeFileSync(path.join(ctx, 'hello.sh'), '#!/bin/sh\necho "$GREETING from $(cat /app/version.txt), $(cat /app/built.txt)"\n')
    fs.writeFileSync(path.join(ctx, 'version.txt'), 'version 1\n')

    say('10. build: each filesystem step of a Dockerfile is one layer; the cache reuses unchanged ones (seed 004)')
    sh(`cat ${ctx}/Dockerfile`)
    await strata('build', '--progress=plain', '-t', IMAGE, ctx)
    say('   history: one row per instruction; ENV, LABEL and CMD change only the config (0B)')
    await strata('history', IMAGE)
    await strata('run', '--rm', IMAGE)
    say('   change one source file and build again: the steps before it are CACHED, the COPY of it and what follows run')
    fs.writeFileSync(path.join(ctx, 'version.txt'), 'version 2\n')
    await strata('build', '--progress=plain', '-t', IMAGE, ctx)
    await strata('run', '--rm', IMAGE)
    say('   the build cache records keep their layers until `builder prune`')
    await strata('rmi', IMAGE)
    await strata('builder', 'prune', '-f')
  },
}
