/**
 * Undo for the steps of an operation that makes several things visible in turn (a load
 * registers layers, then images, then tags): each step that succeeded records how to take it
 * back, and when a later step fails (a full disk, a vanished layer) those undos run, newest
 * first, so the store is as it was before the operation. Undos only delete what the operation
 * made (a layer, an image config): they need no disk space.
 */
export class Rollback {
  readonly #undos: { what: string; undo: () => Promise<unknown> }[] = []

  /** Records how to take back a step that has just succeeded. */
  add(what: string, undo: () => Promise<unknown>): void {
    this.#undos.push({ what, undo })
  }

  /** Runs the undos, newest first; one that fails is reported and the others still run. */
  async run(): Promise<void> {
    for (const { what, undo } of this.#undos.reverse()) {
      try {
        await undo()
      } catch (e) {
        process.emitWarning(`strata: could not take back ${what}: ${(e as Error).message}`)
      }
    }
    this.#undos.length = 0
  }
}

/** Runs `fn`; if it fails, runs the undos it recorded and rethrows its error. */
export async function allOrNothing<T>(fn: (undo: Rollback) => Promise<T>): Promise<T> {
  const undo = new Rollback()
  try {
    return await fn(undo)
  } catch (e) {
    await undo.run()
    throw e
  }
}
