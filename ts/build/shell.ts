/**
 * Docker's variable substitution and word splitting for Dockerfile instructions (the shell
 * lexer of BuildKit's Dockerfile frontend, `frontend/dockerfile/shell/lex.go`): quotes
 * (`'...'`, `"..."`), the escape token (`\` or the `# escape=` one), `$V`, `${V}`,
 * `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?msg}`, `${V?msg}`, and `\$`.
 *
 * It is not a shell: nothing runs, `$(...)` and backquotes are plain text. `processWord` keeps
 * spaces and returns one string (ENV values, COPY paths, WORKDIR, ...); `processWords` also
 * splits the result into words after substitution (EXPOSE). With `rawQuotes` the quotes stay in
 * the output, and with `skipUnsetEnv` unset variables stay as written (how the progress output
 * names a RUN step).
 */

export interface LexOptions {
  /** The escape token: `\` (default) or `` ` ``. */
  escape?: string
  rawQuotes?: boolean
  skipUnsetEnv?: boolean
}

/** A substitution error (`${V:?msg}` of an unset V, `${}`, an unterminated quote). */
export class ShellSyntaxError extends Error {}

const EOF = ''

/** Go's `unicode.IsSpace`. */
export function isSpace(ch: string): boolean {
  return /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u.test(ch)
}

function isLetter(ch: string): boolean {
  return /^\p{L}$/u.test(ch)
}

function isDigit(ch: string): boolean {
  return /^\p{Nd}$/u.test(ch)
}

/** POSIX special parameters: `$@ $* $# $? $- $$ $! $0`. */
function isSpecialParam(ch: string): boolean {
  return '@*#?-$!0'.includes(ch) && ch !== ''
}

/** `K=V` lines to a map (a later key wins; a line without `=` is an empty value). */
export function envMap(env: readonly string[]): Map<string, string> {
  const m = new Map<string, string>()
  for (const e of env) {
    const i = e.indexOf('=')
    if (i < 0) m.set(e, '')
    else m.set(e.slice(0, i), e.slice(i + 1))
  }
  return m
}

class Words {
  word = ''
  words: string[] = []
  inWord = false
  addChar(ch: string): void {
    if (isSpace(ch) && this.inWord) {
      if (this.word.length !== 0) {
        this.words.push(this.word)
        this.word = ''
        this.inWord = false
      }
    } else if (!isSpace(ch)) this.addRawChar(ch)
  }
  addRawChar(ch: string): void {
    this.word += ch
    this.inWord = true
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch)
  }
  addRawString(s: string): void {
    this.word += s
    this.inWord = true
  }
  get(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word)
      this.word = ''
      this.inWord = false
    }
    return this.words
  }
}

class Lexer {
  readonly #chars: string[]
  #pos = 0
  constructor(text: string, private readonly env: Map<string, string>, private readonly escape: string, private readonly rawQuotes: boolean, private readonly skipUnset: boolean) {
    this.#chars = [...text]
  }

