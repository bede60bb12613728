/**
 * Wrong argument types and values at the public API boundary: every public method of every
 * public class checks its arguments first and rejects with `InvalidArgument` (never a TypeError
 * from deep inside), without touching the store.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Store, StrataError, Container, UnionView } from '../ts'
import { Images } from '../ts/images'
import { Containers } from '../ts/containers/containers'
import { DockerConfig } from '../ts/registry/credentials'
import { EXPOSED } from '../ts/boundary'
import { tmpDir, snapshot } from './helpers/fs'
import { writeArchive } from './helpers/image'
import { busyboxImage } from './helpers/fixtures'

const BAD = Symbol('not an argument')

/** The public classes and the members that are not API (internal hooks, getters). */
const CLASSES: [{ prototype: object; name: string }, string[]][] = [
  [Store, []],
  [Images, []],
  [Containers, []],
  [Container, ['thawIfOrphaned']],
  [UnionView, []],
  [DockerConfig, []],
]

function ownMethods(proto: object): string[] {
  return Object.getOwnPropertyNames(proto).filter((n) => {
    if (n === 'constructor') return false
    const d = Object.getOwnPropertyDescriptor(proto, n)!
    return typeof d.value === 'function'
  })
}

test('every public method of every public class has its arguments checked at the boundary', (t) => {
  for (const [cls, internal] of CLASSES) {
    const rec = EXPOSED.find((e) => e.name === cls.name)
    t.truthy(rec, `${cls.name} is exposed`)
    for (const m of ownMethods(cls.prototype)) {
      if (internal.includes(m)) continue
      t.true(Object.hasOwn(rec!.methods, m), `${cls.name}.${m} has an argument list`)
    }
  }
})

async function world(t: import('ava').ExecutionContext) {
  const dir = tmpDir(t)
  const root = path.join(dir, 'root')
  writeArchive(path.join(dir, 'bb.tar'), [busyboxImage(['bb:1'])], 'docker25')
  const store = await Store.open({ root })
  await store.load(path.join(dir, 'bb.tar'))
  const c = await store.containers.create('bb:1', { name: 'args', cmd: ['true'] })
  const view = await c.view()
  return { dir, root, store, c, view }
}

async function invalid(t: import('ava').ExecutionContext, what: string, call: () => unknown, message?: RegExp): Promise<void> {
  let err: unknown
  try {
    await call()
  } catch (e) {
    err = e
  }
  t.true(err instanceof StrataError, `${what}: ${String(err)}`)
  t.is((err as StrataError).code, 'InvalidArgument', `${what}: ${(err as Error).message}`)
  if (message) t.regex((err as Error).message, message, what)
}

test('a value no check accepts, in first place or as an extra argument, is InvalidArgument for every method', async (t) => {
  const w = await world(t)
  const instances: Record<string, object> = { Store: w.store, Images: w.store.images, Containers: w.store.containers, Container: w.c, UnionView: w.view, DockerConfig: w.store.credentials() }
  const statics: Record<string, object> = { Store, UnionView }
  const before = snapshot(w.root, { mtimes: true })
  for (const rec of EXPOSED) {
    for (const [where, methods] of [['instance', rec.methods], ['static', rec.statics]] as const) {
      const self = where === 'instance' ? instances[rec.name] : statics[rec.name]
      if (!self) continue
      for (const [m, sig] of Object.entries(methods)) {
        const fn = (self as Record<string, (...a: unknown[]) => unknown>)[m].bind(self)
        const label = `${rec.name}.${m}`
        if (sig.length > 0) await invalid(t, `${label}(BAD)`, () => fn(BAD), new RegExp(`${rec.name}\\.${m}: ${sig[0][0]}`))
        await invalid(t, `${label}(...extra)`, () => fn(...sig.map(() => undefined), BAD), /takes \d+ argument/)
        // A sync method throws, an async one rejects: never both, never a throw from an async one.
        if (!rec.sync.has(m) && sig.length > 0) {
          let threw = false
          let p: unknown
          try {
            p = fn(BAD)
          } catch {
            threw = true
          }
          t.false(threw, `${label} rejects rather than throws`)
          await t.throwsAsync(p as Promise<unknown>)
        }
      }
    }
  }
  t.deepEqual(snapshot(w.root, { mtimes: true }), before, 'nothing changed')
})

