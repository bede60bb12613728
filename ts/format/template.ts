/**
 * The subset of Go's `text/template` that `docker ... --format` uses, with docker's
 * function map (`cli/templates`: json, split, join, title, lower, upper, pad, truncate)
 * and Go's builtins (and, or, not, len, index, slice, print, printf, println, eq, ne,
 * lt, le, gt, ge), plus docker's formatter conventions (`table` prefix, header row,
 * `\t`/`\n` escapes, `json` shorthand), see {@link formatItems}.
 *
 * Data model. JS values stand in for Go values:
 *  - `undefined` is Go's "no value" (prints `<no value>`), `null` is nil;
 *  - arrays are slices (`[a b c]`), `Map`s are maps (`map[k:v]`, keys sorted);
 *  - plain objects are structs by default: a missing field is an error, exactly as
 *    docker's typed contexts (`can't evaluate field Foo in type ...`); with
 *    `{ objectsAsMaps: true }` they behave as `map[string]interface{}` (docker inspect's
 *    raw JSON): a missing key is `<no value>` and printing shows `map[...]`;
 *  - a function-valued field is a method: `{{.Label "k"}}` calls it with its arguments.
 *
 * Errors are `StrataError('InvalidArgument')` with Go's messages, prefixed like docker's
 * (`template parsing error: template: :1: function "foo" not defined`).
 */
import { StrataError } from '../errors'
import { formatF, formatG, formatNumber, goQuote } from './gofmt'
import { tabwrite } from './table'

// ---------------------------------------------------------------------------------------
// Lexer

type TokKind =
  | 'field' // .A.B (path in `path`), or "." alone (path empty)
  | 'var' // $x.A (name + path)
  | 'ident'
  | 'string'
  | 'number'
  | 'bool'
  | 'nil'
  | 'pipe'
  | 'lparen'
  | 'rparen'
  | 'declare'
  | 'assign'
  | 'comma'

interface Tok {
  kind: TokKind
  pos: number
  text: string
  /** A space separated this token from the previous one. */
  spaced: boolean
  path?: string[]
  value?: string | number | boolean
}

type Piece = { kind: 'text'; text: string; pos: number } | { kind: 'action'; toks: Tok[]; pos: number; src: string }

class TemplateError extends Error {}

function parseError(src: string, pos: number, msg: string): never {
  const line = 1 + (src.slice(0, pos).match(/\n/g)?.length ?? 0)
  throw new TemplateError(`template: :${line}: ${msg}`)
}

const GO_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'" }

function unquote(src: string, pos: number, body: string): string {
  return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (_m, e: string) => {
    if (e.length > 1) {
      if (e[0] === 'x' || e[0] === 'u' || e[0] === 'U') return String.fromCodePoint(parseInt(e.slice(1), 16))
      return String.fromCharCode(parseInt(e, 8))
    }
    const r = GO_ESCAPES[e]
    if (r === undefined) parseError(src, pos, `invalid syntax`)
    return r
  })
}

function lex(src: string): Piece[] {
  const pieces: Piece[] = []
  let i = 0
  let trimNext = false
  while (i <= src.length) {
    const open = src.indexOf('{{', i)
    let text = open === -1 ? src.slice(i) : src.slice(i, open)
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '')
    trimNext = false
    if (open === -1) {
      if (text !== '') pieces.push({ kind: 'text', text, pos: i })
      break
    }
    let p = open + 2
    if (src[p] === '-' && /[ \t\r\n]/.test(src[p + 1] ?? '')) {
      text = text.replace(/[ \t\r\n]+$/, '')
      p += 2
    }
    if (text !== '') pieces.push({ kind: 'text', text, pos: i })
    // comment
    const afterSpace = src.slice(p).match(/^[ \t\r\n]*/)![0].length
    if (src.startsWith('/*', p + afterSpace) || src.startsWith('/*', p)) {
      const end = src.indexOf('*/', p)
      if (end === -1) parseError(src, p, 'unclosed comment')
      let q = end + 2
      q += src.slice(q).match(/^[ \t\r\n]*/)![0].length
      if (src.startsWith('-}}', q)) {
        trimNext = true
        q += 3
      } else if (src.startsWith('}}', q)) {
        q += 2
      } else {
        parseError(src, q, 'comment ends before closing delimiter')
      }
      i = q
      continue
    }
    const toks: Tok[] = []
    let spaced = true
    for (;;) {
      if (p >= src.length) parseError(src, open, 'unclosed action')
      const c = src[p]!
      if (/[ \t\r\n]/.test(c)) {
        const ws = src.slice(p).match(/^[ \t\r\n]+/)![0]
        if (src.startsWith('-}}', p + ws.length)) {
          trimNext = true
          p += ws.length + 3
          break
        }
        p += ws.length
        spaced = true
        continue
      }
      if (src.startsWith('}}', p)) {
        p += 2
        break
      }
      const start = p
      const push = (t: Omit<Tok, 'pos' | 'spaced'>, len: number): void => {
        toks.push({ ...t, pos: start, spaced })
        spaced = false
        p = start + len
      }
      let m: RegExpMatchArray | null
      if ((m = src.slice(p).match(/^(?:\.[A-Za-z_][A-Za-z0-9_]*)+/))) {
        push({ kind: 'field', text: m[0], path: m[0].slice(1).split('.') }, m[0].length)
      } else if (c === '.' && !/[0-9]/.test(src[p + 1] ?? '')) {
        push({ kind: 'field', text: '.', path: [] }, 1)
      } else if ((m = src.slice(p).match(/^\$[A-Za-z0-9_]*((?:\.[A-Za-z_][A-Za-z0-9_]*)*)/))) {
        const name = m[0].slice(0, m[0].length - m[1]!.length)
        push({ kind: 'var', text: m[0], value: name, path: m[1] ? m[1].slice(1).split('.') : [] }, m[0].length)
      } else if (c === '"') {
        m = src.slice(p).match(/^"(?:[^"\\\n]|\\.)*"/)
        if (!m) parseError(src, p, 'unterminated quoted string')
        push({ kind: 'string', text: m[0], value: unquote(src, p, m[0].slice(1, -1)) }, m[0].length)
      } else if (c === '`') {
        const end = src.indexOf('`', p + 1)
        if (end === -1) parseError(src, p, 'unterminated raw quoted string')
        push({ kind: 'string', text: src.slice(p, end + 1), value: src.slice(p + 1, end) }, end + 1 - p)
      } else if (c === "'") {
        m = src.slice(p).match(/^'(?:[^'\\\n]|\\.[0-9a-fA-F]*)'/)
        if (!m) parseError(src, p, 'unterminated character constant')
        push({ kind: 'number', text: m[0], value: unquote(src, p, m[0].slice(1, -1)).codePointAt(0)! }, m[0].length)
      } else if ((m = src.slice(p).match(/^[-+]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:[0-9][0-9_]*)?\.?[0-9_]+(?:[eE][-+]?[0-9]+)?)/)) && /[0-9]/.test(m[0])) {
        const t = m[0].replace(/_/g, '')
        const v = /^[-+]?0[xXbBoO]/.test(t) ? Number(t.replace(/^([-+]?)0([xXbBoO])/, (_a, s: string, b: string) => `${s}0${b.toLowerCase()}`)) : Number(t)
        if (Number.isNaN(v)) parseError(src, p, `bad number syntax: "${m[0]}"`)
        push({ kind: 'number', text: m[0], value: v }, m[0].length)
      } else if ((m = src.slice(p).match(/^[A-Za-z_][A-Za-z0-9_]*/))) {
        const w = m[0]
        if (w === 'true' || w === 'false') push({ kind: 'bool', text: w, value: w === 'true' }, w.length)
        else if (w === 'nil') push({ kind: 'nil', text: w }, w.length)
        else push({ kind: 'ident', text: w }, w.length)
      } else if (c === '|') push({ kind: 'pipe', text: c }, 1)
      else if (c === '(') push({ kind: 'lparen', text: c }, 1)
      else if (c === ')') push({ kind: 'rparen', text: c }, 1)
      else if (c === ',') push({ kind: 'comma', text: c }, 1)
      else if (src.startsWith(':=', p)) push({ kind: 'declare', text: ':=' }, 2)
      else if (c === '=') push({ kind: 'assign', text: '=' }, 1)
      else parseError(src, p, `unexpected "${c}" in command`)
      // a field directly after `)` or a variable chains onto it: (x).Field
    }
    pieces.push({ kind: 'action', toks, pos: open, src: src.slice(open, p) })
    i = p
  }
  return pieces
}

