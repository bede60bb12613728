/**
 * Build progress: the events a build emits (`onProgress`), and the two ways the CLI shows
 * them, as BuildKit's progress UI does: `--progress=plain` (the default off a terminal) — one
 * block per step:
 *
 * ```
 * #5 [2/3] RUN make
 * #5 sha256:<step key>
 * #5 0.120 compiling...
 * #5 DONE 0.3s
 * ```
 *
 * (`CACHED` for a cache hit, `ERROR: ...` for a failure) — and, on a terminal, a live view
 * redrawn in place: `[+] Building 1.2s (5/10)` over one line per step with its time.
 */
import { now } from '../internal/clock'

/** One thing a build reports. Vertices are numbered in the order they start (`#1`, `#2`, ...). */
export type BuildEvent =
  | { type: 'vertex'; id: number; name: string; digest: string; at: number }
  | { type: 'status'; id: number; text: string }
  | { type: 'log'; id: number; stream: 'stdout' | 'stderr'; data: Buffer; at: number }
  | { type: 'cached'; id: number }
  | { type: 'done'; id: number; at: number }
  | { type: 'error'; id: number; message: string; at: number }

/** Hands events to a listener; a listener that throws fails the build with its error. */
export class Progress {
  #next = 1
  #failure: unknown
  constructor(private readonly listener?: (e: BuildEvent) => void) {}

  emit(e: BuildEvent): void {
    if (!this.listener || this.#failure !== undefined) return
    try {
      this.listener(e)
    } catch (err) {
      this.#failure = err
    }
  }

  /** Rethrows what the listener threw, if it did. */
  check(): void {
    if (this.#failure !== undefined) throw this.#failure
  }

  start(name: string, digest: string): number {
    const id = this.#next++
    this.emit({ type: 'vertex', id, name, digest, at: now() })
    return id
  }
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1)
}

interface VertexView {
  name: string
  started: number
  ended?: number
  cached?: boolean
  error?: string
  logs: string[]
}

/** `--progress=plain`: BuildKit's plain printer (each vertex's lines grouped, flushed when it changes). */
export class PlainPrinter {
  readonly #vertices = new Map<number, VertexView & { digest: string; partial: Map<string, string> }>()
  #current = -1

  constructor(private readonly write: (s: string) => void) {}

  #switchTo(id: number): void {
    if (this.#current === id) return
    if (this.#current !== -1) this.write('\n')
    this.#current = id
  }

  handle(e: BuildEvent): void {
    switch (e.type) {
      case 'vertex':
        this.#vertices.set(e.id, { name: e.name, started: e.at, digest: e.digest, logs: [], partial: new Map() })
        this.#switchTo(e.id)
        this.write(`#${e.id} ${e.name}\n#${e.id} ${e.digest}\n`)
        return
      case 'status':
        this.#switchTo(e.id)
        this.write(`#${e.id} ${e.text}\n`)
        return
      case 'log': {
        const v = this.#vertices.get(e.id)
        if (!v) return
        const text = (v.partial.get(e.stream) ?? '') + e.data.toString('utf8')
        const lines = text.split('\n')
        v.partial.set(e.stream, lines.pop() ?? '')
        if (lines.length === 0) return
        this.#switchTo(e.id)
        for (const l of lines) {
          const out = `#${e.id} ${((e.at - v.started) / 1000).toFixed(3)} ${l}`
          v.logs.push(out)
          this.write(`${out}\n`)
        }
        return
      }
      case 'cached':
        this.#switchTo(e.id)
        this.write(`#${e.id} CACHED\n`)
        return
      case 'done': {
        const v = this.#vertices.get(e.id)
        if (!v) return
        this.#flushPartial(e.id, v, e.at)
        this.#switchTo(e.id)
        this.write(`#${e.id} DONE ${seconds(e.at - v.started)}s\n`)
        return
      }
      case 'error': {
        const v = this.#vertices.get(e.id)
        if (v) {
          this.#flushPartial(e.id, v, e.at)
          v.error = e.message
        }
        this.#switchTo(e.id)
        this.write(`#${e.id} ERROR: ${e.message}\n`)
        return
      }
    }
  }

  #flushPartial(id: number, v: VertexView & { partial: Map<string, string> }, at: number): void {
    for (const [stream, rest] of v.partial) {
      if (rest === '') continue
      this.#switchTo(id)
      const out = `#${id} ${((at - v.started) / 1000).toFixed(3)} ${rest}`
      v.logs.push(out)
      this.write(`${out}\n`)
      v.partial.set(stream, '')
    }
  }

