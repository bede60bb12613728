/**
 * Build errors: a `StrataError` that also says where in the Dockerfile the problem is
 * (`line`, 1-based) and, for a failed step, which step (`step`, e.g. `[stage-1 3/6] RUN ...`)
 * and the process's `exitCode`.
 *
 * Codes: `DockerfileParse` (syntax, unknown instruction or flag, bad arguments),
 * `StageNotFound` (`--target` or `COPY --from` naming no stage), `ImageNotFound` (a missing
 * base image), `SourceNotFound` (a COPY/ADD source that matches nothing), `ContextEscape`
 * (a source outside the build context: `../x`, a symlink leading out), `ContextTooLarge`,
 * `BuildFailed` (a RUN step exited non-zero), `InvalidArgument` (bad options).
 */
import { StrataError, StrataErrorCode } from '../errors'

export interface BuildErrorInfo {
  line?: number
  step?: string
  exitCode?: number
  path?: string
  cause?: unknown
}

export class BuildError extends StrataError {
  /** 1-based Dockerfile line of the instruction at fault. */
  readonly line?: number
  /** The step's progress name (`[builder 2/3] RUN make`). */
  readonly step?: string
  /** A failed RUN's exit code. */
  readonly exitCode?: number

  constructor(code: StrataErrorCode, message: string, info: BuildErrorInfo = {}) {
    super(code, message, { ...(info.path !== undefined ? { path: info.path } : {}), ...(info.cause !== undefined ? { cause: info.cause } : {}) })
    this.name = 'BuildError'
    if (info.line !== undefined) this.line = info.line
    if (info.step !== undefined) this.step = info.step
    if (info.exitCode !== undefined) this.exitCode = info.exitCode
  }
}