// ---------------------------------------------------------------------------------------
// Parser

type Arg =
  | { t: 'field'; path: string[]; pos: number; src: string }
  | { t: 'var'; name: string; path: string[]; pos: number; src: string }
  | { t: 'chain'; node: Arg; path: string[]; pos: number; src: string }
  | { t: 'lit'; value: unknown; pos: number; src: string }
  | { t: 'nil'; pos: number; src: string }
  | { t: 'ident'; name: string; pos: number; src: string }
  | { t: 'pipe'; pipe: Pipeline; pos: number; src: string }

interface Command {
  args: Arg[]
  pos: number
}

interface Pipeline {
  decl: string[]
  assign: boolean
  cmds: Command[]
  pos: number
  src: string
}

interface ControlNode {
  t: 'if' | 'with' | 'range'
  pipe: Pipeline
  list: Node[]
  elseList: Node[] | undefined
}

type Node =
  | { t: 'text'; text: string }
  | { t: 'action'; pipe: Pipeline }
  | ControlNode
  | { t: 'break' | 'continue'; pos: number }

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue'])

class Parser {
  private k = 0
  private rangeDepth = 0
  constructor(
    private readonly src: string,
    private readonly pieces: Piece[],
    private readonly funcs: Set<string>,
  ) {}

  parse(): Node[] {
    const [list, stop] = this.list()
    if (stop !== undefined) parseError(this.src, stop.pos, `unexpected {{${stop.toks[0]!.text}}}`)
    return list
  }

  /** Parses until {{end}} / {{else}} (returned) or EOF. */
  private list(): [Node[], Piece & { kind: 'action' } | undefined] {
    const out: Node[] = []
    while (this.k < this.pieces.length) {
      const pc = this.pieces[this.k++]!
      if (pc.kind === 'text') {
        out.push({ t: 'text', text: pc.text })
        continue
      }
      const first = pc.toks[0]
      if (first === undefined) parseError(this.src, pc.pos, 'missing value for command')
      if (first.kind === 'ident' && KEYWORDS.has(first.text)) {
        switch (first.text) {
          case 'end':
          case 'else':
            return [out, pc]
          case 'if':
          case 'with':
          case 'range':
            out.push(this.control(first.text, pc, 1))
            continue
          case 'break':
          case 'continue':
            if (this.rangeDepth === 0) parseError(this.src, pc.pos, `{{${first.text}}} outside {{range}}`)
            out.push({ t: first.text, pos: pc.pos })
            continue
          default:
            parseError(this.src, pc.pos, `{{${first.text}}} is not supported`)
        }
      }
      out.push({ t: 'action', pipe: this.pipeline(pc.toks, 0, pc, true) })
    }
    return [out, undefined]
  }

