/**
 * Commands contributed by other parts of strata (containers, ...) register here, so the
 * dispatcher in main.ts stays a plain table.
 */
import { Store } from '../store'
import { Io } from './io'

export type Handler = (store: Store, argv: string[], io: Io) => Promise<number>

export const extraCommands: { usage: string; handlers: Record<string, Handler> } = { usage: '', handlers: {} }

/** Set by the container CLI: inspect a container by name/ID, or undefined if none matches. */
export let inspectContainer: (store: Store, name: string) => Promise<Record<string, unknown> | undefined> = async () => undefined

export function setInspectContainer(f: typeof inspectContainer): void {
  inspectContainer = f
}
