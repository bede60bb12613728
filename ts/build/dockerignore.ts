/**
 * `.dockerignore`: which files of the build context a build sees, with Docker's exact rules.
 *
 * - The file (`readIgnoreFile`): one pattern a line; a line starting with `#` is a comment;
 *   lines are trimmed; `!` marks an exception; each pattern is cleaned like Go's
 *   `filepath.Clean` and a leading `/` dropped (moby's `ignorefile.ReadAll`).
 * - A pattern (`PatternMatcher`, moby's patternmatcher): Go `filepath.Match` syntax (`*`, `?`,
 *   `[...]`, `\` escapes) plus `**` for any number of directories, compiled to a regexp the way
 *   moby compiles it (exact, prefix `dir/**`, suffix `**` + `/x`, or regexp matches). A path
 *   matches a pattern when it, or its parent path cut to the pattern's depth, matches it; the
 *   last matching pattern wins, an `!` pattern re-includes.
 * - The walk (`walkAllowed`, the build context walker of BuildKit's fsutil): an excluded
 *   directory is not descended into unless an exception pattern names something inside it;
 *   then it is descended (and sent) and each path below is matched on its own.
 */
import * as path from 'node:path'
import { clean } from '../archive/gopath'

/** Go's `path.Clean` on a slash-separated path (one implementation: ../archive/gopath.ts). */
export const cleanPath = clean

/** Patterns of a `.dockerignore` file's text (moby's ignorefile.ReadAll). */
export function readIgnoreFile(text: string): string[] {
  const out: string[] = []
  let first = true
  for (let line of text.split('\n')) {
    if (line.endsWith('\r')) line = line.slice(0, -1)
    if (first && line.startsWith('\ufeff')) line = line.slice(1)
    first = false
    if (line.startsWith('#')) continue
    let p = goTrimSpace(line)
    if (p === '') continue
    const invert = p[0] === '!'
    if (invert) p = goTrimSpace(p.slice(1))
    if (p.length > 0) {
      p = cleanPath(p)
      if (p.length > 1 && p[0] === '/') p = p.slice(1)
    }
    out.push(invert ? `!${p}` : p)
  }
  return out
}

function goTrimSpace(s: string): string {
  return s.replace(/^[\t\n\v\f\r \u0085\u00a0]+|[\t\n\v\f\r \u0085\u00a0]+$/g, '')
}

/** An invalid pattern (`filepath.ErrBadPattern`). */
export class BadPatternError extends Error {
  constructor(readonly pattern: string) {
    super(`syntax error in pattern: ${pattern}`)
  }
}

/** Whether Go's filepath.Match would reject `pattern` (an unclosed `[`, a bad range, a trailing `\`). */
function badGlob(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '\\') {
      if (i + 1 >= pattern.length) return true
      i++
    } else if (c === '[') {
      let j = i + 1
      if (pattern[j] === '^') j++
      let first = true
      let closed = false
      while (j < pattern.length) {
        if (pattern[j] === ']' && !first) {
          closed = true
          break
        }
        first = false
        let lo = pattern[j]
        if (lo === '\\') {
          j++
          if (j >= pattern.length) return true
          lo = pattern[j]
        } else if (lo === '-') return true
        j++
        if (pattern[j] === '-' && pattern[j + 1] !== ']') {
          j++
          let hi = pattern[j]
          if (hi === undefined) return true
          if (hi === '\\') {
            j++
            hi = pattern[j]
            if (hi === undefined) return true
          }
          if (hi < lo) return true
          j++
        }
      }
      if (!closed) return true
      i = j
    }
  }
  return false
}

type MatchType = 'exact' | 'prefix' | 'suffix' | 'regexp'

const ESCAPED = new Set('.+()|{}$'.split(''))

/** `s` as a regular expression that matches exactly it. */
function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')
}

export class Pattern {
  readonly exclusion: boolean
  readonly cleaned: string
  readonly dirs: string[]
  #type?: MatchType
  #re?: RegExp
  #affix = ''

  constructor(cleaned: string, exclusion: boolean) {
    this.cleaned = cleaned
    this.exclusion = exclusion
    this.dirs = cleaned.split('/')
  }

  toString(): string {
    return this.cleaned
  }

