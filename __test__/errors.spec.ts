/**
 * The error contract: one list of codes (the native core's), errno names from the number,
 * native failures crossing as data on the error object (sync calls and AsyncTask rejections),
 * and every other failure converted to a StrataError with a code.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as util from 'node:util'
import { native } from '../ts/internal/native'
import { ERROR_CODES, StrataError, toStrataError, type StrataErrorCode } from '../ts/errors'
import { tmpDir } from './helpers/fs'

test('the TS code union and the native core list the same codes, in the same order', (t) => {
  const nativeCodes = native.errorCodes()
  t.deepEqual([...ERROR_CODES], nativeCodes)
  for (const c of nativeCodes) t.true((ERROR_CODES as readonly string[]).includes(c), `TS lacks ${c}`)
  for (const c of ERROR_CODES) t.true(nativeCodes.includes(c), `native lacks ${c}`)
  // Errno names (the codes of view errors) never collide with a code of the list.
  for (const c of ERROR_CODES) t.notRegex(c, /^E[A-Z]/)
  // The type follows the list: a code of the list and an errno name are codes, a typo is not.
  const ok: StrataErrorCode[] = ['ImageNotFound', 'ENOENT']
  // @ts-expect-error a code that is not in the list
  const typo: StrataErrorCode = 'ImageNotFund'
  t.is(ok.length + typo.length, 14)
})

test('errno names come from the number: every errno Linux defines, named as Node names them', (t) => {
  for (let n = 1; n <= 133; n++) {
    const ours = native.errnoName(n)
    const nodes = util.getSystemErrorName(-n)
    if (!nodes.startsWith('Unknown')) t.is(ours, nodes, `errno ${n}`)
    // 41 and 58 are holes in Linux's numbering; every other number has a name.
    if (n === 41 || n === 58) t.is(ours, null)
    else t.regex(ours ?? '', /^E[A-Z0-9]+$/, `errno ${n}`)
  }
  const aliases: Record<string, string> = { EWOULDBLOCK: 'EAGAIN', EDEADLOCK: 'EDEADLK', EOPNOTSUPP: 'ENOTSUP' }
  for (const [name, n] of Object.entries(os.constants.errno)) t.is(native.errnoName(n), aliases[name] ?? name, name)
  t.is(native.errnoName(28), 'ENOSPC')
  t.is(native.errnoName(116), 'ESTALE')
  t.is(native.errnoName(0), null)
  t.is(native.errnoName(4000), null)
})

test('native errors carry code, syscode, errno and path as properties: synchronous calls', (t) => {
  const missing = '/nonexistent-strata-dir/x.lock'
  const raw = t.throws(() => native.tryLock(missing, true)) as Error & Record<string, unknown>
  t.is(raw.code, 'Io')
  t.is(raw.syscode, 'ENOENT')
  t.is(raw.errno, 2)
  t.is(raw.path, missing)
  t.false(raw.message.includes('STRATA:'))
  const e = toStrataError(raw)
  t.true(e instanceof StrataError)
  t.like(e, { code: 'Io', syscode: 'ENOENT', errno: 2, path: missing })
  // A plan the kernel would refuse: coded at once, no mount attempted.
  const tooDeep = Array.from({ length: native.OVERLAY_MAX_STACK + 1 }, (_, i) => `/l${i}`)
  t.like(toStrataError(t.throws(() => native.containerMountPlan(tooDeep, '/u', '/w', '/m'))), { code: 'TooManyLayers' })
  t.like(toStrataError(t.throws(() => native.containerMountPlan(['rel'], '/u', '/w', '/m'))), { code: 'InvalidMountPlan' })
})

test('native errors carry their properties through AsyncTask rejections too', async (t) => {
  const raw = (await t.throwsAsync(native.readSmallFile('/proc/self/mem'))) as Error & Record<string, unknown>
  t.like(raw, { code: 'Io', syscode: 'EIO', errno: 5, path: '/proc/self/mem' })
  const dir = tmpDir(t)
  fs.writeFileSync(path.join(dir, 'not-a-dir'), 'x')
  const blocked = (await t.throwsAsync(native.changes(path.join(dir, 'not-a-dir', 'upper'), []))) as Error & Record<string, unknown>
  t.is(blocked.code, 'Io')
  t.is(blocked.syscode, 'ENOTDIR')
})

test('a cancelled export or layer walk says Aborted, like every other cancelled operation', async (t) => {
  const dir = tmpDir(t)
  fs.mkdirSync(path.join(dir, 'tree'))
  fs.writeFileSync(path.join(dir, 'tree', 'f'), 'x')
  const cancel = new native.NativeCancel()
  cancel.cancel()
  for (const mode of ['plain', 'layer'] as const) {
    const e = toStrataError(await t.throwsAsync(native.writeDirTar(path.join(dir, 'tree'), mode, path.join(dir, `${mode}.tar`), cancel)))
    t.is(e.code, 'Aborted', e.message)
  }
  t.false(native.errorCodes().includes('Cancelled'))
})

test('toStrataError: Node errno errors are Io with a positive errno, AbortError is Aborted, the rest Internal', (t) => {
  const enoent = t.throws(() => fs.readFileSync('/nonexistent-strata-file')) as NodeJS.ErrnoException
  t.like(toStrataError(enoent), { code: 'Io', syscode: 'ENOENT', errno: 2, path: '/nonexistent-strata-file' })
  t.is(toStrataError(enoent).cause, enoent)
  const abort = Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' })
  t.is(toStrataError(abort).code, 'Aborted')
  const bug = new TypeError('x is not a function')
  const internal = toStrataError(bug)
  t.is(internal.code, 'Internal')
  t.is(internal.cause, bug)
  const same = new StrataError('Conflict', 'in use')
  t.is(toStrataError(same), same)
  // napi's own argument errors (a bug in the TS facade) are not mistaken for coded ones.
  const napiErr = t.throws(() => (native.errnoName as unknown as (x: unknown) => unknown)('x')) as Error & { code?: string }
  t.is(toStrataError(napiErr).code, 'Internal', napiErr.code)
})