  private control(kind: 'if' | 'with' | 'range', pc: Piece & { kind: 'action' }, from: number): Node {
    const pipe = this.pipeline(pc.toks, from, pc, kind === 'range' || kind === 'with' || kind === 'if')
    if (kind === 'range') this.rangeDepth++
    const [list, stop] = this.list()
    if (kind === 'range') this.rangeDepth--
    if (stop === undefined) parseError(this.src, this.src.length, `unexpected EOF`)
    let elseList: Node[] | undefined
    if (stop.toks[0]!.text === 'else') {
      if (stop.toks.length > 1) {
        // {{else if ...}} / {{else with ...}}: a nested control that shares our {{end}}.
        const kw = stop.toks[1]!
        if (kw.kind !== 'ident' || (kw.text !== 'if' && kw.text !== 'with') || (kind !== kw.text && kind !== 'if' && kind !== 'with')) {
          parseError(this.src, stop.pos, `unexpected ${stop.toks[1]!.text} in else`)
        }
        elseList = [this.control(kw.text as 'if' | 'with', stop, 2)]
        return { t: kind, pipe, list, elseList }
      }
      const [l2, stop2] = this.list()
      if (stop2 === undefined || stop2.toks[0]!.text !== 'end') parseError(this.src, stop2?.pos ?? this.src.length, stop2 ? 'expected end; found {{else}}' : 'unexpected EOF')
      elseList = l2
    }
    return { t: kind, pipe, list, elseList }
  }

  private pipeline(toks: Tok[], from: number, pc: Piece & { kind: 'action' }, allowDecl: boolean): Pipeline {
    let i = from
    const decl: string[] = []
    let assign = false
    // $x := / $x = / $i, $e :=
    const save = i
    const vars: string[] = []
    while (toks[i]?.kind === 'var' && toks[i]!.path!.length === 0) {
      vars.push(String(toks[i]!.value))
      i++
      if (toks[i]?.kind === 'comma') {
        i++
        continue
      }
      break
    }
    if (vars.length > 0 && (toks[i]?.kind === 'declare' || toks[i]?.kind === 'assign')) {
      if (!allowDecl && vars.length > 1) parseError(this.src, pc.pos, 'too many declarations')
      assign = toks[i]!.kind === 'assign'
      decl.push(...vars)
      i++
    } else {
      i = save
    }
    const end = toks.length
    const { cmds, next } = this.commands(toks, i, end, pc)
    if (next !== end) parseError(this.src, toks[next]!.pos, `unexpected "${toks[next]!.text}" in operand`)
    if (cmds.length === 0) parseError(this.src, pc.pos, 'missing value for command')
    return { decl, assign, cmds, pos: toks[from]?.pos ?? pc.pos, src: pc.src }
  }

  /** Commands separated by `|`, stopping at `)` or the end. */
  private commands(toks: Tok[], i: number, end: number, pc: Piece & { kind: 'action' }): { cmds: Command[]; next: number } {
    const cmds: Command[] = []
    let args: Arg[] = []
    let cmdPos = toks[i]?.pos ?? pc.pos
    const finish = (): void => {
      if (args.length === 0) parseError(this.src, cmdPos, 'missing value for command')
      cmds.push({ args, pos: cmdPos })
      args = []
    }
    while (i < end) {
      const tk = toks[i]!
      if (tk.kind === 'rparen') break
      if (tk.kind === 'pipe') {
        finish()
        i++
        cmdPos = toks[i]?.pos ?? pc.pos
        continue
      }
      if (args.length > 0 && !tk.spaced && tk.kind !== 'field') parseError(this.src, tk.pos, `missing space?`)
      let arg: Arg
      switch (tk.kind) {
        case 'field':
          if (!tk.spaced && args.length > 0) {
            // (x).Field or $x.Field chain
            const prev = args.pop()!
            arg = { t: 'chain', node: prev, path: tk.path!, pos: prev.pos, src: prev.src + tk.text }
          } else {
            arg = { t: 'field', path: tk.path!, pos: tk.pos, src: tk.text }
          }
          i++
          break
        case 'var':
          arg = { t: 'var', name: String(tk.value), path: tk.path!, pos: tk.pos, src: tk.text }
          i++
          break
        case 'string':
        case 'number':
        case 'bool':
          arg = { t: 'lit', value: tk.value, pos: tk.pos, src: tk.text }
          i++
          break
        case 'nil':
          arg = { t: 'nil', pos: tk.pos, src: tk.text }
          i++
          break
        case 'ident':
          if (!this.funcs.has(tk.text)) parseError(this.src, tk.pos, `function "${tk.text}" not defined`)
          arg = { t: 'ident', name: tk.text, pos: tk.pos, src: tk.text }
          i++
          break
        case 'lparen': {
          const inner = this.commands(toks, i + 1, end, pc)
          if (toks[inner.next]?.kind !== 'rparen') parseError(this.src, tk.pos, 'unclosed left paren')
          if (inner.cmds.length === 0) parseError(this.src, tk.pos, 'missing value for parenthesized pipeline')
          const srcText = pc.src.slice(tk.pos - pc.pos, toks[inner.next]!.pos - pc.pos + 1)
          arg = { t: 'pipe', pipe: { decl: [], assign: false, cmds: inner.cmds, pos: tk.pos, src: srcText }, pos: tk.pos, src: srcText }
          i = inner.next + 1
          break
        }
        default:
          parseError(this.src, tk.pos, `unexpected "${tk.text}" in command`)
      }
      args.push(arg)
    }
    if (args.length > 0 || cmds.length > 0) finish()
    return { cmds, next: i }
  }
}

// ---------------------------------------------------------------------------------------
// Go value semantics

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

function hasStringer(v: object): boolean {
  const ts = (v as { toString?: unknown }).toString
  return typeof ts === 'function' && ts !== Object.prototype.toString && ts !== Array.prototype.toString
}

