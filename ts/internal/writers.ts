/**
 * Which processes may be in the middle of changing the store, so that opening it can skip the
 * cleanup pass (./cleanup.ts) and the full container repair when nothing can have been left
 * half-done — the common case, and what keeps read-only commands fast.
 *
 * On disk, one empty file per writing process:
 *
 * ```
 * <root>/writers/<boot id>-<pid>-<start time>
 * ```
 *
 * `<start time>` is field 22 of `/proc/<pid>/stat` (clock ticks after boot) and `<boot id>` the
 * first 8 hex digits of `/proc/sys/kernel/random/boot_id`: together they name one process for
 * good, so a pid the kernel has since given to another process, or a file left from before a
 * reboot, never passes for a live writer.
 *
 * A process registers before its first change (the first `exclusive()` or staging dir of any of
 * its StoreContexts) and removes its file after its last (the last of its stores closed, once
 * their background work has drained). A file whose process is gone therefore means a writer
 * died mid-change (kill -9, a crash, an exit without `close`): the next open runs the full
 * cleanup and repair, and only then removes such files. A store without `writers/` (made before
 * it existed) is repaired the same way once. Files of live writers need nothing: cleanup never
 * takes what a live process owns, so there is nothing to do for them.
 */
import fs = require('node:fs')
import path = require('node:path')
import { processStartTime } from '../containers/mounts'

/** This process's entry name, computed once. */
let self: string | undefined
/** Per writers dir: how many contexts of this process are registered there. */
const registered = new Map<string, number>()

function bootId(): string {
  return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '').slice(0, 8)
}

function selfName(): string {
  self ??= `${bootId()}-${process.pid}-${processStartTime(process.pid)}`
  return self
}

const ENTRY = /^\.?([0-9a-f]{8})-(\d+)-(\d+)(\.tmp)?$/

/** Is the writer of entry `name` (or of its temporary `.name.tmp`) still running? */
function alive(name: string, boot: string): boolean {
  const m = ENTRY.exec(name)
  if (!m || m[1] !== boot) return false
  return processStartTime(Number(m[2])) === m[3]
}

/** One StoreContext's view of `<root>/writers`. */
export class Writers {
  #registered = false

  constructor(readonly dir: string) {}

  /**
   * Records this process as a writer (once per context; a file write for the first context of
   * the process). Synchronous, so the entry is on disk before the caller's first change.
   */
  register(): void {
    if (this.#registered) return
    const n = registered.get(this.dir) ?? 0
    if (n === 0) {
      const name = selfName()
      // Made under a temporary name and renamed: an opener never sees a half-made entry.
      const tmp = path.join(this.dir, `.${name}.tmp`)
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o711 })
      fs.writeFileSync(tmp, '')
      fs.renameSync(tmp, path.join(this.dir, name))
    }
    registered.set(this.dir, n + 1)
    this.#registered = true
  }

  /** Drops this context's registration; the last of the process removes the entry. */
  unregister(): void {
    if (!this.#registered) return
    this.#registered = false
    const n = (registered.get(this.dir) ?? 1) - 1
    if (n > 0) {
      registered.set(this.dir, n)
      return
    }
    registered.delete(this.dir)
    fs.rmSync(path.join(this.dir, selfName()), { force: true })
  }

  /**
   * Entries of writers that died, or `undefined` when the dir cannot be read (a new store, one
   * made before writers were recorded, a root that is not a directory: all get the full pass,
   * after Store.open has made the dirs or said why it cannot). An empty dir costs one readdir.
   */
  dead(): string[] | undefined {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      // Missing (or unreadable): the full pass, after Store.open has made the dirs or said why not.
      return undefined
    }
    if (names.length === 0) return []
    const boot = bootId()
    return names.filter((n) => !alive(n, boot))
  }

  /** Removes the entries of dead writers, once what they left is repaired. */
  forget(names: string[]): void {
    for (const n of names) fs.rmSync(path.join(this.dir, n), { force: true })
  }
}
