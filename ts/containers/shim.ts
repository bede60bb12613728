/**
 * The detached supervisor of a `start`ed container: `node shim.js <root> <container id>`.
 * Runs the process to completion (logs only), records the exit, honours AutoRemove, exits.
 * Started detached (own session, stdio ignored) so it outlives the CLI that started it.
 */
import { Layout } from '../layout'
import { StoreContext } from '../context'
import { ContainerPaths } from './layout'
import { supervise, updateRecord } from './supervisor'
import { readHostConfig } from './record'

async function main(): Promise<void> {
  const [root, id] = process.argv.slice(2)
  if (!root || !id) throw new Error('usage: shim ROOT ID')
  const ctx = new StoreContext(new Layout(root))
  const p = new ContainerPaths(ctx.layout, id)
  try {
    await supervise(ctx, p)
  } catch (e) {
    // Failed before the process ran: tell the waiting `start` through the record.
    await updateRecord(ctx, p, (r) => { r.State.Error = e instanceof Error ? e.message : String(e) }).catch(() => undefined)
    throw e
  }
  if ((await readHostConfig(p)).AutoRemove) {
    const { Containers } = await import('./containers')
    await new Containers(ctx).remove(id, { force: true }).catch(() => undefined)
  }
  await ctx.drain()
  // Done changing the store: no longer a writer (./writers.ts).
  ctx.release()
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`strata shim: ${e instanceof Error ? e.message : e}\n`)
  process.exit(1)
})
