/**
 * The Dockerfile's syntax: text → one `Node` per instruction, as BuildKit's Dockerfile parser
 * (`frontend/dockerfile/parser`) makes them.
 *
 * `dockerfile-ast` (the parser of the VS Code Docker language server) finds the instructions,
 * their line ranges, the `# escape=` directive and the heredocs. Each instruction's logical
 * line is then assembled from its source lines with Docker's rules: the first line loses its
 * leading whitespace, an escape token at the end of a line continues it (continuation lines
 * keep their leading whitespace), comment lines and empty lines inside a continuation are
 * dropped. Leading `--flags` are split off (`extractBuilderFlags`), and the arguments are cut
 * into values per instruction the way Docker's line parsers do: JSON arrays decoded with
 * `JSON.parse` (exec form), `K=V` pairs, whitespace-separated words, or the rest as one string.
 * Heredoc bodies (`<<EOF`, `<<-EOF`, `<<"EOF"`) follow their instruction's line.
 */
import type * as DockerfileAst from 'dockerfile-ast'
import { isSpace } from './shell'
import { BuildError } from './errors'

/** A here-document of RUN/COPY/ADD. */
export interface Heredoc {
  name: string
  /** The body, newline-terminated, leading tabs removed for `<<-`. */
  content: string
  /** Variables expand inside it (the delimiter was not quoted). */
  expand: boolean
}

/** One instruction as the parser sees it (BuildKit's parser.Node, flattened). */
export interface Node {
  /** Lower-case instruction name (`run`, `copy`, ...). */
  keyword: string
  /** The logical line, continuations joined (what `ONBUILD` stores, what errors quote). */
  original: string
  /** Leading `--name=value` words, as written. */
  flags: string[]
  /** The arguments as the instruction's line parser cut them. */
  values: string[]
  /** Exec (JSON array) form. */
  json: boolean
  /** For ONBUILD: the trigger instruction. */
  sub?: Node
  heredocs: Heredoc[]
  /** 1-based first and last source lines. */
  startLine: number
  endLine: number
}

export interface ParsedDockerfile {
  /** The escape token (`\` or `` ` ``). */
  escape: string
  nodes: Node[]
  warnings: string[]
}

type LineParser = (rest: string, escape: string) => { values: string[]; json: boolean; sub?: Node }

const WHITESPACE = /[\t\v\f\r ]+/

/** Go's strings.TrimLeftFunc(s, unicode.IsSpace). */
function trimLeft(s: string): string {
  let i = 0
  const chars = [...s]
  while (i < chars.length && isSpace(chars[i])) i++
  return chars.slice(i).join('')
}

function trimBoth(s: string): string {
  const chars = [...s]
  let a = 0
  let b = chars.length
  while (a < b && isSpace(chars[a])) a++
  while (b > a && isSpace(chars[b - 1])) b--
  return chars.slice(a, b).join('')
}

function isComment(line: string): boolean {
  return trimLeft(line).startsWith('#')
}

