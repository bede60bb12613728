/**
 * Loads the napi addon. Internal: only the TS facade talks to `Native*` classes; the
 * generated `native/binding.d.ts` is the contract between the two.
 */
import path = require('node:path')
import fs = require('node:fs')

type Binding = typeof import('../../native/binding')

/** The addon file this package builds (package.json `napi.targets`: x86_64-unknown-linux-gnu). */
const ADDON = `strata.${process.platform}-${process.arch}-gnu.node`

function load(): Binding {
  // ts/internal/ when run through tsx, dist/ts/internal/ when compiled, dist/cli/ in the CLI's
  // bundle: the addon lives in <pkg>/native/.
  for (const up of ['../..', '../../..']) {
    const dir = path.resolve(__dirname, up, 'native')
    // The built addon itself when it is there: napi's generated binding.js ends up requiring
    // the same file, but first tells glibc from musl by reading /usr/bin/ldd or a process
    // report, some 15 ms of every CLI command.
    const addon = path.join(dir, ADDON)
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (fs.existsSync(addon)) return require(addon) as Binding
    const loader = path.join(dir, 'binding.js')
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (fs.existsSync(loader)) return require(loader) as Binding
  }
  throw new Error('strata: native addon not built; run `npm run setup`')
}

let binding: Binding | undefined

/**
 * The addon, loaded on first use (a property read): loading it costs a few ms of every CLI
 * command, and the read-only commands can do without it (the store lock's readers, ./lock.ts,
 * and `readBytesIfExists`, ./fsx.ts, have paths for when it is not loaded yet).
 */
export const native: Binding = new Proxy({} as Binding, { get: (_target, key) => Reflect.get((binding ??= load()), key) })

/** Whether the addon is loaded yet (something used it). */
export function nativeLoaded(): boolean {
  return binding !== undefined
}

/** A step of `fsBatch` (crates/strata-napi/src/fsbatch.rs), told apart by `op`. */
export type NativeFsOp = import('../../native/binding').NativeFsOp

/**
 * Runs the steps in one native task, in order, stopping at the first failure. A failure's
 * message starts with its errno's name (`ENOSPC: write <path>: No space left on device ...`),
 * as Node's file-system errors do, so a CLI user sees the same error either way.
 */
export async function fsBatch(ops: NativeFsOp[]): Promise<void> {
  try {
    await native.fsBatch(ops)
  } catch (e) {
    const syscode = (e as { syscode?: unknown }).syscode
    if (e instanceof Error && typeof syscode === 'string' && !e.message.startsWith(`${syscode}: `)) e.message = `${syscode}: ${e.message}`
    throw e
  }
}
