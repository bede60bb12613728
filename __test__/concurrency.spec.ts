/**
 * A service's day, compressed: 64 mixed operations at once (loads, tags, saves, views, container
 * lifecycles under runc, commits, history/inspect, imports) on one Store and on two Stores of one
 * root, in a child process with Node's default 4-thread pool, killed at a deadline; every result
 * checked. And two processes on one root doing conflicting work: one loads and removes an image
 * over and over, the other saves, views and reads its history; the reader sees it whole or not
 * at all.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Store } from '../ts'
import { tmpDir } from './helpers/fs'
import { tar } from './helpers/tar'
import { writeArchive, buildImage, busyboxEntries, busyboxLayer } from './helpers/image'
import { appImage } from './helpers/container'
import { checkConsistent } from './helpers/consistency'
import { runScenario, startScenario } from './helpers/child'

/** A scratch dir, a store root in it, and `img` written there as an archive. */
function scratch(t: Parameters<typeof tmpDir>[0], prefix: string, img: ReturnType<typeof appImage>) {
  const dir = tmpDir(t, prefix)
  const archive = path.join(dir, 'image.tar')
  writeArchive(archive, [img], 'docker25')
  return { dir, root: path.join(dir, 'root'), archive }
}

function loadImage(k: number) {
  return buildImage({ layers: [tar(busyboxEntries()), tar([{ name: 'which', data: `load ${k}\n` }])], tags: [`l${k}:1`] })
}

for (const stores of [1, 2]) {
  test(`64 mixed operations at once on ${stores} Store(s) of one root, default pool: every result right`, async (t) => {
    t.timeout(300_000)
    const app = appImage(['app:1'])
    const { dir, root, archive: base } = scratch(t, 'strata-mixed-', app)
    const loads = Array.from({ length: 8 }, (_, k) => loadImage(k))
    const loadArchives = loads.map((img, k) => {
      const p = path.join(dir, `load-${k}.tar`)
      writeArchive(p, [img], k % 2 ? 'oci-tar' : 'docker25')
      return p
    })
    const rootfs = path.join(dir, 'rootfs.tar')
    fs.writeFileSync(rootfs, busyboxLayer())
    const { report } = await runScenario('mixed', { root, dir, stores, base, loads: loadArchives, rootfs }, 240_000)
    const { results, tags } = report as { results: unknown[][]; tags: Record<string, string> }
    t.is(results.length, 64)
    t.is(report.base, app.id)
    for (const r of results) {
      const [kind, i] = r as [string, number]
      switch (kind) {
        case 'load':
          t.deepEqual(r.slice(2), [loads[i >> 3].id, [`l${i >> 3}:1`]], `load ${i}`)
          t.is(tags[`l${i >> 3}:1`], loads[i >> 3].id)
          break
        case 'tag':
          t.is(tags[`t:${i}`], app.id, `tag ${i}`)
          break
        case 'save': {
          const manifest = JSON.parse(execFileSync('tar', ['-xOf', r[2] as string, 'manifest.json'], { encoding: 'utf8' }))
          t.is(manifest[0].Config, `blobs/sha256/${app.id.slice(7)}`, `save ${i}`)
          t.deepEqual(manifest[0].Layers, app.diffIds.map((d) => `blobs/sha256/${d.slice(7)}`))
          t.deepEqual(manifest[0].RepoTags, ['app:1'])
          break
        }
        case 'view':
          t.is(r[2], 'hello from the app layer\n', `view ${i}`)
          break
        case 'run':
          t.deepEqual(r.slice(2), [0, `out-${i}\n`], `run ${i}`)
          break
        case 'commit':
          t.is(r[2], 0, `commit ${i}: the run`)
          t.is(tags[`c:${i}`], r[3] as string, `commit ${i}: tagged`)
          t.is(r[4], `${i}\n`, `commit ${i}: the committed file`)
          break
        case 'history':
          t.deepEqual(r.slice(2), [2, app.id], `history ${i}`)
          break
        case 'import':
          t.is(tags[`imp:${i}`], r[2] as string, `import ${i}`)
          break
        default:
          t.fail(`unknown result ${kind}`)
      }
    }
    t.is(report.containers, 0)
    // One saved archive loads back whole elsewhere (DiffIDs checked by the load).
    const other = await Store.open({ root: path.join(dir, 'other') })
    t.is((await other.load(results.find((r) => r[0] === 'save')![2] as string)).images[0].id, app.id)
    await checkConsistent(t, root)
  })
}

test('two processes on one root: rmi over and over vs save/view/history — readers see the image whole or not at all', async (t) => {
  t.timeout(300_000)
  const img = appImage(['churn:1'])
  const { dir, root, archive } = scratch(t, 'strata-2proc-', img)
  await Store.open({ root })
  const marks = { ready: path.join(dir, 'ready'), go: path.join(dir, 'go'), done: path.join(dir, 'done') }
  const writer = startScenario('churn', { root, archive, ref: 'churn:1', pauseMs: 150, ...marks }, 240_000)
  for (let i = 0; i < 400 && !fs.existsSync(marks.ready); i++) await new Promise((r) => setTimeout(r, 25))
  const reader = await runScenario('readers', {
    root, dir, ref: 'churn:1', id: img.id, present: 30, seconds: 90, pauseMs: 60,
    file: '/etc/motd', content: 'hello from the app layer\n', historyRows: 2, ...marks,
  }, 240_000)
  const w = await writer.done
  t.is(w.code, 0, w.stderr)
  t.deepEqual(reader.report.problems, [])
  const seen = reader.report.seen
  t.log(`reader: ${JSON.stringify(seen)}; writer: ${w.report.rounds} rounds of load + rmi, ${w.report.removedLayers} layers removed`)
  t.true(w.report.rounds > 1)
  t.true(seen.saved + seen.viewed + seen.history >= 30, 'the reader saw the image whole 30 times')
  t.true(seen.saved > 0 && seen.viewed > 0 && seen.history > 0, 'each kind of read saw it')
  await checkConsistent(t, root)
})
