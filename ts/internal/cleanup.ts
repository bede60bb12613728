/**
 * The cleanup pass run when a store opens (under the exclusive lock): removes what a crashed
 * process left behind, never anything another live process owns.
 *
 * - `tmp/<name>` whose `tmp/<name>.lock` nobody holds (staging of a dead process, trash);
 * - `layerdb/tmp/*` (write-sets are only built under the exclusive lock we now hold);
 * - temp files of metadata writes and builder hints (`.<name>.<pid>.<hex>.tmp`) whose process died;
 * - build stubs in the making (`builder/.stub-<pid>-<hex>`) whose process died, and those of the
 *   older form without a pid (`.stub-<hex>`) untouched for an hour;
 * - layer db entries whose overlay2 dir is missing or lacks `committed`;
 * - leases whose owner died, and layers no image, container or live lease uses (a deletion that
 *   crashed half-way, a lease released by a crash; ./gc.ts);
 * - overlay2 dirs no layer db entry or container mount references, and dangling `l/` links;
 * - content-store blobs no needed layer names, partial downloads untouched for a day (ts/internal/content.ts).
 */
import { fsp as fs } from './lazy'
import fsSync = require('node:fs')
import path = require('node:path')
import { StoreContext } from './context'
import { Layout } from './layout'
import { native } from './native'
import { exists, listDir, readIfExists } from './fsx'
import { COMMITTED_FILE, LINK_DIR, MOUNT_FILE, STUB_TEMP_NAME } from './layout'
import { cleanupContent } from './content'
import { runtimeFor } from '../containers/supervisor'
import { sweepTemps, alive } from './metawrites'
import { collectLayers } from './gc'

export interface CleanupReport {
  removedStaging: number
  removedLayers: number
  removedDirs: number
  /** Content-store blobs no layer names, and partial downloads older than a day. */
  removedBlobs: number
  removedPartials: number
}

/**
 * What a dead process may have left running in its staging dir: a build's step containers
 * (runtime IDs `<staging name>-<n>`) are killed and deleted, and overlay mounts below the dir
 * are detached — before anything is deleted, so no deletion goes through a mount.
 */
async function releaseStaging(ctx: StoreContext, name: string): Promise<void> {
  if (name.startsWith('build-')) {
    const runtime = runtimeFor(ctx)
    for (const id of await listDir(runtime.stateRoot)) {
      if (!id.startsWith(`${name}-`)) continue
      await runtime.kill(id, 'SIGKILL', true).catch(() => undefined)
      await runtime.delete(id, true).catch(() => undefined)
    }
  }
  for (const m of native.overlayMounts(path.join(ctx.layout.tmp, name))) {
    await native.unmount(m.mountPoint, true).catch(() => undefined)
  }
}

/**
 * Whether `tmp/` or `layerdb/tmp/` hold anything no live process owns — what the cleanup pass
 * would remove there. Both are empty unless work is under way, so this is two readdirs (the
 * locks are only tried, through the native addon, when there is something to look at).
 */
export function stagingLeftovers(layout: Layout): boolean {
  for (const name of fsSync.readdirSync(layout.tmp)) {
    const lockPath = path.join(layout.tmp, name.endsWith('.lock') ? name : `${name}.lock`)
    if (!fsSync.existsSync(lockPath)) return true
    const lock = native.tryLock(lockPath, true)
    if (lock) {
      lock.release()
      return true
    }
  }
  return fsSync.readdirSync(layout.layerdbTmp).length > 0
}

/** An hour: nothing takes that long to make the stub (a few directories and empty files). */
const OLD_STUB_AGE_MS = 3600_000

/**
 * Removes the build stubs a crash left in the making (ts/build/step.ts `ensureStub`):
 * `builder/.stub-<pid>-<hex>` of a dead process, and `.stub-<hex>` (made before the name
 * carried the pid) untouched for an hour.
 */
