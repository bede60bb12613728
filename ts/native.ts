/**
 * Loads the napi addon. Internal: only the TS facade talks to `Native*` classes; the
 * generated `native/binding.d.ts` is the contract between the two.
 */
import * as path from 'node:path'
import * as fs from 'node:fs'

type Binding = typeof import('../native/binding')

function locate(): string {
  // ts/ when run through tsx, dist/ts/ when compiled, dist/cli/ in the CLI's bundle: the addon
  // lives in <pkg>/native/.
  for (const up of ['..', '../..']) {
    const candidate = path.resolve(__dirname, up, 'native', 'binding.js')
    if (fs.existsSync(candidate)) return candidate
  }
  throw new Error('strata: native addon not built; run `npm run setup`')
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: Binding = require(locate())

/**
 * A step of `fsBatch` (crates/strata-napi/src/fsbatch.rs): `target` is a symlink's target or a
 * rename's destination, `data` a file's contents, `mode` applies to mkdir/write/writeNew.
 */
export interface NativeFsOp {
  op: 'mkdir' | 'write' | 'writeNew' | 'symlink' | 'rename' | 'renameIfExists' | 'unlink' | 'removeAll' | 'syncfs'
  path: string
  target?: string
  data?: string
  mode?: number
}

/** Runs the steps in one native task, in order, stopping at the first failure. */
export function fsBatch(ops: NativeFsOp[]): Promise<void> {
  return native.fsBatch(JSON.stringify(ops))
}
