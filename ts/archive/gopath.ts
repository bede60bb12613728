/**
 * Go's `path/filepath` on Unix, and the path rules of moby's archive package (`copy.go`) built on
 * it. `docker cp` decides what to copy and how to name it with these string operations (a
 * trailing `/` or `/.` means "a directory", "its contents"), so they are reproduced exactly:
 * Node's `path.posix` differs in the corners (`Clean` drops a trailing slash, `Base('/')` is `/`,
 * `Dir('/a/b/')` is `/a/b`).
 */

/** `filepath.Clean`: the shortest equivalent path, lexically. */
export function clean(p: string): string {
  if (p === '') return '.'
  const rooted = p.startsWith('/')
  const out: string[] = []
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop()
      else if (!rooted) out.push('..')
      continue
    }
    out.push(part)
  }
  const joined = out.join('/')
  if (rooted) return `/${joined}`
  return joined === '' ? '.' : joined
}

/** `filepath.Split`: the dir (with its trailing slash) and the last element. */
export function split(p: string): [string, string] {
  const i = p.lastIndexOf('/')
  return [p.slice(0, i + 1), p.slice(i + 1)]
}

/** `filepath.Base`: the last element after trailing slashes are removed; `.` for empty, `/` for root. */
export function base(p: string): string {
  if (p === '') return '.'
  while (p.length > 0 && p.endsWith('/')) p = p.slice(0, -1)
  if (p === '') return '/'
  return p.slice(p.lastIndexOf('/') + 1)
}

/** `filepath.Dir`: everything but the last element, cleaned. */
export function dir(p: string): string {
  return clean(split(p)[0])
}

/** `filepath.Join`: non-empty elements joined with `/`, cleaned (`''` when all are empty). */
export function join(...parts: string[]): string {
  const kept = parts.filter((x) => x !== '')
  return kept.length ? clean(kept.join('/')) : ''
}

/** `filepath.Rel` for two absolute (or two relative) paths; undefined where Go errors. */
export function rel(basePath: string, target: string): string | undefined {
  const b = clean(basePath)
  const t = clean(target)
  if (b === t) return '.'
  if (b.startsWith('/') !== t.startsWith('/')) return undefined
  const bs = b === '/' || b === '.' ? [] : b.replace(/^\//, '').split('/')
  const ts = t === '/' || t === '.' ? [] : t.replace(/^\//, '').split('/')
  let i = 0
  while (i < bs.length && i < ts.length && bs[i] === ts[i]) i++
  if (bs.slice(i).includes('..')) return undefined
  return [...bs.slice(i).map(() => '..'), ...ts.slice(i)].join('/') || '.'
}

export function isAbs(p: string): boolean {
  return p.startsWith('/')
}

/** moby `hasTrailingPathSeparator`. */
export function hasTrailingSeparator(p: string): boolean {
  return p.length > 0 && p.endsWith('/')
}

/** moby `specifiesCurrentDir`: the last element is `.`. */
export function specifiesCurrentDir(p: string): boolean {
  return base(p) === '.'
}

/** moby `assertsDirectory`: a trailing `/` or `/.`. */
export function assertsDirectory(p: string): boolean {
  return hasTrailingSeparator(p) || specifiesCurrentDir(p)
}

/** moby `PreserveTrailingDotOrSeparator`: puts back the `/.` or `/` that cleaning removed. */
export function preserveTrailingDotOrSeparator(cleaned: string, original: string): string {
  let out = cleaned
  if (!specifiesCurrentDir(out) && specifiesCurrentDir(original)) {
    if (!hasTrailingSeparator(out)) out += '/'
    out += '.'
  }
  if (!hasTrailingSeparator(out) && hasTrailingSeparator(original)) out += '/'
  return out
}

/** moby `SplitPathDirEntry`: dir and base of the cleaned path, keeping a trailing `.`. */
export function splitPathDirEntry(p: string): [string, string] {
  let cleaned = clean(p)
  if (specifiesCurrentDir(p)) cleaned += '/.'
  return [dir(cleaned), base(cleaned)]
}

/**
 * moby `GetRebaseName`: `resolved` with the requested path's trailing `/.` or `/` put back,
 * and the name its entries must be renamed to when the last element changed.
 */
export function getRebaseName(p: string, resolved: string): [string, string] {
  let r = resolved
  let rebaseName = ''
  if (specifiesCurrentDir(p) && !specifiesCurrentDir(r)) r += '/.'
  if (hasTrailingSeparator(p) && !hasTrailingSeparator(r)) r += '/'
  if (base(p) !== base(r)) rebaseName = base(p)
  return [r, rebaseName]
}