function goTime(d: Date): string {
  const iso = d.toISOString() // YYYY-MM-DDTHH:MM:SS.sssZ
  let frac = iso.slice(20, 23).replace(/0+$/, '')
  frac = frac === '' ? '' : `.${frac}`
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${frac} +0000 UTC`
}

/** Go's `fmt.Sprint` of one value (`%v`). `top` distinguishes `<no value>` from `<nil>`. */
export function goString(v: unknown, objectsAsMaps = false, top = true): string {
  if (v === undefined) return top ? '<no value>' : '<nil>'
  if (v === null) return top ? '<no value>' : '<nil>'
  switch (typeof v) {
    case 'string':
      return v
    case 'number':
      return formatNumber(v)
    case 'bigint':
      return v.toString()
    case 'boolean':
      return v ? 'true' : 'false'
    case 'function':
      throw new TemplateError(`can't print value of type func`)
    default:
  }
  if (v instanceof Date) return goTime(v)
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return `[${Array.from(v as ArrayLike<unknown>, (e) => goString(e, objectsAsMaps, false)).join(' ')}]`
  if (v instanceof Map) {
    const keys = [...v.keys()].sort(compareKeys)
    return `map[${keys.map((k) => `${goString(k, objectsAsMaps, false)}:${goString(v.get(k), objectsAsMaps, false)}`).join(' ')}]`
  }
  if (isPlainObject(v)) {
    if (objectsAsMaps) {
      const keys = Object.keys(v).sort(compareKeys)
      return `map[${keys.map((k) => `${k}:${goString(v[k], objectsAsMaps, false)}`).join(' ')}]`
    }
    return `{${Object.values(v).map((e) => goString(e, objectsAsMaps, false)).join(' ')}}`
  }
  if (hasStringer(v as object)) return String(v)
  return `{${Object.values(v as object).map((e) => goString(e, objectsAsMaps, false)).join(' ')}}`
}

function compareKeys(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b
  const x = String(a)
  const y = String(b)
  return x < y ? -1 : x > y ? 1 : 0
}

export interface GoJsonOptions {
  /** `json.Marshal` escapes `<`, `>`, `&` as `\u003c`...; docker's `json` template function does not. */
  escapeHTML?: boolean
}

/**
 * Go's `encoding/json`, by default with `SetEscapeHTML(false)` as docker's `json` template
 * function. Plain objects keep their key order (Go structs), `Map`s are sorted (Go maps),
 * `undefined` members are omitted, a `MarshalJSON(): string` method is embedded verbatim
 * (Go's `json.Marshaler`), `toJSON()` is honoured, Dates are RFC 3339.
 */
