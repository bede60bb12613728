/** Build test helpers: contexts on disk, image trees as comparable snapshots. */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import test, { type ExecutionContext } from 'ava'
import { Store } from '../../ts'
import { snapshot, Node, tmpDir } from './fs'
import { BuildKitPeer } from './buildkit'
import { writeArchive } from './image'
import { buildBaseImage } from './build-image'

/** Writes `files` (path → content, or {content, mode}, or {link}) under `dir`. */
export function writeContext(dir: string, files: Record<string, string | { content?: string; mode?: number; link?: string }>): void {
  for (const [rel, v] of Object.entries(files)) {
    const p = path.join(dir, rel)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    if (typeof v === 'string') fs.writeFileSync(p, v)
    else if (v.link !== undefined) {
      fs.rmSync(p, { force: true })
      fs.symlinkSync(v.link, p)
    } else {
      fs.writeFileSync(p, v.content ?? '')
      if (v.mode !== undefined) fs.chmodSync(p, v.mode)
    }
  }
}

/**
 * Waits until the file system's clock has moved past the change time of everything under `dir`
 * (a file written beside it gets a later mtime), so a build's stat index records those files:
 * an entry changed in the same clock tick as its hashing began is "racily clean" and is not
 * recorded (ts/build/statindex.ts). File times come from a coarse clock (a tick of a few ms).
 */
export async function clockPast(dir: string): Promise<void> {
  let newest = 0n
  // Names as bytes: some are not UTF-8.
  const walk = (d: Buffer): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true, encoding: 'buffer' })) {
      const p = Buffer.concat([d, Buffer.from('/'), e.name])
      const ct = fs.lstatSync(p, { bigint: true }).ctimeNs
      if (ct > newest) newest = ct
      if (e.isDirectory()) walk(p)
    }
  }
  walk(Buffer.from(dir))
  const probe = path.join(path.dirname(dir), `.clock-${process.pid}`)
  for (let i = 0; i < 1000; i++) {
    fs.writeFileSync(probe, 'x')
    const m = fs.statSync(probe, { bigint: true }).mtimeNs
    fs.rmSync(probe)
    if (m > newest) return
    await new Promise((r) => setTimeout(r, 2))
  }
  throw new Error(`the clock did not move past ${newest} in 2 s`)
}

/** Paths every container has for the runtime's sake; not part of what a build made. */
const RUNTIME_PATHS = /^(proc|sys|dev)(\/|$)|^\.dockerenv$|^etc\/(hosts|hostname|resolv\.conf|mtab)$/

/** An extracted filesystem as {path: node} without mtimes, runtime mount points left out. */
export function tree(dir: string): Record<string, Node> {
  const out: Record<string, Node> = {}
  for (const [k, v] of Object.entries(snapshot(dir, { xattrs: false }))) if (!RUNTIME_PATHS.test(k)) out[k] = v
  return out
}

/** The merged filesystem of a strata image, via `export` of a fresh container. */
export async function strataTree(store: Store, image: string, into: string): Promise<Record<string, Node>> {
  const c = await store.containers.create(image, { cmd: ['true'], entrypoint: '' })
  try {
    const tarFile = `${into}.tar`
    await c.export(tarFile)
    fs.mkdirSync(into, { recursive: true })
    execFileSync('tar', ['-xf', tarFile, '-C', into, '--numeric-owner', '-p', '--warning=no-timestamp'])
    fs.rmSync(tarFile)
    return tree(into)
  } finally {
    await c.remove({ force: true })
  }
}

export const BUILD_BASE = 'strata-build/busybox:1'

export interface BuildSuite {
  /** The engine, when the suite asked for one (started before the tests, stopped after). */
  engine: BuildKitPeer
  /** A fresh store under a tmp dir with the base image loaded; closed after the test. */
  freshStore(t: ExecutionContext, name?: string): Promise<{ dir: string; root: string; store: Store }>
}

/**
 * Registers a build suite's hooks: the base image archive written once (and loaded into the
 * engine of `engineName`, when given), removed at the end.
 */
export function buildSuite(engineName?: string): BuildSuite {
  const engine = new BuildKitPeer(engineName ?? 'unused')
  let archive = ''
  test.before(() => {
    archive = path.join(fs.mkdtempSync('/var/tmp/strata-build-base-'), 'base.tar')
    writeArchive(archive, [buildBaseImage([BUILD_BASE])], 'docker25')
    if (engineName) {
      engine.start()
      engine.cli(['load', '-i', archive])
    }
  })
  test.after.always(() => {
    if (engineName) engine.stop()
    if (archive) fs.rmSync(path.dirname(archive), { recursive: true, force: true })
  })
  return {
    engine,
    async freshStore(t, name = 'root') {
      const dir = tmpDir(t, 'strata-build-')
      const root = path.join(dir, name)
      const store = await Store.open({ root })
      await store.load(archive)
      t.teardown(() => store.close())
      return { dir, root, store }
    },
  }
}

/** An image config without what a build stamps (times, layer digests that follow file times). */
export function timeless(cfg: Record<string, unknown>): unknown {
  const c = JSON.parse(JSON.stringify(cfg)) as { created?: string; history?: { created?: string }[]; rootfs: { diff_ids: unknown } }
  delete c.created
  for (const h of c.history ?? []) delete h.created
  c.rootfs.diff_ids = (c.rootfs.diff_ids as string[]).length
  return c
}
