/**
 * Go's `path.Match` / `filepath.Match` on `/`-separated paths: `*` (any run of non-`/`), `?`
 * (one non-`/`), `[...]` classes with ranges and `^` negation, `\` escapes. One pattern
 * language shared by `images --filter reference=` and COPY/ADD source wildcards.
 */
export function goPathMatch(pattern: string, name: string): boolean {
  let re = '^'
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else if (c === '[') {
      let j = i + 1
      let cls = ''
      if (pattern[j] === '^') {
        cls += '^'
        j++
      }
      for (; j < pattern.length && pattern[j] !== ']'; j++) cls += pattern[j] === '\\' ? `\\${pattern[++j] ?? ''}` : pattern[j].replace(/[\]\\^]/g, '\\$&')
      if (j >= pattern.length) return false
      re += `[${cls}]`
      i = j
    } else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`
    else re += c.replace(/[.+^${}()|\\/]/g, '\\$&')
  }
  try {
    return new RegExp(`${re}$`, 's').test(name)
  } catch {
    return false
  }
}