function continuation(escape: string): RegExp {
  const e = `\\${escape}`
  return new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`)
}

/** How [[scanWords]] reads a line: Docker's two word splitters differ only in these. */
interface WordRules {
  escape: string
  /** Keep quotes and escapes in the words (parseWords), or drop them (extractBuilderFlags). */
  keepQuoting: boolean
  /** Whether the escape character works inside single quotes too. */
  escapeInSingleQuotes: boolean
  /** Before each word: false ends the scan there (what follows is not a word of this kind). */
  startsWord?: (chars: string[], pos: number) => boolean
  /** After each word: true ends the scan, the word not taken (a `--` ending the flags). */
  endsScan?: (word: string) => boolean
}

/**
 * Splits `chars` into words: white space separates them, quotes group, the escape takes the
 * next character as it is. `stop` is where a rule ended the scan (absent: at the end).
 */
function scanWords(chars: string[], rules: WordRules): { words: string[]; stop?: number } {
  const { escape, keepQuoting } = rules
  const words: string[] = []
  let phase: 'spaces' | 'word' | 'quote' = 'spaces'
  let word = ''
  let quote = ''
  let blankOK = false
  for (let pos = 0; pos <= chars.length; pos++) {
    const end = pos === chars.length
    let ch = end ? '' : chars[pos]
    if (phase === 'spaces') {
      if (end) break
      if (isSpace(ch)) continue
      if (rules.startsWord && !rules.startsWord(chars, pos)) return { words, stop: pos }
      phase = 'word'
    }
    if ((phase === 'word' || phase === 'quote') && end) {
      if (!rules.endsScan?.(word) && (blankOK || word.length > 0)) words.push(word)
      break
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces'
        if (rules.endsScan?.(word)) return { words, stop: pos }
        if (blankOK || word.length > 0) words.push(word)
        word = ''
        blankOK = false
        continue
      }
      if (ch === "'" || ch === '"') {
        quote = ch
        blankOK = true
        phase = 'quote'
        if (!keepQuoting) continue
      }
      if (ch === escape) {
        if (pos + 1 === chars.length) continue
        if (keepQuoting) word += ch
        pos++
        ch = chars[pos]
      }
      word += ch
      continue
    }
    if (phase === 'quote') {
      if (ch === quote) {
        phase = 'word'
        if (!keepQuoting) continue
      }
      if (ch === escape && (quote !== "'" || rules.escapeInSingleQuotes)) {
        if (pos + 1 === chars.length) {
          phase = 'word'
          continue
        }
        if (keepQuoting) word += ch
        pos++
        ch = chars[pos]
      }
      word += ch
    }
  }
  return { words }
}

/** Words of a line, quotes kept (Docker's parseWords). */
export function parseWords(rest: string, escape: string): string[] {
  return scanWords([...rest], { escape, keepQuoting: true, escapeInSingleQuotes: false }).words
}

/**
 * Splits leading `--flag` words off an instruction's arguments (Docker's extractBuilderFlags:
 * quotes and `\` work inside flag words; a bare `--` ends the flags).
 */
export function extractFlags(line: string): { rest: string; flags: string[] } {
  const chars = [...line]
  const { words, stop } = scanWords(chars, {
    escape: '\\',
    keepQuoting: false,
    escapeInSingleQuotes: true,
    startsWord: (c, pos) => c[pos] === '-' && c[pos + 1] === '-',
    endsScan: (word) => word === '--',
  })
  return { rest: stop === undefined ? '' : chars.slice(stop).join(''), flags: words }
}

class NotStringArray extends Error {}

/**
 * The first JSON value of `rest` when it is an array of strings (Go's json.Decoder reads one
 * value and leaves what follows; so does this). Returns undefined when it is not JSON.
 */
function decodeJsonArray(rest: string): string[] | undefined {
  const s = trimLeft(rest)
  if (!s.startsWith('[')) return undefined
  let v: unknown
  try {
    v = JSON.parse(s)
  } catch {
    const end = jsonValueEnd(s)
    if (end < 0) return undefined
    try {
      v = JSON.parse(s.slice(0, end))
    } catch {
      return undefined
    }
  }
  if (!Array.isArray(v)) return undefined
  if (!v.every((x) => typeof x === 'string')) throw new NotStringArray('when using JSON array syntax, arrays must be comprised of strings only')
  return v as string[]
}

/** Index just past the JSON array starting at 0, or -1. */
function jsonValueEnd(s: string): number {
  let depth = 0
  let inStr = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (inStr) {
      if (c === '\\') i++
      else if (c === '"') inStr = false
      continue
    }
    if (c === '"') inStr = true
    else if (c === '[' || c === '{') depth++
    else if (c === ']' || c === '}') {
      depth--
      if (depth === 0) return i + 1
    }
  }
  return -1
}

const parseString: LineParser = (rest) => ({ values: rest === '' ? [] : [rest], json: false })

const parseWhitespaceDelimited: LineParser = (rest) => ({ values: rest === '' ? [] : rest.split(WHITESPACE), json: false })

const parseMaybeJson: LineParser = (rest) => {
  if (rest === '') return { values: [], json: false }
  const arr = decodeJsonArray(rest)
  return arr ? { values: arr, json: true } : { values: [rest], json: false }
}

const parseMaybeJsonToList: LineParser = (rest, escape) => {
  const arr = decodeJsonArray(rest)
  return arr ? { values: arr, json: true } : parseWhitespaceDelimited(rest, escape)
}

const parseNameOrNameVal: LineParser = (rest, escape) => ({ values: parseWords(rest, escape), json: false })

/** ENV/LABEL: `K=V ...` pairs, or the legacy `K V` form; values as [k, v, k, v, ...]. */
function nameVal(key: string): LineParser {
  return (rest, escape) => {
    const words = parseWords(rest, escape)
    if (words.length === 0) return { values: [], json: false }
    if (!words[0].includes('=')) {
      const parts = rest.split(WHITESPACE)
      if (parts.length < 2) throw new Error(`${key} must have two arguments`)
      const first = parts[0]
      return { values: [first, rest.slice(rest.indexOf(first) + first.length).replace(/^[\t\v\f\r ]+/, '')], json: false }
    }
    const values: string[] = []
    for (const w of words) {
      if (!w.includes('=')) throw new Error(`Syntax error - can't find = in ${JSON.stringify(w)}. Must be of the form: name=value`)
      const i = w.indexOf('=')
      values.push(w.slice(0, i), w.slice(i + 1))
    }
    return { values, json: false }
  }
}