export function goJson(v: unknown, opts: GoJsonOptions = {}): string {
  const str = (x: string): string => {
    let q = JSON.stringify(x).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')
    if (opts.escapeHTML) q = q.replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`)
    return q
  }
  const enc = (x: unknown): string | undefined => {
    if (x === null) return 'null'
    if (typeof x === 'object' && typeof (x as { MarshalJSON?: unknown }).MarshalJSON === 'function') {
      return String((x as { MarshalJSON(): unknown }).MarshalJSON())
    }
    if (x !== undefined && typeof (x as { toJSON?: unknown }).toJSON === 'function' && !(x instanceof Date)) {
      x = (x as { toJSON(): unknown }).toJSON()
    }
    switch (typeof x) {
      case 'undefined':
      case 'function':
      case 'symbol':
        return undefined
      case 'string':
        return str(x)
      case 'number':
        if (!Number.isFinite(x)) throw new TemplateError(`json: unsupported value: ${formatG(x, -1)}`)
        return String(x)
      case 'bigint':
        return x.toString()
      case 'boolean':
        return x ? 'true' : 'false'
      default:
    }
    if (x instanceof Date) {
      const iso = x.toISOString()
      return `"${iso.slice(0, 19)}${iso.slice(19, 23).replace(/\.?0+$/, '')}Z"`
    }
    if (Array.isArray(x) || ArrayBuffer.isView(x)) return `[${Array.from(x as ArrayLike<unknown>, (e) => enc(e) ?? 'null').join(',')}]`
    const entries: Array<[string, unknown]> =
      x instanceof Map ? [...x.entries()].map(([k, e]) => [String(k), e] as [string, unknown]).sort((a, b) => compareKeys(a[0], b[0])) : Object.entries(x as object)
    const parts: string[] = []
    for (const [k, e] of entries) {
      const s = enc(e)
      if (s !== undefined) parts.push(`${str(k)}:${s}`)
    }
    return `{${parts.join(',')}}`
  }
  return enc(v) ?? 'null'
}

/**
 * docker's `formatter.MarshalJSON` for a formatter context (what `--format json` and
 * `{{json .}}` print for `docker images`/`ps`/`history`): every exported (capitalised)
 * zero-argument method or getter, plus own data fields, as a Go map — keys sorted and
 * `json.Marshal`'s HTML escaping (`"\u003cnone\u003e"`). Give a context class
 * `MarshalJSON() { return marshalContext(this) }` to get this from `goJson`/`{{json .}}`.
 */
export function marshalContext(ctx: object): string {
  const m = new Map<string, unknown>()
  const seen = new Set<string>()
  for (let o: object | null = ctx; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const name of Object.getOwnPropertyNames(o)) {
      if (seen.has(name)) continue
      seen.add(name)
      if (!/^\p{Lu}/u.test(name) || name === 'MarshalJSON' || name === 'FullHeader') continue
      const desc = Object.getOwnPropertyDescriptor(o, name)!
      let v: unknown
      if (desc.get) v = desc.get.call(ctx)
      else if (typeof desc.value === 'function') {
        if ((desc.value as (...a: unknown[]) => unknown).length !== 0) continue
        v = (desc.value as () => unknown).call(ctx)
      } else if (o === ctx && desc.enumerable) v = desc.value
      else continue
      m.set(name, v === undefined ? null : v)
    }
  }
  return goJson(m, { escapeHTML: true })
}

/** Go template truth: false, 0, nil, empty string/slice/map are false; structs are true. */
function truth(v: unknown): boolean {
  if (v === undefined || v === null) return false
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0
  if (typeof v === 'bigint') return v !== 0n
  if (typeof v === 'string') return v.length > 0
  if (Array.isArray(v)) return v.length > 0
  if (v instanceof Map) return v.size > 0
  return true
}

function goType(v: unknown, objectsAsMaps: boolean): string {
  if (v === undefined || v === null) return '<nil>'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float64'
  if (typeof v === 'boolean') return 'bool'
  if (typeof v === 'function') return 'func'
  if (Array.isArray(v)) return '[]interface {}'
  if (v instanceof Map || (objectsAsMaps && isPlainObject(v))) return 'map[string]interface {}'
  return (v as object).constructor?.name && (v as object).constructor !== Object ? (v as object).constructor.name : 'struct'
}

// ---------------------------------------------------------------------------------------
// printf (the verbs people use in docker formats)

function sprintf(format: string, args: unknown[], objectsAsMaps: boolean): string {
  let ai = 0
  return format.replace(/%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])/g, (_m, flags: string, width: string | undefined, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%'
    let w = width === '*' ? Number(args[ai++]) : width !== undefined ? Number(width) : undefined
    const pr = prec === '*' ? Number(args[ai++]) : prec !== undefined ? Number(prec) : _m.includes('.') ? 0 : undefined
    if (ai >= args.length) return `%!${verb}(MISSING)`
    const a = args[ai++]
    let s: string
    switch (verb) {
      case 'v':
      case 's':
        s = typeof a === 'number' && verb === 's' ? `%!s(${goType(a, objectsAsMaps)}=${formatNumber(a)})` : goString(a, objectsAsMaps, false)
        if (pr !== undefined && typeof a === 'string') s = Array.from(s).slice(0, pr).join('')
        break
      case 'q':
        s = goQuote(typeof a === 'string' ? a : goString(a, objectsAsMaps, false))
        break
      case 'd':
        s = typeof a === 'number' && Number.isInteger(a) ? a.toFixed(0) : `%!d(${goType(a, objectsAsMaps)}=${goString(a, objectsAsMaps, false)})`
        break
      case 'x':
      case 'X':
        s = typeof a === 'number' ? Math.trunc(a).toString(16) : Buffer.from(String(a)).toString('hex')
        if (verb === 'X') s = s.toUpperCase()
        break
      case 'f':
      case 'F':
        s = typeof a === 'number' ? formatF(a, pr ?? 6) : `%!f(${goType(a, objectsAsMaps)}=${goString(a, objectsAsMaps, false)})`
        break
      case 'g':
        s = typeof a === 'number' ? formatG(a, pr ?? -1) : `%!g(${goType(a, objectsAsMaps)}=${goString(a, objectsAsMaps, false)})`
        break
      case 't':
        s = typeof a === 'boolean' ? String(a) : `%!t(${goType(a, objectsAsMaps)}=${goString(a, objectsAsMaps, false)})`
        break
      default:
        s = `%!${verb}(${goType(a, objectsAsMaps)}=${goString(a, objectsAsMaps, false)})`
    }
    if (w !== undefined && s.length < w) {
      if (w < 0) {
        flags += '-'
        w = -w
      }
      if (flags.includes('-')) s = s.padEnd(w, ' ')
      else if (flags.includes('0') && /^[dfFgxX]$/.test(verb)) s = s.startsWith('-') ? '-' + s.slice(1).padStart(w - 1, '0') : s.padStart(w, '0')
      else s = s.padStart(w, ' ')
    }
    return s
  }) + (ai < args.length ? `%!(EXTRA ${args.slice(ai).map((a) => `${goType(a, objectsAsMaps)}=${goString(a, objectsAsMaps, false)}`).join(', ')})` : '')
}

/** fmt.Sprint: spaces between operands when neither side is a string. */
function sprint(args: unknown[], objectsAsMaps: boolean): string {
  let s = ''
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string') s += ' '
    s += goString(a, objectsAsMaps, false)
  })
  return s
}

// ---------------------------------------------------------------------------------------
// Functions

type Fn = (args: unknown[], ctx: ExecContext) => unknown

interface ExecContext {
  objectsAsMaps: boolean
}

function wantString(name: string, v: unknown): string {
  if (typeof v !== 'string') throw new TemplateError(`error calling ${name}: wrong type for value; expected string; got ${goType(v, false)}`)
  return v
}

function wantInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TemplateError(`error calling ${name}: wrong type for value; expected int; got ${goType(v, false)}`)
  return v
}

function arity(name: string, args: unknown[], n: number): void {
  if (args.length !== n) throw new TemplateError(`wrong number of args for ${name}: want ${n} got ${args.length}`)
}

function basicKind(v: unknown): string {
  if (typeof v === 'number') return 'number'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'boolean') return 'bool'
  if (v === null || v === undefined) return 'nil'
  return 'other'
}

function compare(name: string, a: unknown, b: unknown): number {
  const ka = basicKind(a)
  const kb = basicKind(b)
  if (ka !== kb) throw new TemplateError(`error calling ${name}: incompatible types for comparison`)
  if (ka === 'other' || ka === 'nil' || (ka === 'bool' && name !== 'eq' && name !== 'ne')) throw new TemplateError(`error calling ${name}: invalid type for comparison`)
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0
}

function titleCase(s: string): string {
  // strings.Title: upper-case the first letter of each word (words split on non-letters).
  return s.replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_m, sep: string, l: string) => sep + l.toUpperCase())
}

const BUILTINS: Record<string, Fn> = {
  and: (args) => {
    if (args.length < 1) throw new TemplateError('wrong number of args for and: want at least 1 got 0')
    for (const a of args) if (!truth(a)) return a
    return args[args.length - 1]
  },
  or: (args) => {
    if (args.length < 1) throw new TemplateError('wrong number of args for or: want at least 1 got 0')
    for (const a of args) if (truth(a)) return a
    return args[args.length - 1]
  },
  not: (args) => (arity('not', args, 1), !truth(args[0])),
  len: (args) => {
    arity('len', args, 1)
    const v = args[0]
    if (typeof v === 'string') return Buffer.byteLength(v)
    if (Array.isArray(v)) return v.length
    if (v instanceof Map) return v.size
    if (isPlainObject(v)) return Object.keys(v).length
    throw new TemplateError(`error calling len: len of type ${goType(v, false)}`)
  },
  index: (args, ctx) => {
    if (args.length < 1) throw new TemplateError('wrong number of args for index: want at least 1 got 0')
    let v = args[0]
    for (const k of args.slice(1)) {
      if (v === undefined || v === null) throw new TemplateError('error calling index: index of untyped nil')
      if (Array.isArray(v) || typeof v === 'string') {
        const n = wantInt('index', k)
        const len = typeof v === 'string' ? Buffer.byteLength(v) : v.length
        if (n < 0 || n >= len) throw new TemplateError(`error calling index: index out of range: ${n}`)
        v = typeof v === 'string' ? Buffer.from(v)[n] : v[n]
      } else if (v instanceof Map) {
        v = v.get(k)
      } else if (isPlainObject(v)) {
        v = Object.prototype.hasOwnProperty.call(v, String(k)) ? v[String(k)] : undefined
      } else {
        throw new TemplateError(`error calling index: can't index item of type ${goType(v, ctx.objectsAsMaps)}`)
      }
    }
    return v
  },
  slice: (args) => {
    if (args.length < 1) throw new TemplateError('wrong number of args for slice: want at least 1 got 0')
    const v = args[0]
    const idx = args.slice(1).map((a) => wantInt('slice', a))
    if (typeof v !== 'string' && !Array.isArray(v)) throw new TemplateError(`error calling slice: can't slice item of type ${goType(v, false)}`)
    const len = v.length
    const lo = idx[0] ?? 0
    const hi = idx[1] ?? len
    if (lo < 0 || hi < lo || hi > len) throw new TemplateError(`error calling slice: index out of range: ${hi > len ? hi : lo}`)
    return v.slice(lo, hi)
  },
  print: (args, ctx) => sprint(args, ctx.objectsAsMaps),
  println: (args, ctx) => args.map((a) => goString(a, ctx.objectsAsMaps, false)).join(' ') + '\n',
  printf: (args, ctx) => {
    if (args.length < 1) throw new TemplateError('wrong number of args for printf: want at least 1 got 0')
    return sprintf(wantString('printf', args[0]), args.slice(1), ctx.objectsAsMaps)
  },
  eq: (args) => {
    if (args.length < 2) throw new TemplateError('missing argument for comparison')
    return args.slice(1).some((b) => compare('eq', args[0], b) === 0 && args[0] === b)
  },
  ne: (args) => (arity('ne', args, 2), compare('ne', args[0], args[1]) !== 0 || args[0] !== args[1]),
  lt: (args) => (arity('lt', args, 2), compare('lt', args[0], args[1]) < 0),
  le: (args) => (arity('le', args, 2), compare('le', args[0], args[1]) <= 0),
  gt: (args) => (arity('gt', args, 2), compare('gt', args[0], args[1]) > 0),
  ge: (args) => (arity('ge', args, 2), compare('ge', args[0], args[1]) >= 0),
  // docker/cli templates.basicFunctions
  json: (args) => (arity('json', args, 1), goJson(args[0])),
  split: (args) => {
    arity('split', args, 2)
    const s = wantString('split', args[0])
    const sep = wantString('split', args[1])
    return sep === '' ? Array.from(s) : s.split(sep)
  },
  join: (args, ctx) => {
    arity('join', args, 2)
    const list = args[0]
    if (!Array.isArray(list)) throw new TemplateError(`error calling join: wrong type for value; expected []string; got ${goType(list, ctx.objectsAsMaps)}`)
    return list.map((e) => wantString('join', e)).join(wantString('join', args[1]))
  },
  title: (args) => (arity('title', args, 1), titleCase(wantString('title', args[0]))),
  lower: (args) => (arity('lower', args, 1), wantString('lower', args[0]).toLowerCase()),
  upper: (args) => (arity('upper', args, 1), wantString('upper', args[0]).toUpperCase()),
  pad: (args) => {
    arity('pad', args, 3)
    const s = wantString('pad', args[0])
    if (s === '') return s
    return ' '.repeat(Math.max(0, wantInt('pad', args[1]))) + s + ' '.repeat(Math.max(0, wantInt('pad', args[2])))
  },
  truncate: (args) => {
    arity('truncate', args, 2)
    const s = wantString('truncate', args[0])
    const n = wantInt('truncate', args[1])
    const b = Buffer.from(s)
    return b.length < n ? s : b.subarray(0, n).toString()
  },
}

