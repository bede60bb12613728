/**
 * Typed errors. Every failure the API reports is a `StrataError` with a stable `code`
 * (tests and callers match on `code`, never on the message). I/O failures keep their
 * errno name in `syscode` (`ENOENT`, `EXDEV`, ...), as Node's own fs errors do.
 */

/** Stable error codes. */
export type StrataErrorCode =
  | 'ImageNotFound'
  | 'ContainerNotFound'
  | 'LayerNotFound'
  | 'InvalidReference'
  | 'InvalidArgument'
  | 'InvalidDigest'
  | 'DigestMismatch'
  | 'CorruptArchive'
  | 'UnsupportedArchive'
  | 'UnsafeLayerEntry'
  | 'Conflict'
  | 'NameInUse'
  | 'AmbiguousReference'
  | 'Aborted'
  | 'Locked'
  | 'MountFailed'
  | 'RuntimeFailed'
  | 'NotRunning'
  | 'Io'
  | 'Unauthorized'
  | 'NotFound'
  | 'RegistryError'
  | 'RegistryUnreachable'
  | 'ResponseTooLarge'
  | 'ManifestInvalid'
  | 'UnsupportedManifest'
  | 'CredentialHelperFailed'
  | 'ConfigInvalid'
  | 'NoCredentials'
  | (string & {})

export class StrataError extends Error {
  readonly code: StrataErrorCode
  /** errno name of an underlying I/O failure (`ENOENT`, `EXDEV`, ...). */
  readonly syscode?: string
  readonly errno?: number
  /** The path or layer entry the error is about. */
  readonly path?: string
  /** For registry errors: the HTTP status the registry answered. */
  readonly status?: number
  /** For registry errors: the registry's own error code (`MANIFEST_UNKNOWN`, `DENIED`, ...). */
  readonly registryCode?: string

  constructor(code: StrataErrorCode, message: string, extra: { errno?: number; syscode?: string; path?: string; status?: number; registryCode?: string; cause?: unknown } = {}) {
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

const PREFIX = 'STRATA:'

/** Converts an error thrown by the native addon (or anything else) into a StrataError. */
export function fromNative(err: unknown): StrataError {
  if (err instanceof StrataError) return err
  const msg = err instanceof Error ? err.message : String(err)
  const at = msg.indexOf(PREFIX)
  if (at >= 0) {
    try {
      const o = JSON.parse(msg.slice(at + PREFIX.length)) as { code: string; message: string; errno?: number; syscode?: string; path?: string; status?: number; registryCode?: string }
      return new StrataError(o.code, o.message, { errno: o.errno, syscode: o.syscode, path: o.path, status: o.status, registryCode: o.registryCode, cause: err })
    } catch {
      /* fall through */
    }
  }
  const e = err as NodeJS.ErrnoException
  if (e && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) {
    return new StrataError('Io', msg, { errno: typeof e.errno === 'number' ? -Math.abs(e.errno) * -1 : undefined, syscode: e.code, path: e.path, cause: err })
  }
  return new StrataError('Io', msg, { cause: err })
}

/** Runs a native call, converting its errors. */
export async function call<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw fromNative(err)
  }
}
