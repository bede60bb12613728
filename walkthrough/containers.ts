/**
 * The container part of the walkthrough (seed 004's container layer, seed 003's `docker commit`):
 * run a container from demo/base, change / add / delete files, look at its LowerDir / UpperDir /
 * WorkDir / MergedDir on disk (the whiteout is a char device 0/0), commit it, and see the new
 * layer on top of the old, shared ones in `history`.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Store } from '../ts/store'

const NAME = 'demo-c1'
const COMMITTED = 'demo/base:changed'

export const walkContainers = {
  async cleanupBefore(store: Store): Promise<void> {
    for (const c of await store.containers.list({ all: true })) {
      if (c.names.some((n) => n === NAME || n.startsWith('demo-'))) await store.containers.remove(c.id, { force: true }).catch(() => undefined)
    }
    for (const ref of ['demo/base:ticking', COMMITTED]) await store.images.remove(ref, { force: true }).catch(() => undefined)
  },

  async run(
    store: Store,
    strata: (...args: string[]) => Promise<number>,
    sh: (cmd: string) => void,
    say: (text: string) => void,
  ): Promise<void> {
    say('7. A container: the image\'s read-only layers + an init layer + a writable layer (seed 004)')
    await strata('run', '--name', NAME, 'demo/base:latest', 'sh', '-c',
      'echo hi > /greeting; echo "changed in the container" >> /etc/motd; rm /etc/passwd; mkdir /data && echo 42 > /data/answer; echo done')
    await strata('ps', '-a')

    say('   diff: A added, C changed, D deleted — only the writable layer is compared against the layers below')
    await strata('diff', NAME)

    say('   inspect: GraphDriver names the four overlay dirs (seed 004: LowerDir, UpperDir, WorkDir, MergedDir)')
    await strata('inspect', '--format', '{{json .GraphDriver}}', NAME)
    const info = await (await store.containers.get(NAME)).inspect()
    const g = (info.GraphDriver as { Data: Record<string, string> }).Data
    const lowers = g.LowerDir.split(':')
    const layerDir = path.dirname(g.UpperDir)

    say('   LowerDir, first entry: the init layer (<id>-init) — Docker\'s placeholders for /etc/hosts, /.dockerenv, mount points')
    sh(`ls -A ${lowers[0]}; ls -l ${lowers[0]}/etc`)
    say('   LowerDir, then the image\'s layers, top first (here one: the imported rootfs)')
    sh(`ls ${lowers.slice(1).join(' ')}`)
    say('   The writable layer\'s dir: diff (UpperDir), work (WorkDir), merged (MergedDir), link, lower = l/<init>:<image layers>')
    sh(`ls ${layerDir}; cat ${layerDir}/lower; echo`)
    say('   l/: the 26-char short links the lower chains use (the init layer\'s, here)')
    sh(`ls -l ${path.join(path.dirname(layerDir), 'l')} | grep -F "$(cat ${path.join(path.dirname(lowers[0]), 'link')})"`)

    say('   UpperDir: only what the container changed — new files, copied-up files, and the deleted /etc/passwd as a whiteout')
    sh(`ls -lR ${g.UpperDir}`)
    say('   The whiteout is a character device 0, 0 (`c---------`), exactly as in seed 004\'s `ll upper/`')
    sh(`ls -l ${g.UpperDir}/etc`)
    sh(`stat -c '%n: %F, device %t,%T' ${g.UpperDir}/etc/passwd`)
    say('   WorkDir: overlayfs\'s scratch space (copy-up happens here first, then is renamed into UpperDir)')
    sh(`ls -la ${g.WorkDir}`)

    say('   MergedDir: empty until mounted; `strata mount` unites the layers with kernel overlayfs')
    sh(`ls -A ${g.MergedDir} | wc -l`)
    await strata('mount', NAME)
    sh(`grep -F "${g.MergedDir}" /proc/self/mountinfo | sed 's/lowerdir=[^,]*/lowerdir=.../'`)
    sh(`ls ${g.MergedDir}; cat ${g.MergedDir}/greeting ${g.MergedDir}/etc/motd; test -e ${g.MergedDir}/etc/passwd || echo "/etc/passwd: gone in the merged view"`)
    await strata('umount', NAME)

    say('   export: the merged filesystem as one tar (what `docker export` gives)')
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-export-')), 'demo-c1.tar')
    await strata('export', '-o', out, NAME)
    sh(`tar -tf ${out} | grep -E '(greeting|data/answer|etc/motd|etc/passwd)$' ; rm -rf ${path.dirname(out)}`)

    say('8. commit: the writable layer becomes a new read-only layer on top of the image (seed 003)')
    await strata('commit', '-m', 'add greeting and data', '-a', 'strata walkthrough', NAME, COMMITTED)
    say('   history: one new layer on top; the parent image\'s row shows the parent\'s ID')
    await strata('history', COMMITTED)
    say('   the old layers stay shared: the new image\'s LowerDir is the base image\'s UpperDir, not a copy')
    await strata('image', 'inspect', '--format', 'LowerDir={{.GraphDriver.Data.LowerDir}}', COMMITTED)
    await strata('image', 'inspect', '--format', 'UpperDir={{.GraphDriver.Data.UpperDir}}', 'demo/base:latest')
    await strata('image', 'inspect', '--format', '{{json .RootFS.Layers}}', COMMITTED)
    say('   a running container can be committed too: strata pauses it (runc pause), reads its layer, resumes it')
    await strata('run', '-d', '--name', 'demo-ticker', COMMITTED, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; echo $i > /ticks; sleep 0.2; done')
    await strata('ps')
    await strata('commit', 'demo-ticker', 'demo/base:ticking')
    await strata('stop', '-t', '1', 'demo-ticker')
    await strata('logs', '--tail', '2', 'demo-ticker')
    await strata('rm', 'demo-ticker')
    await strata('rmi', 'demo/base:ticking')

    say('   the new image runs, with the container\'s changes in its filesystem')
    await strata('run', '--rm', COMMITTED, 'sh', '-c', 'cat /greeting /data/answer; test -e /etc/passwd || echo "no /etc/passwd"')
    await strata('images')
  },
}
