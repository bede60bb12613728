/** Watching the addon's `fsBatch` (../../ts/internal/native.ts calls it for every batch of file-system steps). */
import { native, type NativeFsOp } from '../../ts/internal/native'

/** Every batch of native file-system steps started while `fn` runs, in order. */
export async function fsBatchesOf(fn: () => Promise<unknown>): Promise<NativeFsOp[][]> {
  // The addon is loaded on first use: its exports are what native.ts calls.
  void native.fsBatch
  const binding = Object.values(require.cache).find((m) => typeof m?.exports?.fsBatch === 'function' && typeof m?.exports?.statIndexUpdate === 'function')!.exports as { fsBatch: (ops: NativeFsOp[]) => Promise<void> }
  const fsBatch = binding.fsBatch
  const batches: NativeFsOp[][] = []
  binding.fsBatch = (ops) => {
    batches.push(ops)
    return fsBatch(ops)
  }
  try {
    await fn()
  } finally {
    binding.fsBatch = fsBatch
  }
  return batches
}
