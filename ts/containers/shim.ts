/**
 * The detached supervisor of a `start`ed container: `node shim.js <root> <container id>`.
 * Runs the process to completion (logs only), records the exit, honours AutoRemove, exits.
 * Started detached (own session, stdio ignored) so it outlives the CLI that started it.
 *
 * Also what takes a process with a terminal over when its caller detaches (./adopt.ts):
 * `shim.js adopt <root> <id> <pid>` follows a container's process, `shim.js drain <root> <id>
 * <pid>` an exec's, both from the pty master and event pipe inherited as fds 3 and 4.
 */
import { Layout } from '../layout'
import { StoreContext } from '../context'
import { ContainerPaths } from './layout'
import { supervise, updateRecord } from './supervisor'
import { readHostConfig } from './record'

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === 'adopt' || argv[0] === 'drain') {
    const [mode, root, id, pid] = argv
    if (!root || !id || !(Number(pid) > 0)) throw new Error(`usage: shim ${mode} ROOT ID PID`)
    const { adoptContainer, drainExec } = require('./adopt') as typeof import('./adopt')
    if (mode === 'drain') return drainExec(Number(pid))
    const ctx = new StoreContext(new Layout(root))
    await adoptContainer(ctx, new ContainerPaths(ctx.layout, id), Number(pid))
    await ctx.drain()
    ctx.release()
    return
  }
  const [root, id] = argv
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
    const { Containers } = require('./containers') as typeof import('./containers')
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
