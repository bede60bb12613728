/**
 * CLI: `inspect` (and `image inspect`, `container inspect`, which add `--type`): containers
 * first, then images, as docker looks names up; `--format` through docker's template engine.
 */
import type { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs, value } from './args'
import { printFormatted } from './output'
import { Io } from './io'

/** A container by name or ID, or undefined when none (or more than one) matches. */
async function findContainer(store: Store, name: string): Promise<Record<string, unknown> | undefined> {
  try {
    return await (await store.containers.get(name)).inspect()
  } catch (e) {
    if (e instanceof StrataError && (e.code === 'ContainerNotFound' || e.code === 'AmbiguousReference')) return undefined
    throw e
  }
}

/**
 * What the docker CLI prints for a name it cannot inspect: without `--type` its own
 * `Error: No such object`, with one the engine's error for that kind of object.
 */
function notFound(type: string | undefined, name: string, e: StrataError): string {
  if (type === 'image') return `Error response from daemon: no such image: ${name}: ${e.code === 'ImageNotFound' ? e.message : `No such image: ${name}`}`
  if (type === 'container') return `Error response from daemon: No such container: ${name}`
  return `Error: No such object: ${name}`
}

export async function inspectCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'format', short: 'f', value: true }, { name: 'type', value: true }, { name: 'size', short: 's' }])
  if (p.args.length === 0) throw new StrataError('InvalidArgument', '"inspect" requires at least 1 argument.')
  const type = value(p, 'type')
  const out: unknown[] = []
  let rc = 0
  for (const name of p.args) {
    try {
      let obj: Record<string, unknown> | undefined
      if (type === 'container') obj = await (await store.containers.get(name)).inspect()
      else if (type !== 'image') obj = await findContainer(store, name)
      if (!obj && type !== 'container') obj = await store.images.inspect(name)
      if (!obj) throw new StrataError('ImageNotFound', `No such object: ${name}`)
      out.push(obj)
    } catch (e) {
      if (!(e instanceof StrataError) || !['ImageNotFound', 'ContainerNotFound', 'InvalidReference'].includes(e.code)) throw e
      io.err(`${notFound(type, name, e)}\n`)
      rc = 1
    }
  }
  const fmt = value(p, 'format')
  if (fmt) printFormatted(io, fmt, out, {}, true)
  else io.out(`${JSON.stringify(out, null, 4)}\n`)
  return rc
}
