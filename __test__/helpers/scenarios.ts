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
  /**
   * A writer that is killed mid-change: inside one exclusive section it tags `id` as `tag` and
   * makes a staging dir, then writes `ready` and waits there (the test kills it with -9): the write
   * generation stays odd, its `writers/` entry and the staging dir stay behind.
   */
  async diesMidChange(a) {
    const s = await Store.open({ root: a.root })
    await s.context.exclusive(async () => {
      await s.images.tag(a.id, a.tag)
      await s.context.staging('dies-mid-change')
      fs.writeFileSync(a.ready, '')
      await sleep(600_000)
    })
  },

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

  /** Opens a view of `ref` and keeps it open (marker `ready`) until killed. */
  async holdView(a) {
    const s = await Store.open({ root: a.root })
    const view = await s.images.view(a.ref)
    await view.readFile('/etc/motd')
    fs.writeFileSync(a.ready, '')
    await sleep(600_000)
    view.close()
    return undefined
  },

  /** Opens a view of `ref`, drops it unclosed and collects garbage (run with --expose-gc). */
  async forgetView(a) {
    const s = await Store.open({ root: a.root })
    const leases = () => fs.readdirSync(path.join(a.root, 'leases'))
    await (async () => {
      const view = await s.images.view(a.ref)
      await view.readFile('/etc/motd')
    })()
    const leasedWhileOpen = leases().length === 1
    for (let i = 0; i < 50 && leases().length > 0; i++) {
      ;(global as { gc?: () => void }).gc!()
      await sleep(20)
    }
    return { leasedWhileOpen, leasesAfterGc: leases() }
  },

  /**
   * 64 operations at once over `stores` Stores of one root: loads, tags, saves, views, container
   * lifecycles (runc), commits, history/inspect, imports (8 of each, interleaved).
   */
  async mixed(a) {
    const stores = await Promise.all(Array.from({ length: a.stores as number }, () => Store.open({ root: a.root })))
    const { images: [base] } = await stores[0].load(a.base)
    const ops = Array.from({ length: 64 }, async (_, i): Promise<unknown[]> => {
      const s = stores[i % stores.length]
      switch (i % 8) {
        case 0: {
          const r = await s.load(a.loads[i >> 3])
          return ['load', i, r.images[0].id, r.images[0].tags]
        }
        case 1:
          await s.images.tag(base.id, `t:${i}`)
          return ['tag', i]
        case 2: {
          const out = path.join(a.dir, `save-${i}.tar`)
          await s.save(['app:1'], out)
          return ['save', i, out]
        }
        case 3: {
          const v = await s.images.view('app:1')
          try {
            return ['view', i, await v.readFile('/etc/motd', 'utf8')]
          } finally {
            v.close()
          }
        }
        case 4: {
          const c = await s.containers.create('app:1', { cmd: ['sh', '-c', `echo out-${i}`] })
          const r = await c.run()
          await c.remove()
          return ['run', i, r.exitCode, r.stdout.toString()]
        }
        case 5: {
          const c = await s.containers.create('app:1', { cmd: ['sh', '-c', `echo ${i} > /c`] })
          const r = await c.run()
          const id = await c.commit({ ref: `c:${i}` })
          const v = await s.images.view(id)
          const content = await v.readFile('/c', 'utf8').finally(() => v.close())
          await c.remove()
          return ['commit', i, r.exitCode, id, content]
        }
        case 6: {
          const h = await s.images.history('app:1')
          const ins = await s.images.inspect('app:1')
          return ['history', i, h.length, ins.Id]
        }
        default:
          return ['import', i, await s.import(a.rootfs, { ref: `imp:${i}` })]
      }
    })
    const results = await Promise.all(ops)
    const tags: Record<string, string> = {}
    for (const row of await stores[0].images.list()) for (const t of row.repoTags) tags[t] = row.id
    const containers = (await stores[0].containers.list({ all: true })).length
    for (const s of stores) await s.close()
    return { base: base.id, results, tags, containers }
  },

  /**
   * Loads `archive`, keeps it `pauseMs`, removes `ref` again, until the reader is done (marker
   * `done`): the writer of the two-process test.
   */
  async churn(a) {
    const s = await Store.open({ root: a.root })
    fs.writeFileSync(a.ready, '')
    await waitForFile(a.go)
    let rounds = 0
    let removedLayers = 0
    const end = Date.now() + 120_000
    while (!fs.existsSync(a.done) && Date.now() < end) {
      await s.load(a.archive)
      await sleep(a.pauseMs)
      const events = await s.images.remove(a.ref)
      removedLayers += events.filter((e) => 'deleted' in e).length - 1
      rounds++
    }
    await s.close()
    return { rounds, removedLayers }
  },

  /**
   * Reads `ref` while another process loads and removes it: saves (each archive then loaded into
   * a scratch store, which checks every DiffID), views held across a pause, history — until it
   * has seen the image `present` times (or `seconds` passed). A reader sees the image whole or
   * not at all (ImageNotFound); anything else is an inconsistency.
   */
  async readers(a) {
    const s = await Store.open({ root: a.root })
    const scratch = await Store.open({ root: path.join(a.dir, 'scratch') })
    fs.writeFileSync(a.go, '')
    const seen = { saved: 0, viewed: 0, history: 0, absent: 0 }
    const problems: string[] = []
    const absent = (e: unknown): boolean => e instanceof StrataError && e.code === 'ImageNotFound'
    const end = Date.now() + a.seconds * 1000
    for (let i = 0; seen.saved + seen.viewed + seen.history < a.present && Date.now() < end; i++) {
      if (i > 0) await sleep(10)
      const out = path.join(a.dir, `r${i}.tar`)
      try {
        await s.save([a.ref], out)
        const { images } = await scratch.load(out)
        if (images[0].id !== a.id) problems.push(`save ${i}: image ${images[0].id}`)
        else seen.saved++
        await scratch.images.remove(images[0].id)
      } catch (e) {
        if (absent(e)) seen.absent++
        else problems.push(`save ${i}: ${(e as StrataError).code} ${(e as Error).message}`)
      }
      try {
        const v = await s.images.view(a.ref)
        await sleep(a.pauseMs)
        const text = await v.readFile(a.file, 'utf8').finally(() => v.close())
        if (text !== a.content) problems.push(`view ${i}: ${JSON.stringify(text)}`)
        else seen.viewed++
      } catch (e) {
        if (absent(e)) seen.absent++
        else problems.push(`view ${i}: ${(e as StrataError).code} ${(e as Error).message}`)
      }
      try {
        const h = await s.images.history(a.ref)
        if (h.length !== a.historyRows) problems.push(`history ${i}: ${h.length} rows`)
        else seen.history++
      } catch (e) {
        if (absent(e)) seen.absent++
        else problems.push(`history ${i}: ${(e as StrataError).code} ${(e as Error).message}`)
      }
    }
    fs.writeFileSync(a.done, '')
    await s.close()
    return { seen, problems }
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
