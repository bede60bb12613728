/** Where CLI commands write (real stdio in the CLI, buffers in tests). */
export interface Io {
  out(s: string): void
  err(s: string): void
  /** Is stdout/stderr a terminal (progress bars only then). */
  isTty: boolean
}

export const processIo: Io = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  isTty: Boolean(process.stderr.isTTY),
}