test('the cases of issue #10 and other wrong types and values', async (t) => {
  const w = await world(t)
  const { store, c, view } = w
  const before = snapshot(w.root, { mtimes: true })
  const images = store.images as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>
  const containers = store.containers as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>
  const s = store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>
  const ctr = c as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>
  const v = view as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>
  await invalid(t, 'tag(123, 456)', () => images.tag(123, 456), /source must be a string, got number 123/)
  await invalid(t, 'tag(ok, 456)', () => images.tag('bb:1', 456), /target must be a string/)
  await invalid(t, 'load(123)', () => s.load(123))
  await invalid(t, 'load(path, { signal: "x" })', () => s.load('x.tar', { signal: 'x' }), /signal must be an AbortSignal/)
  await invalid(t, 'load(path, { onProgress: 1 })', () => s.load('x.tar', { onProgress: 1 }))
  await invalid(t, 'load(path, { bogus })', () => s.load('x.tar', { bogus: true }), /unknown option "bogus"/)
  await invalid(t, 'containers.create(123)', () => containers.create(123))
  await invalid(t, "create(cmd: 'echo hi')", () => containers.create('bb:1', { cmd: 'echo hi' }), /cmd must be an array of strings/)
  await invalid(t, 'create(env: [1])', () => containers.create('bb:1', { env: [1] }), /env\[0\] must be a string/)
  await invalid(t, 'create({ nmae })', () => containers.create('bb:1', { nmae: 'x' }), /unknown option "nmae"/)
  await invalid(t, 'save(123, out)', () => s.save(123, path.join(w.dir, 'o.tar')))
  await invalid(t, "save(['bb:1', 1], out)", () => s.save(['bb:1', 1], path.join(w.dir, 'o.tar')))
  await invalid(t, 'save(bb:1, 42)', () => s.save('bb:1', 42))
  await invalid(t, "save(format: 'zip')", () => s.save('bb:1', path.join(w.dir, 'o.tar'), { format: 'zip' }), /one of "docker", "oci"/)
  await invalid(t, 'import(null)', () => s.import(null))
  await invalid(t, 'images.list({ filters: { bogus } })', () => images.list({ filters: { bogus: ['1'] } }), /^Invalid filter 'bogus'$/)
  await invalid(t, 'images.list({ filters: { dangling: "maybe" } })', () => images.list({ filters: { dangling: 'maybe' } }))
  await invalid(t, 'images.list({ filters: { reference: "x" } })', () => images.list({ filters: { reference: 'x' } }))
  await invalid(t, 'images.remove(bb, { froce })', () => images.remove('bb:1', { froce: true }), /unknown option "froce"/)
  await invalid(t, 'wait({ timeoutMs: -1 })', () => ctr.wait({ timeoutMs: -1 }))
  await invalid(t, 'wait({ timeoutMs: NaN })', () => ctr.wait({ timeoutMs: NaN }))
  await invalid(t, 'stop({ timeout: Infinity })', () => ctr.stop({ timeout: Infinity }))
  await invalid(t, 'kill(1.5)', () => ctr.kill(1.5))
  await invalid(t, 'kill(-9)', () => ctr.kill(-9))
  await invalid(t, 'commit({ changes: "CMD x" })', () => ctr.commit({ changes: 'CMD x' }))
  await invalid(t, 'commit({ pause: "no" })', () => ctr.commit({ pause: 'no' }))
  await invalid(t, 'export(undefined)', () => ctr.export(undefined))
  await invalid(t, 'view.truncate(f, -1)', () => v.truncate('/f', -1))
  await invalid(t, 'view.chmod(f, NaN)', () => v.chmod('/f', NaN))
  await invalid(t, 'view.chown(f, -2, 0)', () => v.chown('/f', -2, 0))
  await invalid(t, 'view.readFile(f, "klingon")', () => v.readFile('/f', 'klingon'))
  await invalid(t, 'view.writeFile(f, 42)', () => v.writeFile('/f', 42))
  await invalid(t, 'UnionView.open({ lowers: "x" })', () => UnionView.open({ lowers: 'x' } as unknown as { lowers: string[] }))
  await invalid(t, 'Store.open({ root: 1 })', () => Store.open({ root: 1 } as unknown as { root: string }))
  t.deepEqual(snapshot(w.root, { mtimes: true }), before, 'nothing changed')
  // What is accepted: save of one name (not walked character by character) and of a list.
  await store.save('bb:1', path.join(w.dir, 'one.tar'))
  await store.save(['bb:1'], path.join(w.dir, 'list.tar'))
  t.deepEqual(fs.readFileSync(path.join(w.dir, 'one.tar')), fs.readFileSync(path.join(w.dir, 'list.tar')))
  t.is(await view.readFile('/bin/busybox').then((b) => b.length), fs.statSync('/bin/busybox').size)
})
