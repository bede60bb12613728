/** Metadata write sets (ts/metawrites.ts): what a crash between `put` and `commit` leaves is swept. */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { sweepTemps, writeAll } from '../ts/metawrites'
import { tmpDir } from './helpers/fs'

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
