/**
 * Registering a layer (ts/internal/layers.ts `register`): one native task in two barrier rounds —
 * everything new written, moved into place and synced, then the layer db entry renamed and synced —
 * and a failure anywhere before the entry exists puts everything back where the caller left it.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { Store } from '../ts'
import { asChainId, asDiffId } from '../ts/internal/chain'
import { tmpDir } from './helpers/fs'
import { fsBatchesOf } from './helpers/fsbatch'

const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`

/** A staged layer as a build step leaves it: `<dir>/diff/` and a tar-split beside it. */
function stage(store: Store, name: string): { dir: string; tarSplit: string; diffId: ReturnType<typeof asDiffId>; size: number } {
  const dir = path.join(store.context.layout.tmp, `staged-${name}`)
  fs.mkdirSync(path.join(dir, 'diff'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'diff', 'f.txt'), name)
  const tarSplit = path.join(store.context.layout.tmp, `split-${name}.json.gz`)
  fs.writeFileSync(tarSplit, 'split')
  return { dir, tarSplit, diffId: asDiffId(sha(name)), size: name.length }
}

/** The runs of consecutive fsyncs in a batch: each is one barrier. */
const barriers = (ops: string[]): number => ops.filter((op, i) => op === 'fsync' && ops[i + 1] !== 'fsync').length

test.serial('a layer is registered in one native task with two barriers: the entry is renamed only after everything it names is synced', async (t) => {
  const root = tmpDir(t)
  const store = await Store.open({ root })
  const layers = store.context.layers
  const staged = stage(store, 'one')
  const chainId = asChainId(staged.diffId)
  let made: Awaited<ReturnType<typeof layers.register>> = false
  const batches = await fsBatchesOf(() => store.context.exclusive(async () => { made = await layers.register(staged, chainId, undefined) }))
  t.is(batches.length, 1)
  const ops = batches[0].map((o) => o.op)
  t.is(barriers(ops), 2)
  // The entry's rename is the last rename, after the first barrier; only its dir's fsync follows it.
  t.deepEqual(ops.slice(-2), ['rename', 'fsync'])
  t.true(ops.indexOf('fsync') < ops.length - 2)
  t.truthy(made)
  const info = await layers.must(chainId)
  t.is(fs.readFileSync(path.join(layers.diffDir(info), 'f.txt'), 'utf8'), 'one')
  t.true(fs.existsSync(path.join(store.context.layout.layerDir(info.cacheId), 'committed')))
  t.is(fs.readlinkSync(store.context.layout.shortLink(await layers.shortLink(info.cacheId))), `../${info.cacheId}/diff`)
  t.is(fs.readFileSync(layers.tarSplitPath(chainId), 'utf8'), 'split')
  t.false(fs.existsSync(staged.dir) || fs.existsSync(staged.tarSplit))
  await store.close()
})

test.serial('a registration that fails at the layer db entry\'s rename puts the staged dir and tar-split back and leaves no overlay2 dir, link or write-set', async (t) => {
  const root = tmpDir(t)
  const store = await Store.open({ root })
  const { layout, layers } = store.context
  const staged = stage(store, 'two')
  const chainId = asChainId(staged.diffId)
  // Something (not a layer: no `diff` file) is where the entry goes: its rename fails (ENOTEMPTY).
  fs.mkdirSync(layout.layerMeta(chainId), { recursive: true })
  fs.writeFileSync(path.join(layout.layerMeta(chainId), 'junk'), 'x')
  const overlayBefore = fs.readdirSync(layout.overlay).sort()
  const linksBefore = fs.readdirSync(layout.links).sort()
  await t.throwsAsync(store.context.exclusive(() => layers.register(staged, chainId, undefined)))
  t.is(fs.readFileSync(path.join(staged.dir, 'diff', 'f.txt'), 'utf8'), 'two')
  t.is(fs.readFileSync(staged.tarSplit, 'utf8'), 'split')
  t.deepEqual(fs.readdirSync(layout.overlay).sort(), overlayBefore)
  t.deepEqual(fs.readdirSync(layout.links).sort(), linksBefore)
  t.deepEqual(fs.readdirSync(layout.layerdbTmp), [])
  t.false(await layers.has(chainId))
  await store.close()
})