  /** The log lines of a vertex (for the box under a failure). */
  logsOf(id: number): string[] {
    return this.#vertices.get(id)?.logs ?? []
  }

  nameOf(id: number): string {
    return this.#vertices.get(id)?.name ?? ''
  }

  end(): void {
    if (this.#current !== -1) this.write('\n')
    this.#current = -1
  }
}

/** The terminal view: redrawn in place, at most every 100 ms. */
export class TtyPrinter {
  readonly #vertices = new Map<number, VertexView>()
  readonly #order: number[] = []
  readonly #started = now()
  #lines = 0
  #timer?: NodeJS.Timeout
  #last = 0

  constructor(private readonly write: (s: string) => void, private readonly columns = 100) {}

  handle(e: BuildEvent): void {
    switch (e.type) {
      case 'vertex':
        this.#vertices.set(e.id, { name: e.name, started: e.at, logs: [] })
        this.#order.push(e.id)
        break
      case 'log': {
        const v = this.#vertices.get(e.id)
        if (v) v.logs.push(...e.data.toString('utf8').split('\n').filter(Boolean))
        break
      }
      case 'cached': {
        const v = this.#vertices.get(e.id)
        if (v) {
          v.cached = true
          v.ended = v.started
        }
        break
      }
      case 'done':
      case 'error': {
        const v = this.#vertices.get(e.id)
        if (v) {
          v.ended = e.at
          if (e.type === 'error') v.error = e.message
        }
        break
      }
      default:
        break
    }
    this.#schedule()
  }

  #schedule(): void {
    if (now() - this.#last >= 100) {
      this.#draw()
      return
    }
    if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.#draw()
      }, 100)
      this.#timer.unref()
    }
  }

  #draw(finished = false): void {
    this.#last = now()
    const at = this.#last
    const done = this.#order.filter((id) => this.#vertices.get(id)!.ended !== undefined).length
    const out: string[] = [`[+] Building ${seconds(at - this.#started)}s (${done}/${this.#order.length})${finished ? ' FINISHED' : ''}`]
    for (const id of this.#order) {
      const v = this.#vertices.get(id)!
      // As BuildKit's progressui: ` => CACHED [2/3] COPY ...   0.0s`, ` => ERROR [3/3] RUN ...   0.3s`.
      const head = ` => ${v.error ? 'ERROR ' : v.cached ? 'CACHED ' : ''}${v.name}`
      const tail = `${seconds(v.cached ? 0 : (v.ended ?? at) - v.started)}s`
      // One column short of the width: a line that fills it would wrap on some terminals and
      // throw off the cursor-up count of the next redraw.
      const width = Math.max(20, this.columns - tail.length - 2)
      out.push(`${head.length > width ? `${head.slice(0, width - 3)}...` : head.padEnd(width)} ${tail}`)
      if (v.ended === undefined) for (const l of v.logs.slice(-6)) out.push(` => => # ${l}`.slice(0, this.columns - 1))
    }
    // Up to the first line we drew last time, clear below, draw again.
    this.write(`${this.#lines > 0 ? `\x1b[${this.#lines}A\r` : ''}\x1b[J${out.join('\n')}\n`)
    this.#lines = out.length
  }

  end(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#draw(true)
  }
}
