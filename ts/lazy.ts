/**
 * Node built-ins that only some operations need, loaded on first use. Loading `node:stream`,
 * `node:crypto`, `node:child_process` and `node:fs/promises` (which pulls in readline) when a
 * module is first evaluated would be most of what a read-only CLI command pays before its first
 * line of output (bench/cli.js); each is loaded here when something first touches it.
 *
 * ```ts
 * import { fsp as fs, crypto } from './lazy'
 * await fs.mkdir(dir)                       // node:fs/promises is loaded by this call
 * crypto.createHash('sha256')
 * ```
 *
 * The project's own modules that load on first use are required the same way, in place:
 * `const { build } = require('./build/builder') as typeof import('./build/builder')`. Not with
 * `import()`: the tests run the sources through tsx's CommonJS hook, under which `import()`
 * goes to Node's ESM loader, which finds no `.ts` file; tsc's output and the CLI's bundle make
 * the same lazy load of either.
 */
import type * as FsPromises from 'node:fs/promises'
import type * as Crypto from 'node:crypto'
import type * as ChildProcess from 'node:child_process'
import type * as Os from 'node:os'
import type * as Stream from 'node:stream'
import type * as StreamPromises from 'node:stream/promises'

/** A stand-in for a module that `load`s it on the first property read. */
function lazy<T extends object>(load: () => T): T {
  let mod: T | undefined
  return new Proxy({} as T, { get: (_target, key) => Reflect.get((mod ??= load()), key) })
}

/* eslint-disable @typescript-eslint/no-require-imports */
export const fsp = lazy<typeof FsPromises>(() => require('node:fs/promises'))
export const crypto = lazy<typeof Crypto>(() => require('node:crypto'))
export const childProcess = lazy<typeof ChildProcess>(() => require('node:child_process'))
export const os = lazy<typeof Os>(() => require('node:os'))
export const stream = lazy<typeof Stream>(() => require('node:stream'))
export const streamPromises = lazy<typeof StreamPromises>(() => require('node:stream/promises'))
