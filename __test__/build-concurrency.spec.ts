/**
 * Several builds at once on one store, as an embedding service would run them: eight builds
 * in one `Promise.all` (twice libuv's default pool of four threads), sharing the base image's
 * layers and, pairwise, whole cache entries; each result checked, and the whole bounded in time.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { writeContext, buildSuite, BUILD_BASE } from './helpers/build'
import { checkConsistent } from './helpers/consistency'
import { native } from '../ts/native'

const suite = buildSuite()
const BB = BUILD_BASE

test('eight concurrent builds on one store: every result right, shared steps built once or hit, the store consistent', async (t) => {
  t.timeout(240_000)
  const { dir, store, root } = await suite.freshStore(t)
  // Four contexts, each built twice at the same time: the second of a pair races the first
  // for the same cache keys; all eight share the base image and the first COPY.
  const contexts = [0, 1, 2, 3].map((i) => {
    const ctx = path.join(dir, `ctx-${i}`)
    writeContext(ctx, {
      Dockerfile: `FROM ${BB}\nCOPY shared.txt /shared.txt\nRUN echo "built ${i}" > /built && cat /shared.txt >> /built\nCOPY own/ /own/\nWORKDIR /w${i}\nENV N=${i}\n`,
      'shared.txt': 'the same in every context\n',
      ...Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`own/f${k}.txt`, `context ${i} file ${k}\n`.repeat(50)])),
    })
    return ctx
  })
  const jobs = [0, 1, 2, 3, 0, 1, 2, 3].map((i, n) => store.build({ context: contexts[i], tags: [`conc/${i}:${n}`] }).then((r) => ({ i, n, r })))
  const results = await Promise.all(jobs)
  for (const { i, r } of results) {
    const view = await store.images.view(r.imageId)
    t.is((await view.readFile('/built')).toString(), `built ${i}\nthe same in every context\n`)
    t.is((await view.readFile('/own/f7.txt')).toString(), `context ${i} file 7\n`.repeat(50))
    t.true((await view.stat(`/w${i}`)).isDirectory())
    const cfg = JSON.parse((await store.context.images.get(r.imageId))!.raw.toString())
    t.true(cfg.config.Env.includes(`N=${i}`))
  }
  // The two builds of a context made the same image; the four contexts, four images.
  for (const i of [0, 1, 2, 3]) {
    const ids = new Set(results.filter((x) => x.i === i).map((x) => x.r.imageId))
    t.is(ids.size, 1)
  }
  t.is(new Set(results.map((x) => x.r.imageId)).size, 4)
  // Every tag points where its build said.
  for (const { n, i, r } of results) t.is((await store.images.inspect(`conc/${i}:${n}`)).Id, r.imageId)
  // A rebuild of any of them now hits every step.
  const again = await store.build({ context: contexts[2] })
  t.true(again.steps.every((s) => s.cached))
  t.deepEqual(native.overlayMounts(root), [])
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build')), [])
  await store.close()
  await checkConsistent(t, root)
})