/** docker's `templates.HeaderFunctions`: formatting functions are identities on the header text. */
const HEADER_FUNCTIONS: Record<string, Fn> = {
  json: (args) => args[0],
  split: (args) => args[0],
  join: (args) => args[0],
  title: (args) => args[0],
  lower: (args) => args[0],
  upper: (args) => args[0],
  truncate: (args) => args[0],
  pad: (args) => args[0],
}

// ---------------------------------------------------------------------------------------
// Executor

export interface TemplateOptions {
  /** Treat plain objects as Go maps (docker inspect's raw JSON); default: structs. */
  objectsAsMaps?: boolean
  /** Go type name shown in "can't evaluate field" errors (`*formatter.imageContext`). */
  typeName?: string
  /** Extra functions, `(...args) => value`. */
  funcs?: Record<string, (...args: unknown[]) => unknown>
}

class Break {}
class Continue {}

class Exec {
  out = ''
  vars: Array<[string, unknown]> = []
  constructor(
    readonly fns: Record<string, Fn>,
    readonly opts: TemplateOptions,
    readonly ctx: ExecContext,
    readonly header: boolean,
  ) {}

  fail(at: { pos: number; src: string }, src: string, msg: string): never {
    const before = src.slice(0, at.pos)
    const nl = before.lastIndexOf('\n')
    const line = 1 + (before.match(/\n/g)?.length ?? 0)
    const col = nl === -1 ? at.pos : at.pos - (nl + 1)
    throw new TemplateError(`template: :${line}:${col}: executing "" at <${at.src}>: ${msg}`)
  }

