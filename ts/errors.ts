/**
 * Typed errors. Every failure the API reports is a `StrataError` with a stable `code`
 * (tests and callers match on `code`, never on the message). I/O failures keep their
 * errno name in `syscode` (`ENOENT`, `ENOSPC`, ...) and number in `errno`, as Node's own fs
 * errors do, and the path they are about in `path`.
 *
 * The list of codes is the native core's (`ErrorCode` in crates/strata-core/src/error.rs):
 * `ERROR_CODES` below repeats it for the type checker, and a test checks the two lists against
 * each other. Native errors arrive as JS errors whose `code`, `syscode`, `errno` and `path` are
 * properties set by the napi layer; `toStrataError` copies them over.
 */
import { os } from './lazy'

/** Every code the API uses, in the core's order (checked against `native.errorCodes()` by a test). */
export const ERROR_CODES = [
  'ImageNotFound',
  'ContainerNotFound',
  'LayerNotFound',
  'InvalidReference',
  'InvalidArgument',
  'InvalidDigest',
  'DigestMismatch',
  'CorruptArchive',
  'UnsupportedArchive',
  'UnsafeLayerEntry',
  'Conflict',
  'NameInUse',
  'AmbiguousReference',
  'Aborted',
  'Locked',
  'MountFailed',
  'UnmountFailed',
  'InvalidMountPlan',
  'TooManyLayers',
  'MountOptionsTooLong',
  'MalformedMountInfo',
  'FileChangedDuringArchive',
  'CorruptMetadata',
  'RuntimeFailed',
  'NotRunning',
  'DockerfileParse',
  'StageNotFound',
  'SourceNotFound',
  'ContextEscape',
  'ContextTooLarge',
  'BuildFailed',
  'PathNotFound',
  'NotADirectory',
  'Io',
  'Unauthorized',
  'NotFound',
  'RegistryError',
  'RegistryUnreachable',
  'ResponseTooLarge',
  'ManifestInvalid',
  'UnsupportedManifest',
  'CredentialHelperFailed',
  'ConfigInvalid',
  'NoCredentials',
  'Internal',
] as const

/** A code of the list above. */
export type ErrorCodeName = (typeof ERROR_CODES)[number]

/**
 * An errno name (`ENOENT`, `EXDEV`, ...): the `code` of a `UnionView` error, which follows
 * `fs/promises` (no code of `ERROR_CODES` starts with `E` and an upper-case letter).
 */
export type ErrnoName = `E${Uppercase<string>}`

/** Stable error codes. */
export type StrataErrorCode = ErrorCodeName | ErrnoName

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES)

export interface StrataErrorDetails {
  errno?: number
  syscode?: string
  path?: string
  /** Registry errors: the HTTP status, and the registry's own code (`MANIFEST_UNKNOWN`). */
  status?: number
  registryCode?: string
  cause?: unknown
}

export class StrataError extends Error {
  readonly code: StrataErrorCode
  /** errno name of an underlying I/O failure (`ENOENT`, `ENOSPC`, ...). */
  readonly syscode?: string
  /** errno number (positive) of an underlying I/O failure. */
  readonly errno?: number
  /** The path or layer entry the error is about. */
  readonly path?: string
  /** For registry errors: the HTTP status the registry answered. */
  readonly status?: number
  /** For registry errors: the registry's own error code (`MANIFEST_UNKNOWN`, `DENIED`, ...). */
  readonly registryCode?: string

  constructor(code: StrataErrorCode, message: string, extra: StrataErrorDetails = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.name = 'StrataError'
    this.code = code
    if (extra.errno !== undefined) this.errno = extra.errno
    if (extra.syscode !== undefined) this.syscode = extra.syscode
    if (extra.path !== undefined) this.path = extra.path
    if (extra.status !== undefined) this.status = extra.status
    if (extra.registryCode !== undefined) this.registryCode = extra.registryCode
  }
}

/** An `Io` StrataError for a Node errno error (`{ code: 'ENOSPC', errno: -28, path }`). */
export function ioError(err: NodeJS.ErrnoException, message = err.message): StrataError {
  const syscode = err.code
  const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : syscode ? (os.constants.errno as Record<string, number>)[syscode] : undefined
  return new StrataError('Io', message, { errno, syscode, path: err.path, cause: err })
}

function isErrnoError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as { code?: unknown } | null)?.code
  return err instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)
}

/**
 * Any failure as a StrataError: a StrataError as is; an error of the native addon with the
 * code, syscode, errno and path the napi layer set on it; a Node errno error (fs, spawn) as
 * `Io`; an `AbortError` as `Aborted`; anything else — a bug — as `Internal`, the original
 * kept as `cause` (with its stack).
 */
export function toStrataError(err: unknown): StrataError {
  if (err instanceof StrataError) return err
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; errno?: unknown; syscode?: unknown; path?: unknown; status?: unknown; registryCode?: unknown }
    if (typeof e.code === 'string' && KNOWN_CODES.has(e.code)) {
      return new StrataError(e.code as ErrorCodeName, e.message, {
        errno: typeof e.errno === 'number' ? e.errno : undefined,
        syscode: typeof e.syscode === 'string' ? e.syscode : undefined,
        path: typeof e.path === 'string' ? e.path : undefined,
        status: typeof e.status === 'number' ? e.status : undefined,
        registryCode: typeof e.registryCode === 'string' ? e.registryCode : undefined,
      })
    }
    if (e.name === 'AbortError') return new StrataError('Aborted', 'operation aborted', { cause: err })
    if (isErrnoError(err)) return ioError(err)
  }
  const message = err instanceof Error ? err.message : String(err)
  return new StrataError('Internal', `internal error: ${message}`, { cause: err })
}

/**
 * What a caller's own callback (`onProgress`) threw, on its way back to that caller: the API
 * boundary rejects with `value` as it is (the caller's error, not one of ours), where everything
 * else becomes a StrataError.
 */
export class CallerThrew {
  constructor(readonly value: unknown) {}
}

/** Runs `fn` (a native call, a file-system step), converting whatever it throws. */
export async function call<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw toStrataError(err)
  }
}