  peek(): string { return this.#pos < this.#chars.length ? this.#chars[this.#pos] : EOF }
  next(): string { return this.#pos < this.#chars.length ? this.#chars[this.#pos++] : EOF }

  getEnv(name: string): string | undefined {
    return this.env.get(name)
  }

  processStopOn(stop: string): { word: string; words: string[] } {
    let result = ''
    const words = new Words()
    while (this.peek() !== EOF) {
      const ch = this.peek()
      if (stop !== EOF && ch === stop) {
        this.next()
        return { word: result, words: words.get() }
      }
      if (ch === "'" || ch === '"' || ch === '$') {
        const tmp = ch === "'" ? this.singleQuote() : ch === '"' ? this.doubleQuote() : this.dollar()
        result += tmp
        if (ch === '$') words.addString(tmp)
        else words.addRawString(tmp)
        continue
      }
      let c = this.next()
      if (c === this.escape) {
        // The escape token escapes the next character (a trailing one is dropped).
        c = this.next()
        if (c === EOF) break
        words.addRawChar(c)
      } else words.addChar(c)
      result += c
    }
    if (stop !== EOF) throw new ShellSyntaxError(`unexpected end of statement while looking for matching ${stop}`)
    return { word: result, words: words.get() }
  }

  singleQuote(): string {
    let result = ''
    const open = this.next()
    if (this.rawQuotes) result += open
    for (;;) {
      const ch = this.next()
      if (ch === EOF) throw new ShellSyntaxError('unexpected end of statement while looking for matching single-quote')
      if (ch === "'") {
        if (this.rawQuotes) result += ch
        return result
      }
      result += ch
    }
  }

  doubleQuote(): string {
    let result = ''
    const open = this.next()
    if (this.rawQuotes) result += open
    for (;;) {
      const p = this.peek()
      if (p === EOF) throw new ShellSyntaxError('unexpected end of statement while looking for matching double-quote')
      if (p === '"') {
        const ch = this.next()
        if (this.rawQuotes) result += ch
        return result
      }
      if (p === '$') {
        result += this.dollar()
        continue
      }
      let ch = this.next()
      if (ch === this.escape) {
        const q = this.peek()
        if (q === EOF) continue // a trailing escape is dropped
        // Only `"`, `$` and the escape token itself can be escaped inside double quotes.
        if (q === '"' || q === '$' || q === this.escape) ch = this.next()
      }
      result += ch
    }
  }

  dollar(): string {
    this.next()
    if (this.peek() !== '{') {
      const name = this.name()
      if (name === '') return '$'
      const v = this.getEnv(name)
      if (v === undefined && this.skipUnset) return `$${name}`
      return v ?? ''
    }
    this.next()
    const first = this.peek()
    if (first === EOF) throw new ShellSyntaxError("syntax error: missing '}'")
    if (first === '{' || first === '}' || first === ':') throw new ShellSyntaxError('syntax error: bad substitution')
    const name = this.name()
    const ch = this.next()
    const stopWord = (): string => {
      try {
        return this.processStopOn('}').word
      } catch (e) {
        if (this.peek() === EOF) throw new ShellSyntaxError("syntax error: missing '}'")
        throw e
      }
    }
    if (ch === '}') {
      const v = this.getEnv(name)
      if (v === undefined && this.skipUnset) return `\${${name}}`
      return v ?? ''
    }
    if (ch === '?') {
      const word = stopWord()
      const v = this.getEnv(name)
      if (v === undefined) {
        if (this.skipUnset) return `\${${name}?${word}}`
        throw new ShellSyntaxError(`${name}: ${word || 'is not allowed to be unset'}`)
      }
      return v
    }
    if (ch === '-' || ch === '+') {
      // `${V-w}` / `${V+w}`: test for set (not for empty) — the newer frontend's forms.
      const word = stopWord()
      const v = this.getEnv(name)
      if (v === undefined && this.skipUnset) return `\${${name}${ch}${word}}`
      if (ch === '-') return v === undefined ? word : v
      return v === undefined ? '' : word
    }
    if (ch === ':') {
      const modifier = this.next()
      const word = stopWord()
      const v = this.getEnv(name)
      const found = v !== undefined
      let value = v ?? ''
      switch (modifier) {
        case '+':
          if (value !== '') value = word
          if (!found && this.skipUnset) return `\${${name}:${modifier}${word}}`
          return value
        case '-':
          if (value === '') value = word
          if (!found && this.skipUnset) return `\${${name}:${modifier}${word}}`
          return value
        case '?':
          if (!found) {
            if (this.skipUnset) return `\${${name}:${modifier}${word}}`
            throw new ShellSyntaxError(`${name}: ${word || 'is not allowed to be unset'}`)
          }
          if (value === '') throw new ShellSyntaxError(`${name}: ${word || 'is not allowed to be empty'}`)
          return value
        default:
          throw new ShellSyntaxError(`unsupported modifier (${modifier}) in substitution`)
      }
    }
    throw new ShellSyntaxError("missing ':' in substitution")
  }

  name(): string {
    let name = ''
    while (this.peek() !== EOF) {
      const ch = this.peek()
      if (name.length === 0 && isDigit(ch)) {
        while (this.peek() !== EOF && isDigit(this.peek())) name += this.next()
        return name
      }
      if (name.length === 0 && isSpecialParam(ch)) return this.next()
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break
      name += this.next()
    }
    return name
  }
}

function lex(word: string, env: Map<string, string>, opts: LexOptions): { word: string; words: string[] } {
  const l = new Lexer(word, env, opts.escape ?? '\\', opts.rawQuotes ?? false, opts.skipUnsetEnv ?? false)
  try {
    return l.processStopOn(EOF)
  } catch (e) {
    if (e instanceof ShellSyntaxError) throw new ShellSyntaxError(`failed to process ${goQuote(word)}: ${e.message}`)
    throw e
  }
}

/** Substitutes variables in `word`, keeping its spacing (Docker's `ProcessWord`). */
export function processWord(word: string, env: Map<string, string>, opts: LexOptions = {}): string {
  return lex(word, env, opts).word
}

/** Substitutes, then splits on unquoted spaces (Docker's `ProcessWords`). */
export function processWords(word: string, env: Map<string, string>, opts: LexOptions = {}): string[] {
  return lex(word, env, opts).words
}

/** Go's `%q` of a string (strconv.Quote), for messages and history lines as Docker writes them. */
export function goQuote(s: string): string {
  let out = '"'
  for (const ch of s) {
    const cp = ch.codePointAt(0)!
    if (ch === '"' || ch === '\\') out += `\\${ch}`
    else if (ch === '\n') out += '\\n'
    else if (ch === '\t') out += '\\t'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\x07') out += '\\a'
    else if (ch === '\b') out += '\\b'
    else if (ch === '\f') out += '\\f'
    else if (ch === '\v') out += '\\v'
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`
    else if (cp === 0xfffd && ch !== '\ufffd') out += '\\ufffd'
    else out += ch
  }
  return `${out}"`
}