  #compile(): void {
    let re = '^'
    let type: MatchType = 'exact'
    const chars = [...this.cleaned]
    for (let i = 0, k = 0; k < chars.length; i++) {
      const ch = chars[k++]
      if (ch === '*') {
        if (chars[k] === '*') {
          k++
          if (chars[k] === '/') k++
          if (k >= chars.length) {
            if (type === 'exact') type = 'prefix'
            else {
              re += '.*'
              type = 'regexp'
            }
          } else {
            re += '(.*/)?'
            type = 'regexp'
          }
          if (i === 0) type = 'suffix'
        } else {
          re += '[^/]*'
          type = 'regexp'
        }
      } else if (ch === '?') {
        re += '[^/]'
        type = 'regexp'
      } else if (ESCAPED.has(ch)) {
        re += `\\${ch}`
      } else if (ch === '\\') {
        if (k < chars.length) {
          re += `\\${chars[k++]}`
          type = 'regexp'
        } else re += '\\\\'
      } else if (ch === '[' || ch === ']') {
        re += ch
        type = 'regexp'
      } else re += ch
    }
    if (type === 'regexp') {
      try {
        this.#re = new RegExp(`${re}$`)
      } catch {
        throw new BadPatternError(this.cleaned)
      }
    }
    this.#type = type
    // What a `prefix` pattern (`dir/**`) starts with, or a `suffix` one (`**/x`) ends with.
    this.#affix = type === 'prefix' ? this.cleaned.slice(0, -2) : type === 'suffix' ? this.cleaned.slice(2) : ''
  }

  /**
   * A regular expression source matching what `match` matches (anchored), for the walker's one
   * test of a path against every pattern at once.
   */
  source(): string {
    if (this.#type === undefined) this.#compile()
    switch (this.#type) {
      case 'exact':
        return `^${escapeRegExp(this.cleaned)}$`
      case 'prefix':
        return `^${escapeRegExp(this.#affix)}`
      case 'suffix':
        return this.#affix[0] === '/' ? `${escapeRegExp(this.#affix)}$|^${escapeRegExp(this.#affix.slice(1))}$` : `${escapeRegExp(this.#affix)}$`
      default:
        return this.#re!.source
    }
  }

  match(p: string): boolean {
    if (this.#type === undefined) this.#compile()
    switch (this.#type) {
      case 'exact':
        return p === this.cleaned
      case 'prefix':
        return p.startsWith(this.#affix)
      case 'suffix': {
        if (p.endsWith(this.#affix)) return true
        return this.#affix[0] === '/' && p === this.#affix.slice(1)
      }
      default:
        return this.#re!.test(p)
    }
  }
}

export class PatternMatcher {
  readonly patterns: Pattern[] = []
  readonly exclusions: boolean
  #any?: RegExp

  constructor(patterns: readonly string[]) {
    let exclusions = false
    for (let p of patterns) {
      p = goTrimSpace(p)
      if (p === '') continue
      p = cleanPath(p)
      let exclusion = false
      if (p[0] === '!') {
        if (p.length === 1) throw new BadPatternError('!')
        exclusion = true
        p = p.slice(1)
        exclusions = true
      }
      if (badGlob(p)) throw new BadPatternError(p)
      this.patterns.push(new Pattern(p, exclusion))
    }
    this.exclusions = exclusions
  }

  /** Whether `file` (slash-separated, relative to the context) is excluded (moby's Matches). */
  matches(file: string): boolean {
    let matched = false
    const parent = path.posix.dirname(file)
    const parentDirs = parent.split('/')
    for (const pattern of this.patterns) {
      if (pattern.exclusion !== matched) continue
      let match = pattern.match(file)
      if (!match && parent !== '.' && pattern.dirs.length <= parentDirs.length) {
        match = pattern.match(parentDirs.slice(0, pattern.dirs.length).join('/'))
      }
      if (match) matched = !pattern.exclusion
    }
    return matched
  }

  /**
   * `matches` for a path the context walk reached, which is only through directories it kept.
   * Without exception patterns a kept directory is one that matched no pattern (an excluded one
   * is never descended into), so no pattern can match a parent path of `file` cut to its depth
   * — those parent paths are kept directories — and only `file` itself need be tried. With
   * exceptions, a kept directory may have matched: the full rule.
   */
  matchesWalked(file: string): boolean {
    if (this.exclusions) return this.matches(file)
    if (this.patterns.length === 0) return false
    // Every pattern at once: one regular expression, made on first use (a context has thousands of paths).
    this.#any ??= new RegExp(this.patterns.map((p) => `(?:${p.source()})`).join('|'))
    return this.#any.test(file)
  }

  /**
   * What the context walker does with an entry that `matches`: a file is left out; a
   * directory is skipped unless an exception pattern lies below it, in which case it is walked
   * (and kept) with every path below matched on its own.
   */
  descendExcludedDir(dir: string): boolean {
    if (!this.exclusions) return false
    const dirSlash = `${dir}/`
    return this.patterns.some((p) => p.exclusion && `${p.cleaned}/`.startsWith(dirSlash))
  }
}

/**
 * The walker's verdict on one entry (reached through directories it kept, see `matchesWalked`):
 * `keep` (sent to the build), `skip` (a file left out),
 * `skipDir` (a directory not descended into), `descend` (an excluded directory that is kept
 * and walked because an exception lies below).
 */
export function verdict(pm: PatternMatcher | undefined, rel: string, isDir: boolean): 'keep' | 'skip' | 'skipDir' {
  if (!pm || !pm.matchesWalked(rel)) return 'keep'
  if (!isDir) return 'skip'
  return pm.descendExcludedDir(rel) ? 'keep' : 'skipDir'
}