const parseHealthConfig: LineParser = (rest, escape) => {
  let sep = 0
  while (sep < rest.length && !isSpace(rest[sep])) sep++
  let next = sep
  while (next < rest.length && isSpace(rest[next])) next++
  if (sep === 0) return { values: [], json: false }
  const cmd = parseMaybeJson(rest.slice(next), escape)
  return { values: [rest.slice(0, sep), ...cmd.values], json: cmd.json }
}

const LINE_PARSERS: Record<string, LineParser> = {
  add: parseMaybeJsonToList,
  arg: parseNameOrNameVal,
  cmd: parseMaybeJson,
  copy: parseMaybeJsonToList,
  entrypoint: parseMaybeJson,
  env: nameVal('ENV'),
  expose: parseWhitespaceDelimited,
  from: parseWhitespaceDelimited,
  healthcheck: parseHealthConfig,
  label: nameVal('LABEL'),
  maintainer: parseString,
  run: parseMaybeJson,
  shell: parseMaybeJson,
  stopsignal: parseString,
  user: parseString,
  volume: parseMaybeJsonToList,
  workdir: parseString,
}

/** Node of one logical line (Docker's newNodeFromLine). */
export function nodeFromLine(line: string, escape: string, startLine: number, endLine: number, heredocs: Heredoc[] = []): Node {
  const trimmed = trimBoth(line)
  const m = /[\t\v\f\r ]+/.exec(trimmed)
  const word = m ? trimmed.slice(0, m.index) : trimmed
  const after = m ? trimmed.slice(m.index + m[0].length) : undefined
  const keyword = word.toLowerCase()
  let flags: string[] = []
  let rest = ''
  if (after !== undefined) {
    const f = extractFlags(after)
    flags = f.flags
    rest = trimBoth(f.rest)
  }
  const node: Node = { keyword, original: line, flags, values: [], json: false, heredocs, startLine, endLine }
  if (keyword === 'onbuild') {
    if (rest !== '') node.sub = nodeFromLine(rest, escape, startLine, endLine)
    return node
  }
  const parse = LINE_PARSERS[keyword]
  if (!parse) return node // unknown instructions are reported by the semantic pass, with their line
  try {
    const r = parse(rest, escape)
    node.values = r.values
    node.json = r.json
  } catch (e) {
    throw new BuildError('DockerfileParse', `dockerfile parse error line ${startLine}: ${(e as Error).message}`, { line: startLine })
  }
  return node
}

