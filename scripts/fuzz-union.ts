/**
 * Long differential run of the union view against kernel overlayfs:
 *   npm run fuzz:union -- --sequences 100000 [--seed 1] [--ops 24] [--keep-going]
 * Prints progress, every divergence (seed + first difference; its work dir is kept), and a
 * final line `sequences N, divergences D, ops O, seconds S`. Needs root (kernel mounts).
 */
import * as fs from 'node:fs'
import { fuzzRoot, runSequence } from '../__test__/helpers/union-fuzz'

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : def
}

async function main(): Promise<void> {
  const n = arg('sequences', 1000)
  const seed0 = arg('seed', 1)
  const opCount = arg('ops', 24)
  const keepGoing = process.argv.includes('--keep-going')
  const root = fuzzRoot()
  const t0 = Date.now()
  let bad = 0
  let ops = 0
  for (let i = 0; i < n; i++) {
    const seed = seed0 + i
    const r = await runSequence(seed, root, opCount)
    ops += r.ops.length
    if (!r.ok) {
      bad++
      console.log(`DIVERGENCE seed ${seed} (${r.layers} layers): ${r.detail}`)
      if (!keepGoing) break
    }
    if ((i + 1) % 1000 === 0) console.log(`${i + 1} sequences, ${bad} divergences, ${((Date.now() - t0) / 1000).toFixed(0)}s`)
  }
  if (bad === 0) fs.rmSync(root, { recursive: true, force: true })
  console.log(`sequences ${n}, divergences ${bad}, ops ${ops}, seconds ${((Date.now() - t0) / 1000).toFixed(1)}`)
  process.exitCode = bad ? 1 : 0
}

void main()
