/**
 * `npm start`: a walkthrough of the seed documents on the default store (`$STRATA_ROOT` or
 * /var/lib/strata). Every step runs the real `strata` CLI in-process and shows its output, then
 * looks at the overlay2 directories on disk, as seed 004 does with `ls` and `cat`.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as os from 'node:os'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { main } from './cli/main'
import { Store } from './store'
import { walkContainers } from './walkthrough-containers'
import { walkBuild } from './walkthrough-build'
import { walkRegistry } from './walkthrough-registry'

const root = process.env.STRATA_ROOT ?? '/var/lib/strata'
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-walkthrough-'))

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`)
}

async function strata(...args: string[]): Promise<number> {
  process.stdout.write(`$ strata ${args.map((a) => (/[\s{}"]/.test(a) ? `'${a}'` : a)).join(' ')}\n`)
  const code = await main(['--root', root, ...args])
  if (code !== 0) process.stdout.write(`(exit ${code})\n`)
  return code
}

function sh(cmd: string): void {
  process.stdout.write(`$ ${cmd}\n`)
  try {
    process.stdout.write(execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }))
  } catch (e) {
    process.stdout.write(((e as { stdout?: string }).stdout ?? '') + ((e as { stderr?: string }).stderr ?? ''))
  }
}

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** A rootfs dir with the host's static busybox and its applets as symlinks. */
function makeRootfs(dir: string): void {
  for (const d of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(dir, d), { recursive: true })
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'))
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755)
  for (const a of ['sh', 'ls', 'cat', 'echo', 'rm', 'mkdir', 'touch', 'true', 'sleep', 'id', 'env', 'stat']) fs.symlinkSync('busybox', path.join(dir, 'bin', a))
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
  fs.writeFileSync(path.join(dir, 'etc/motd'), 'welcome to the base layer\n')
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777)
}

function tarDir(dir: string, out: string): Buffer {
  execFileSync('tar', ['--sort=name', '--numeric-owner', '--mtime=2024-01-01', '-C', dir, '-cf', out, '.'])
  return fs.readFileSync(out)
}

/** A three-layer docker-archive: the base rootfs, an app layer, a layer that deletes /etc/motd (a whiteout). */
function makeMultiLayerArchive(out: string): void {
  const l0 = path.join(work, 'l0')
  makeRootfs(l0)
  const l1 = path.join(work, 'l1')
  fs.mkdirSync(path.join(l1, 'app'), { recursive: true })
  fs.writeFileSync(path.join(l1, 'app/hello.sh'), '#!/bin/sh\necho "hello from layer 2"\n', { mode: 0o755 })
  const l2 = path.join(work, 'l2')
  fs.mkdirSync(path.join(l2, 'etc'), { recursive: true })
  fs.writeFileSync(path.join(l2, 'etc/.wh.motd'), '')
  fs.writeFileSync(path.join(l2, 'app-version'), '1.0\n')
  const layers = [l0, l1, l2].map((d, i) => tarDir(d, path.join(work, `layer${i}.tar`)))
  const created = '2024-06-01T12:00:00Z'
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created,
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/app/hello.sh'], Labels: { seed: '000' } },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => sha(l)) },
    history: [
      { created, created_by: '/bin/sh -c #(nop) ADD file:busybox in / ' },
      { created, created_by: '/bin/sh -c #(nop) COPY file:hello.sh in /app/ ' },
      { created, created_by: '/bin/sh -c rm /etc/motd && echo 1.0 > /app-version' },
      { created, created_by: '/bin/sh -c #(nop)  CMD ["/app/hello.sh"]', empty_layer: true },
    ],
  }))
  const arch = path.join(work, 'archive')
  fs.mkdirSync(path.join(arch, 'blobs/sha256'), { recursive: true })
  fs.writeFileSync(path.join(arch, 'blobs/sha256', sha(config).slice(7)), config)
  layers.forEach((l) => fs.writeFileSync(path.join(arch, 'blobs/sha256', sha(l).slice(7)), l))
  fs.writeFileSync(path.join(arch, 'manifest.json'), JSON.stringify([{ Config: `blobs/sha256/${sha(config).slice(7)}`, RepoTags: ['demo/app:1.0'], Layers: layers.map((l) => `blobs/sha256/${sha(l).slice(7)}`) }]))
  execFileSync('tar', ['-C', arch, '-cf', out, 'manifest.json', 'blobs'])
}