async function sweepStubTemps(layout: Layout): Promise<void> {
  for (const name of await listDir(layout.builder)) {
    if (!name.startsWith('.stub-')) continue
    const p = path.join(layout.builder, name)
    const m = STUB_TEMP_NAME.exec(name)
    if (m) {
      if (alive(Number(m[1]))) continue
    } else {
      const st = await fs.lstat(p).catch(() => undefined)
      if (!st || Date.now() - st.mtimeMs < OLD_STUB_AGE_MS) continue
    }
    await fs.rm(p, { recursive: true, force: true })
  }
}

export async function cleanup(ctx: StoreContext): Promise<CleanupReport> {
  const { layout } = ctx
  const report: CleanupReport = { removedStaging: 0, removedLayers: 0, removedDirs: 0, removedBlobs: 0, removedPartials: 0 }

  for (const name of await listDir(layout.tmp)) {
    if (name.endsWith('.lock')) continue
    const lockPath = path.join(layout.tmp, `${name}.lock`)
    const lock = (await exists(lockPath)) ? native.tryLock(lockPath, true) : null
    if ((await exists(lockPath)) && !lock) continue // owner alive
    await releaseStaging(ctx, name)
    await fs.rm(path.join(layout.tmp, name), { recursive: true, force: true })
    await fs.rm(lockPath, { force: true })
    lock?.release()
    report.removedStaging++
  }
  for (const name of await listDir(layout.tmp)) {
    if (!name.endsWith('.lock') || (await exists(path.join(layout.tmp, name.slice(0, -5))))) continue
    const lock = native.tryLock(path.join(layout.tmp, name), true)
    if (lock) {
      await fs.rm(path.join(layout.tmp, name), { force: true })
      lock.release()
    }
  }
  for (const name of await listDir(layout.layerdbTmp)) {
    await fs.rm(path.join(layout.layerdbTmp, name), { recursive: true, force: true })
  }
  // Temp files of metadata write sets (ts/internal/metawrites.ts) a dead process left beside their
  // targets: repositories.json, image configs and metadata, container records and bundles; and
  // the builder's hints (stat indexes, COPY --from keys, incremental COPY records, parsed Dockerfiles)
  // and its cache records (one is written while its step's layer is registered, renamed after it).
  await sweepTemps([layout.imageRoot, layout.containers, layout.statIndex, layout.fromKeys, layout.lastCopies, layout.parsedDockerfiles, layout.buildCache], [layout.layerdb])
  await sweepStubTemps(layout)

  // Layer db entries must point at complete overlay2 dirs.
  for (const chainId of await ctx.layers.list()) {
    const l = await ctx.layers.get(chainId)
    if (!l || !(await exists(path.join(layout.layerDir(l.cacheId), COMMITTED_FILE)))) {
      await fs.rm(layout.layerMeta(chainId), { recursive: true, force: true })
      report.removedLayers++
    }
  }

  // Layers nobody uses (images, container parents, build cache records, leases), and their parents.
  report.removedLayers += await collectLayers(ctx)
  const mountRefs = new Set<string>()
  for (const cid of await listDir(layout.layerdbMounts)) {
    const dir = layout.mountMeta(cid)
    for (const f of [MOUNT_FILE.mountId, MOUNT_FILE.initId]) {
      const v = await readIfExists(path.join(dir, f))
      if (v) mountRefs.add(v.trim())
    }
  }

  // overlay2 dirs referenced by nothing.
  const referenced = new Set<string>(mountRefs)
  for (const chainId of await ctx.layers.list()) {
    const l = await ctx.layers.get(chainId)
    if (l) referenced.add(l.cacheId)
  }
  for (const name of await listDir(layout.overlay)) {
    if (name === LINK_DIR || referenced.has(name)) continue
    await fs.rm(path.join(layout.overlay, name), { recursive: true, force: true })
    report.removedDirs++
  }
  for (const short of await listDir(layout.links)) {
    const p = layout.shortLink(short)
    if (!(await exists(path.resolve(layout.links, await fs.readlink(p).catch(() => '/nonexistent'))))) {
      await fs.rm(p, { force: true })
    }
  }
  Object.assign(report, await cleanupContent(ctx))
  return report
}