/** `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'` words of a command line. */
export function heredocMarkers(line: string, escape: string): { name: string; chomp: boolean; expand: boolean }[] {
  const out: { name: string; chomp: boolean; expand: boolean }[] = []
  for (const w of parseWords(line, escape)) {
    const m = /^<<(-?)(["']?)([A-Za-z0-9_.\-/]+)\2$/.exec(w) ?? /^<<(-?)(["']?)([A-Za-z0-9_.\-/]+)\2[<>|&;].*$/.exec(w)
    if (m) out.push({ name: m[3], chomp: m[1] === '-', expand: m[2] === '' })
  }
  return out
}

/** Parses a Dockerfile. Throws `BuildError('DockerfileParse')` with the line of the problem. */
export function parseDockerfile(text: string): ParsedDockerfile {
  if (text.startsWith('\ufeff')) text = text.slice(1)
  // Loaded when first used: a CLI build whose Dockerfile was parsed before (./parse-memo.ts)
  // never needs the library, whose set-up is some ms of its own.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DockerfileParser } = require('dockerfile-ast') as typeof DockerfileAst
  const df = DockerfileParser.parse(text)
  const escape = df.getEscapeCharacter()
  const lines = text.split(/\r?\n/)
  const cont = continuation(escape)
  const nodes: Node[] = []
  const warnings: string[] = []
  for (const d of df.getDirectives()) {
    const name = d.getName().toLowerCase()
    if (name === 'escape' && d.getValue() !== '\\' && d.getValue() !== '`') {
      const line = d.getRange().start.line + 1
      throw new BuildError('DockerfileParse', `dockerfile parse error line ${line}: invalid escape token '${d.getValue()}' does not match \` or \\`, { line })
    }
  }
  const seen = new Map<string, number>()
  for (const d of df.getDirectives()) {
    const name = d.getName().toLowerCase()
    const line = d.getRange().start.line + 1
    if (seen.has(name)) throw new BuildError('DockerfileParse', `dockerfile parse error line ${line}: only one ${name} parser directive can be used`, { line })
    seen.set(name, line)
  }
  for (const ins of df.getInstructions()) {
    const r = ins.getRange()
    const first = r.start.line
    const last = r.end.line
    let line = trimLeft(lines[first] ?? '')
    let i = first
    let eol = !cont.test(line)
    if (!eol) line = line.replace(cont, '$1')
    let emptyContinuation = false
    while (!eol && i < lines.length - 1) {
      i++
      const raw = lines[i]
      if (isComment(raw)) continue
      if (trimLeft(raw) === '') {
        emptyContinuation = true
        continue
      }
      eol = !cont.test(raw)
      line += eol ? raw : raw.replace(cont, '$1')
    }
    if (emptyContinuation) warnings.push(`[WARNING]: Empty continuation line found in:\n    ${line}`)
    const heredocs: Heredoc[] = []
    const keyword = (/^\S+/.exec(line)?.[0] ?? '').toLowerCase()
    if (keyword === 'run' || keyword === 'copy' || keyword === 'add') {
      for (const h of heredocMarkers(line, escape)) {
        const body: string[] = []
        let closed = false
        while (i < lines.length - 1) {
          i++
          const raw = h.chomp ? lines[i].replace(/^\t+/, '') : lines[i]
          if (raw === h.name) {
            closed = true
            break
          }
          body.push(raw)
        }
        if (!closed) {
          throw new BuildError('DockerfileParse', `dockerfile parse error line ${first + 1}: unterminated heredoc ${h.name}`, { line: first + 1 })
        }
        heredocs.push({ name: h.name, content: body.map((b) => `${b}\n`).join(''), expand: h.expand })
      }
    }
    if (i < last) {
      // dockerfile-ast took in lines Docker's rules leave out: they can only be blank or comments.
      for (let j = i + 1; j <= last; j++) {
        if (trimLeft(lines[j] ?? '') !== '' && !isComment(lines[j])) {
          throw new BuildError('DockerfileParse', `dockerfile parse error line ${j + 1}: unexpected text after instruction`, { line: j + 1 })
        }
      }
    }
    nodes.push(nodeFromLine(line, escape, first + 1, Math.max(i, first) + 1, heredocs))
  }
  if (nodes.length === 0) {
    throw new BuildError('DockerfileParse', `dockerfile parse error line ${lines.length}: file with no instructions`, { line: lines.length })
  }
  if (warnings.length > 0) warnings.push('[WARNING]: Empty continuation lines will become errors in a future release.')
  return { escape, nodes, warnings }
}
