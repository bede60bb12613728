/**
 * Differential suite: the union view against real kernel overlayfs mounts (see
 * helpers/union-fuzz.ts for what is generated, compared and normalised, and why).
 * 500 seeded sequences on tmpfs (fast dir operations) plus 50 on the ext4 root fs
 * (real copy_file_range between files, slower metadata). Needs root and overlayfs.
 * A longer run: `npm run fuzz:union -- --sequences 100000`.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import { fuzzRoot, runSequence } from './helpers/union-fuzz'

const TMPFS = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()

function batch(title: string, dir: string, from: number, count: number): void {
  test.serial(title, async (t) => {
    process.env.STRATA_FUZZ_DIR = dir
    const root = fuzzRoot()
    const bad: string[] = []
    for (let seed = from; seed < from + count; seed++) {
      const r = await runSequence(seed, root)
      if (!r.ok) bad.push(`seed ${seed} (${r.layers} layers): ${r.detail}`)
    }
    if (bad.length === 0) fs.rmSync(root, { recursive: true, force: true })
    t.deepEqual(bad, [], `${bad.length} divergent sequences`)
  })
}

for (let i = 0; i < 5; i++) batch(`kernel vs view, tmpfs, seeds ${1 + i * 100}..${(i + 1) * 100}`, TMPFS, 1 + i * 100, 100)
batch('kernel vs view, ext4 root fs, seeds 100001..100050', os.tmpdir(), 100_001, 50)
