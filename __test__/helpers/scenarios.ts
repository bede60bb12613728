/**
 * Scenarios run in child processes by ./child.ts (`node --require tsx/cjs scenarios.ts NAME JSON`):
 * each prints one JSON line, its report, as the last line of stdout.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store, StrataError } from '../../ts'

type Args = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

async function waitForFile(p: string, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!fs.existsSync(p)) {
    if (Date.now() > end) throw new Error(`${p} did not appear`)
    await sleep(5)
  }
}

const scenarios: Record<string, (a: Args) => Promise<unknown>> = {
  /** `n` writers at once (tags, imports, container create+remove) over `stores` Stores of one root. */
  async writers(a) {
    const stores = await Promise.all(Array.from({ length: a.stores as number }, () => Store.open({ root: a.root })))
    const { images } = await stores[0].load(a.archive)
    const id = images[0].id
    const ops: Promise<unknown>[] = []
    for (let i = 0; i < a.n; i++) {
      const s = stores[i % stores.length]
      if (i % 4 === 1) ops.push(s.import(a.rootfs, { ref: `imported:${i}` }))
      else if (i % 4 === 3) ops.push(s.containers.create(id, { name: `w${i}`, cmd: ['true'] }).then((c) => c.remove()))
      else ops.push(s.images.tag(id, `tagged:${i}`))
    }
    await Promise.all(ops)
    const list = await stores[0].images.list()
    for (const s of stores) await s.close()
    return { tags: list.flatMap((r) => r.repoTags).sort(), containers: (await stores[0].containers.list({ all: true })).length }
  },

  /**
   * Holds the exclusive lock for `ms` (marker file `held` once it holds it, `released` after),
   * once the other side has opened its store (marker `ready`).
   */
  async hold(a) {
    const s = await Store.open({ root: a.root })
    await waitForFile(a.ready)
    await s.context.exclusive(async () => {
      fs.writeFileSync(a.held, '')
      await sleep(a.ms)
    })
    fs.writeFileSync(a.released, '')
    return { held: a.ms }
  },

  /**
   * While another process holds the lock (`held` exists), starts `n` tags; checks that a file read
   * through the libuv pool still completes while they wait.
   */
  async waitForOther(a) {
    const s = await Store.open({ root: a.root })
    const [img] = await s.images.list()
    fs.writeFileSync(a.ready, '')
    await waitForFile(a.held)
    let tagged = 0
    const tags = Promise.all(Array.from({ length: a.n }, (_, i) => s.images.tag(img.id, `waited:${i}`).then(() => { tagged++ })))
    await sleep(50)
    await fs.promises.readFile(__filename)
    const readWhileWaiting = tagged === 0 && !fs.existsSync(a.released)
    await tags
    return { readWhileWaiting, tagged, tags: (await s.images.list()).flatMap((r) => r.repoTags).filter((t) => t.startsWith('waited')).length }
  },

  /** Loads while another process holds the lock; aborts the wait; the process must then exit by itself. */
  async abortWait(a) {
    const s = await Store.open({ root: a.root })
    fs.writeFileSync(a.ready, '')
    await waitForFile(a.held)
    const ac = new AbortController()
    const p = s.load(a.archive, { signal: ac.signal })
    await sleep(300)
    const t0 = performance.now()
    ac.abort()
    const code = await p.then(() => 'resolved', (e: StrataError) => e.code)
    const msAfterAbort = performance.now() - t0
    const holderStillHolds = !fs.existsSync(a.released)
    // No process.exit: whatever still keeps the loop alive would keep this process alive.
    console.log(JSON.stringify({ code, msAfterAbort, holderStillHolds }))
    return undefined
  },

  /** 16 callers take the exclusive lock in a loop until `marker` appears (or `deadlineMs`). */
  async busy(a) {
    const s = await Store.open({ root: a.root })
    const [img] = await s.images.list()
    const end = Date.now() + a.deadlineMs
    let sections = 0
    fs.writeFileSync(a.started, '')
    await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      while (!fs.existsSync(a.marker) && Date.now() < end) {
        await s.images.tag(img.id, `busy:${i}`)
        sections++
      }
    }))
    return { sawMarker: fs.existsSync(a.marker), sections }
  },

  /** One tag while another process is busy; writes `marker` when done. */
  async one(a) {
    const s = await Store.open({ root: a.root })
    const [img] = await s.images.list()
    await waitForFile(a.started)
    await sleep(200)
    await s.images.tag(img.id, 'one:1')
    fs.writeFileSync(a.marker, '')
    return { done: true }
  },
}

async function main(): Promise<void> {
  const [name, json] = process.argv.slice(2)
  const fn = scenarios[name]
  if (!fn) throw new Error(`no scenario ${name}`)
  const report = await fn(JSON.parse(json) as Args)
  if (report !== undefined) console.log(JSON.stringify(report))
}

main().catch((e: Error) => {
  console.error(e.stack ?? e)
  process.exitCode = 1
})

export const paths = { scenarios: path.resolve(__filename) }
