/** Metadata write sets (ts/internal/metawrites.ts): what a crash between `put` and `commit` leaves is swept. */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { MetaWrites, sweepTemps, writeAll } from '../ts/internal/metawrites'
import { tmpDir } from './helpers/fs'
import { fsBatchesOf } from './helpers/fsbatch'

test('temp files of dead writers are swept, a live one and other files stay', async (t) => {
  const root = tmpDir(t)
  const image = path.join(root, 'image')
  const layerdb = path.join(image, 'layerdb')
  fs.mkdirSync(path.join(image, 'meta', 'abc'), { recursive: true })
  fs.mkdirSync(layerdb, { recursive: true })
  // pid_max is at most 2^22: this pid cannot be running.
  const dead = '.repositories.json.99999999.0badf00d.tmp'
  const live = `.config.v2.json.${process.pid}.00c0ffee.tmp`
  fs.writeFileSync(path.join(image, dead), '{')
  fs.writeFileSync(path.join(image, 'meta', 'abc', dead), '{')
  fs.writeFileSync(path.join(image, live), '{')
  fs.writeFileSync(path.join(layerdb, dead), '{')
  fs.writeFileSync(path.join(image, 'repositories.json'), '{}')
  fs.writeFileSync(path.join(image, '.hidden.99999999.tmp'), 'not ours')
  t.is(await sweepTemps([image], [layerdb]), 2)
  t.deepEqual(fs.readdirSync(image).sort(), ['.hidden.99999999.tmp', live, 'layerdb', 'meta', 'repositories.json'].sort())
  t.deepEqual(fs.readdirSync(path.join(image, 'meta', 'abc')), [])
  t.deepEqual(fs.readdirSync(layerdb), [dead])
})

test('a committed write set leaves no temp file to sweep', async (t) => {
  const dir = tmpDir(t)
  await writeAll(async (w) => {
    await w.put(path.join(dir, 'a'), 'A')
    await w.put(path.join(dir, 'b'), 'B')
  })
  t.deepEqual(fs.readdirSync(dir).sort(), ['a', 'b'])
  t.is(await sweepTemps([dir]), 0)
})

test('a barrier: publish renames every group, syncs the earlier groups\' dirs itself and leaves the last group\'s to the caller; bytes that are not UTF-8 are written as they are', async (t) => {
  const dir = tmpDir(t)
  for (const d of ['config', 'tags']) fs.mkdirSync(path.join(dir, d))
  const w = new MetaWrites()
  const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x7d])
  await w.put(path.join(dir, 'config', 'c'), bytes)
  w.barrier()
  w.barrier() // an empty group is no group
  await w.put(path.join(dir, 'tags', 'r'), 'R')
  await w.put(path.join(dir, 'tags', 'l'), 'L')
  t.deepEqual(await w.publish(), [path.join(dir, 'tags')])
  t.deepEqual(fs.readFileSync(path.join(dir, 'config', 'c')), bytes)
  t.deepEqual([fs.readdirSync(path.join(dir, 'config')), fs.readdirSync(path.join(dir, 'tags')).sort()], [['c'], ['l', 'r']])
  // A set that fails leaves no temp file and nothing in place: it discards what it staged.
  fs.rmSync(path.join(dir, 'tags'), { recursive: true })
  const e = await t.throwsAsync(writeAll(async (x) => {
    await x.put(path.join(dir, 'config', 'd'), 'D')
    x.barrier()
    await x.put(path.join(dir, 'tags', 'r'), 'R')
  }))
  t.is((e as { code?: string }).code, 'Io')
  t.deepEqual(fs.readdirSync(path.join(dir, 'config')).sort(), ['c'])
})

test.serial('a set\'s files are written at its commit in one native task: every write, one fsync barrier for all, then each group\'s renames and dir syncs; flush writes them earlier', async (t) => {
  const dir = tmpDir(t)
  for (const d of ['config', 'tags']) fs.mkdirSync(path.join(dir, d))
  const ops = (batches: { op: string }[][]): string[][] => batches.map((b) => b.map((o) => o.op))
  const committed = await fsBatchesOf(() => writeAll(async (w) => {
    await w.put(path.join(dir, 'config', 'c'), 'C')
    w.barrier()
    await w.put(path.join(dir, 'tags', 'r'), 'R')
    await w.put(path.join(dir, 'tags', 'l'), 'L')
    // Nothing is written before the commit.
    t.deepEqual([...fs.readdirSync(path.join(dir, 'config')), ...fs.readdirSync(path.join(dir, 'tags'))], [])
  }))
  t.deepEqual(ops(committed), [['writeNew', 'writeNew', 'writeNew', 'fsync', 'fsync', 'fsync', 'rename', 'fsync', 'rename', 'rename', 'fsync']])
  t.deepEqual([fs.readFileSync(path.join(dir, 'config', 'c'), 'utf8'), fs.readFileSync(path.join(dir, 'tags', 'r'), 'utf8'), fs.readFileSync(path.join(dir, 'tags', 'l'), 'utf8')], ['C', 'R', 'L'])
  const w = new MetaWrites()
  const flushed = await fsBatchesOf(async () => {
    await w.put(path.join(dir, 'config', 'd'), 'D')
    await w.flush()
  })
  // Written and synced under its temp name, not in place yet.
  t.is(fs.readdirSync(path.join(dir, 'config')).filter((n) => n.endsWith('.tmp')).length, 1)
  t.false(fs.existsSync(path.join(dir, 'config', 'd')))
  const renamed = await fsBatchesOf(() => w.commit())
  t.deepEqual([...ops(flushed), ...ops(renamed)], [['writeNew', 'fsync'], ['rename', 'fsync']])
  t.is(fs.readFileSync(path.join(dir, 'config', 'd'), 'utf8'), 'D')
  t.deepEqual(fs.readdirSync(path.join(dir, 'config')).sort(), ['c', 'd'])
})