async function run(): Promise<void> {
  say(`strata walkthrough on ${root}: Docker's image principles (seeds 000-004), for real`)
  const store = await Store.open({ root })
  for (const ref of ['demo/base:latest', 'demo/app:1.0', 'demo/app:latest', 'demo/app:committed', ...(await store.images.list()).flatMap((i) => i.repoTags).filter((t) => /^127\.0\.0\.1:\d+\/demo\/app:/.test(t))]) {
    await store.images.remove(ref, { force: true }).catch(() => undefined)
  }
  await walkContainers.cleanupBefore(store)
  await walkBuild.cleanupBefore(store)

  say('1. A base image from the host\'s busybox, like `docker import` (seed 002: rootfs on a shared kernel)')
  const rootfs = path.join(work, 'rootfs')
  makeRootfs(rootfs)
  tarDir(rootfs, path.join(work, 'rootfs.tar'))
  await strata('import', '-c', 'CMD ["sh"]', path.join(work, 'rootfs.tar'), 'demo/base:latest')

  say('2. Load a multi-layer image (seeds 000/001: an image is a stack of read-only layers)')
  makeMultiLayerArchive(path.join(work, 'app.tar'))
  await strata('load', '-i', path.join(work, 'app.tar'))
  await strata('images')

  say('3. history: one row per build step, <missing> for steps with no local image, 0B for metadata-only steps (seed 004)')
  await strata('history', 'demo/app:1.0')

  say('4. inspect: RootFS.Layers are the DiffIDs; GraphDriver shows the overlay2 dirs (seeds 001, 004)')
  await strata('image', 'inspect', '--format', '{{json .RootFS}}', 'demo/app:1.0')
  await strata('image', 'inspect', '--format', '{{json .GraphDriver}}', 'demo/app:1.0')
  const info = await store.images.inspect('demo/app:1.0')
  const g = (info.GraphDriver as { Data: Record<string, string> }).Data
  const upper = path.dirname(g.UpperDir)
  say('   What each dir holds: the top layer dir has diff/, link, lower, committed (seed 004)')
  sh(`ls ${upper}`)
  sh(`cat ${upper}/link; echo`)
  sh(`cat ${upper}/lower; echo`)
  sh(`ls -l ${root}/overlay2/l | head -5`)
  say('   The top layer deleted /etc/motd: its diff holds a whiteout, a char device 0/0 (seed 004)')
  sh(`ls -l ${g.UpperDir}/etc`)
  sh(`ls ${g.LowerDir.split(':').join(' ')} | head -20`)

  say('5. tag: another name for the same image ID (seed 002)')
  await strata('tag', 'demo/app:1.0', 'demo/app:latest')
  await strata('images', 'demo/app')

  say('6. save: a docker-archive `docker load` reads; layers rebuilt bit for bit from diff/ + tar-split')
  await strata('save', '-o', path.join(work, 'saved.tar'), 'demo/app:1.0')
  sh(`tar -tvf ${path.join(work, 'saved.tar')}`)

  await walkContainers.run(store, strata, sh, say)

  say('9. system df -v: each layer is stored once, however many images use it (seeds 000/001/003: the shared base image)')
  say('   demo/base:changed sits on demo/base:latest\'s layer, and demo/app:1.0\'s first layer is the same rootfs tar (the same DiffID):\n' +
    '   SHARED SIZE counts that one stored copy for each image, UNIQUE SIZE only what each adds')
  await strata('system', 'df', '-v')
  say('   system df: the totals count the shared layer once (Images SIZE = the layers on disk)')
  await strata('system', 'df')

  await walkBuild.run(work, strata, sh, say)

  const { next, pulled } = await walkRegistry(strata, sh, say, work, 'demo/app:1.0', 11)

  say(`${next}. rmi: untag, then delete the image and the layers no other image uses (seed 003)`)
  await strata('tag', pulled, 'demo/app:latest')
  await strata('rmi', 'demo/app:latest')
  await strata('rmi', pulled)
  await strata('images')
  fs.rmSync(work, { recursive: true, force: true })
  say('done')
}

run().catch((e) => {
  process.stderr.write(`walkthrough failed: ${e instanceof Error ? e.stack : e}\n`)
  process.exitCode = 1
})
