/**
 * The json-file log driver's writer side: one JSON record per line of output
 * (`{"log":..,"stream":..,"time":..}`), as Docker's json-file driver writes them.
 */
/** One json-file log line, as Docker's json-file driver writes it. */
export function logLine(stream: 'stdout' | 'stderr', chunk: Buffer): string {
  return `${JSON.stringify({ log: chunk.toString('utf8'), stream, time: new Date().toISOString() })}\n`
}

/**
 * Splits output into lines (Docker logs one record per line; a partial last line is flushed at
 * the end). `passPartial` may let a partial line through to `emitPartial` at once (prompts).
 */
export class LineSplitter {
  #rest = Buffer.alloc(0)
  /** Bytes of #rest already given to emitPartial. */
  #passed = 0
  constructor(
    private readonly emit: (line: Buffer) => void,
    private readonly passPartial?: (partial: Buffer) => boolean,
    private readonly emitPartial?: (bytes: Buffer) => void,
  ) {}
  push(d: Buffer): void {
    let buf = Buffer.concat([this.#rest, d])
    let nl: number
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      const line = buf.subarray(0, nl + 1)
      if (this.#passed > 0) {
        this.emitPartial?.(line.subarray(this.#passed))
        this.emitLogOnly?.(line)
      } else this.emit(line)
      this.#passed = 0
      buf = buf.subarray(nl + 1)
    }
    this.#rest = buf
    if (buf.length > this.#passed && this.passPartial?.(buf)) {
      this.emitPartial?.(buf.subarray(this.#passed))
      this.#passed = buf.length
    }
  }
  /** For lines partly passed through already: the log still gets the whole line. */
  emitLogOnly?: (line: Buffer) => void
  end(): void {
    if (this.#rest.length) {
      if (this.#passed > 0) {
        this.emitPartial?.(this.#rest.subarray(this.#passed))
        this.emitLogOnly?.(this.#rest)
      } else this.emit(this.#rest)
    }
    this.#rest = Buffer.alloc(0)
    this.#passed = 0
  }
}