  walk(nodes: Node[], dot: unknown, src: string): void {
    for (const n of nodes) {
      switch (n.t) {
        case 'text':
          this.out += n.text
          break
        case 'action': {
          const v = this.pipeline(n.pipe, dot, src)
          if (n.pipe.decl.length === 0) this.print(v, n.pipe, src)
          break
        }
        case 'if':
        case 'with': {
          const mark = this.vars.length
          const v = this.pipeline(n.pipe, dot, src)
          if (truth(v)) this.walk(n.list, n.t === 'with' ? v : dot, src)
          else if (n.elseList) this.walk(n.elseList, dot, src)
          this.vars.length = mark
          break
        }
        case 'range':
          this.range(n, dot, src)
          break
        case 'break':
          throw new Break()
        case 'continue':
          throw new Continue()
      }
    }
  }

  range(n: ControlNode, dot: unknown, src: string): void {
    const mark = this.vars.length
    const pipe = { ...n.pipe, decl: [] }
    const v = this.pipeline(pipe, dot, src)
    let entries: Array<[unknown, unknown]>
    if (Array.isArray(v)) entries = v.map((e, i) => [i, e])
    else if (v instanceof Map) entries = [...v.keys()].sort(compareKeys).map((k) => [k, v.get(k)])
    else if (isPlainObject(v) && this.ctx.objectsAsMaps) entries = Object.keys(v).sort(compareKeys).map((k) => [k, v[k]])
    else if (typeof v === 'number' && Number.isInteger(v)) entries = Array.from({ length: Math.max(0, v) }, (_x, i) => [i, i])
    else if (v === undefined || v === null) entries = []
    else this.fail(n.pipe, src, `range can't iterate over ${goString(v, this.ctx.objectsAsMaps)}`)
    if (entries.length === 0) {
      if (n.elseList) this.walk(n.elseList, dot, src)
      return
    }
    for (const [k, e] of entries) {
      this.vars.length = mark
      if (n.pipe.decl.length === 1) this.vars.push([n.pipe.decl[0]!, e])
      else if (n.pipe.decl.length === 2) this.vars.push([n.pipe.decl[0]!, k], [n.pipe.decl[1]!, e])
      try {
        this.walk(n.list, e, src)
      } catch (err) {
        if (err instanceof Break) break
        if (!(err instanceof Continue)) throw err
      }
    }
    this.vars.length = mark
  }

  print(v: unknown, at: { pos: number; src: string }, src: string): void {
    try {
      this.out += goString(v, this.ctx.objectsAsMaps)
    } catch (err) {
      if (err instanceof TemplateError) this.fail(at, src, err.message)
      throw err
    }
  }

  pipeline(p: Pipeline, dot: unknown, src: string): unknown {
    let v: unknown = undefined
    let has = false
    for (const c of p.cmds) {
      v = this.command(c, dot, src, has ? [v] : [])
      has = true
    }
    if (p.decl.length > 0) {
      const name = p.decl[0]!
      if (p.assign) {
        let i = this.vars.length - 1
        while (i >= 0 && this.vars[i]![0] !== name) i--
        if (i < 0) this.fail(p, src, `undefined variable: ${name}`)
        this.vars[i]![1] = v
      } else {
        this.vars.push([name, v])
      }
    }
    return v
  }

  command(c: Command, dot: unknown, src: string, final: unknown[]): unknown {
    const [head, ...rest] = c.args
    if (head === undefined) return undefined
    if (head.t === 'nil') this.fail(head, src, 'nil is not a command')
    if (head.t === 'ident') {
      const fn = this.fns[head.name]
      if (fn === undefined) this.fail(head, src, `"${head.name}" is not a defined function`)
      if ((head.name === 'and' || head.name === 'or') && this.fns[head.name] === BUILTINS[head.name]) {
        // Go 1.18+: and/or stop evaluating at the first argument that decides the result,
        // so `{{if and .X .X.Y}}` does not fail when .X is nil.
        const want = head.name === 'or'
        const thunks: Array<() => unknown> = [...rest.map((a) => () => this.arg(a, dot, src, [])), ...final.map((v) => () => v)]
        if (thunks.length === 0) this.fail(head, src, `wrong number of args for ${head.name}: want at least 1 got 0`)
        let v: unknown
        for (const th of thunks) {
          v = th()
          if (truth(v) === want) return v
        }
        return v
      }
      const args = [...rest.map((a) => this.arg(a, dot, src, [])), ...final]
      try {
        return fn(args, this.ctx)
      } catch (err) {
        if (err instanceof TemplateError && !err.message.startsWith('template:')) this.fail(head, src, err.message)
        throw err
      }
    }
    const args = [...rest.map((a) => this.arg(a, dot, src, [])), ...final]
    if (head.t === 'field' || head.t === 'chain' || (head.t === 'var' && head.path.length > 0)) return this.arg(head, dot, src, args)
    if (args.length > 0) {
      if (this.header) return this.arg(head, dot, src, [])
      this.fail(head, src, `can't give argument to non-function ${head.src}`)
    }
    return this.arg(head, dot, src, [])
  }

  arg(a: Arg, dot: unknown, src: string, args: unknown[]): unknown {
    switch (a.t) {
      case 'lit':
        return a.value
      case 'nil':
        return null
      case 'ident': {
        const fn = this.fns[a.name]!
        try {
          return fn(args, this.ctx)
        } catch (err) {
          if (err instanceof TemplateError && !err.message.startsWith('template:')) this.fail(a, src, err.message)
          throw err
        }
      }
      case 'pipe':
        return this.pipeline(a.pipe, dot, src)
      case 'var': {
        let i = this.vars.length - 1
        const name = a.name
        let base: unknown
        if (name === '$') base = this.root
        else {
          while (i >= 0 && this.vars[i]![0] !== name) i--
          if (i < 0) this.fail(a, src, `undefined variable: ${name}`)
          base = this.vars[i]![1]
        }
        return this.fields(base, a.path, a, src, args)
      }
      case 'field':
        return this.fields(dot, a.path, a, src, args)
      case 'chain':
        return this.fields(this.arg(a.node, dot, src, []), a.path, a, src, args)
    }
    return undefined
  }

  root: unknown = undefined

  fields(base: unknown, path: string[], at: { pos: number; src: string }, src: string, args: unknown[]): unknown {
    let v = base
    if (path.length === 0 && args.length > 0 && !this.header) this.fail(at, src, `can't give argument to non-function ${at.src}`)
    path.forEach((name, i) => {
      const last = i === path.length - 1
      v = this.field(v, name, last ? args : [], at, src)
    })
    return v
  }

  field(recv: unknown, name: string, args: unknown[], at: { pos: number; src: string }, src: string): unknown {
    const asMap = this.ctx.objectsAsMaps || this.header
    if (recv === undefined) {
      return undefined
    }
    if (recv === null) this.fail(at, src, `nil pointer evaluating interface {}.${name}`)
    if (recv instanceof Map) {
      if (args.length > 0) this.fail(at, src, `${name} is not a method but has arguments`)
      return recv.get(name)
    }
    if (typeof recv === 'object') {
      const obj = recv as Record<string, unknown>
      if (name in obj) {
        const v = obj[name]
        if (typeof v === 'function') {
          try {
            return (v as (...a: unknown[]) => unknown).apply(recv, args)
          } catch (err) {
            if (err instanceof TemplateError) throw err
            this.fail(at, src, `error calling ${name}: ${err instanceof Error ? err.message : String(err)}`)
          }
        }
        if (args.length > 0 && !this.header) this.fail(at, src, `${name} has arguments but cannot be invoked as function`)
        return v
      }
      if (asMap && isPlainObject(recv)) {
        if (args.length > 0 && !this.header) this.fail(at, src, `${name} is not a method but has arguments`)
        return undefined
      }
    }
    const type = recv === this.root && this.opts.typeName !== undefined ? this.opts.typeName : goType(recv, this.ctx.objectsAsMaps)
    this.fail(at, src, `can't evaluate field ${name} in type ${type}`)
  }
}

/** A parsed template; `execute` may be called any number of times. */
export class Template {
  readonly #nodes: Node[]
  readonly #src: string
  readonly #opts: TemplateOptions
  readonly #fns: Record<string, Fn>

  constructor(source: string, opts: TemplateOptions = {}) {
    this.#src = source
    this.#opts = opts
    const fns: Record<string, Fn> = { ...BUILTINS }
    for (const [k, f] of Object.entries(opts.funcs ?? {})) fns[k] = (args) => f(...args)
    this.#fns = fns
    try {
      this.#nodes = new Parser(source, lex(source), new Set(Object.keys(fns))).parse()
    } catch (err) {
      if (err instanceof TemplateError) throw new StrataError('InvalidArgument', `template parsing error: ${err.message}`, { cause: err })
      throw err
    }
  }

  /** Executes the template with `data` as dot. */
  execute(data: unknown): string {
    return this.#run(data, this.#fns, false)
  }

  /** Executes against a header map with docker's HeaderFunctions (for `table` formats). */
  executeHeader(headers: Record<string, string>): string {
    return this.#run(headers, { ...this.#fns, ...HEADER_FUNCTIONS }, true)
  }

  #run(data: unknown, fns: Record<string, Fn>, header: boolean): string {
    const ex = new Exec(fns, this.#opts, { objectsAsMaps: this.#opts.objectsAsMaps ?? false }, header)
    ex.root = data
    try {
      ex.walk(this.#nodes, data, this.#src)
    } catch (err) {
      if (err instanceof TemplateError) throw new StrataError('InvalidArgument', err.message, { cause: err })
      throw err
    }
    return ex.out
  }
}

/** Parses and executes a Go template in one call. */
export function executeTemplate(source: string, data: unknown, opts: TemplateOptions = {}): string {
  return new Template(source, opts).execute(data)
}

// ---------------------------------------------------------------------------------------
// docker formatter.Context

/** True for docker's `table ...` formats. */
export function isTableFormat(format: string): boolean {
  return format.startsWith('table')
}

/**
 * `formatter.Context.preFormat`: strips `table`, maps `json` to `{{json .}}`, trims spaces
 * and turns the two-character sequences `\t` and `\n` typed on a command line into a tab
 * and a newline.
 */
export function preFormat(format: string): string {
  let f = format
  if (isTableFormat(f)) f = f.slice('table'.length)
  else if (f === 'json') f = '{{json .}}'
  f = f.replace(/^ +| +$/g, '')
  return f.replace(/\\t|\\n/g, (m) => (m === '\\t' ? '\t' : '\n'))
}

export interface FormatItemsOptions extends TemplateOptions {
  /** Column headers by field name (`ID: 'IMAGE ID'`, `Repository: 'REPOSITORY'`, ...). */
  headers?: Record<string, string>
}

/**
 * docker's formatter.Context end to end: each item rendered with the template followed by a
 * newline; for `table` formats a header row (the template run against `headers`) and the
 * whole output through the docker tabwriter. An empty list still prints the header.
 */
export function formatItems(format: string, items: readonly unknown[], opts: FormatItemsOptions = {}): string {
  const tpl = new Template(preFormat(format), opts)
  let body = ''
  try {
    for (const it of items) body += tpl.execute(it) + '\n'
  } catch (err) {
    // docker wraps execution errors with the same prefix as parse errors (contextFormat)
    if (err instanceof StrataError) throw new StrataError(err.code, `template parsing error: ${err.message}`, { cause: err })
    throw err
  }
  if (!isTableFormat(format)) return body
  const header = tpl.executeHeader(opts.headers ?? {})
  return tabwrite(header + '\n' + body)
}
