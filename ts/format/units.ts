/**
 * Sizes, durations and IDs the way the docker CLI prints them: a port of
 * `github.com/docker/go-units` (size.go, duration.go), `stringid.TruncateID` and the
 * CLI formatter's `Ellipsis`.
 */
import { formatG } from './gofmt'

const DECIMAL_ABBRS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB']
const BINARY_ABBRS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB']

function sizeAndUnit(size: number, base: number, abbrs: string[]): [number, string] {
  let i = 0
  while (size >= base && i < abbrs.length - 1) {
    size /= base
    i++
  }
  return [size, abbrs[i]!]
}

/** go-units `HumanSizeWithPrecision`: decimal (SI) units, `%.<precision>g` then the unit. */
export function humanSizeWithPrecision(bytes: number, precision: number): string {
  const [size, unit] = sizeAndUnit(bytes, 1000, DECIMAL_ABBRS)
  return formatG(size, precision) + unit
}

/**
 * SIZE as `docker images`, `docker history` and `docker ps -s` print it
 * (`HumanSizeWithPrecision(size, 3)`): `544MB`, `13.3kB`, `0B`, `1e+03kB` for 999.5 kB.
 */
export function humanSize(bytes: number): string {
  return humanSizeWithPrecision(bytes, 3)
}

/** go-units `HumanSize` (4 significant digits): `2.746MB`. */
export function goUnitsHumanSize(bytes: number): string {
  return humanSizeWithPrecision(bytes, 4)
}

/** go-units `BytesSize`: binary units, 4 significant digits: `44KiB`, `1.5GiB`. */
export function bytesSize(bytes: number): string {
  const [size, unit] = sizeAndUnit(bytes, 1024, BINARY_ABBRS)
  return formatG(size, 4) + unit
}

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE

/**
 * go-units `HumanDuration` of a duration in milliseconds. Seconds and minutes truncate;
 * hours are rounded to the nearest hour (half away from zero, as `Duration.Round`), and
 * days/weeks/months/years are whole divisions of those hours.
 */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / SECOND)
  if (seconds < 1) return 'Less than a second'
  if (seconds === 1) return '1 second'
  if (seconds < 60) return `${seconds} seconds`
  const minutes = Math.trunc(ms / MINUTE)
  if (minutes === 1) return 'About a minute'
  if (minutes < 60) return `${minutes} minutes`
  const hours = Math.round(ms / HOUR) // ms > 0 here, so half-up is half-away-from-zero
  if (hours === 1) return 'About an hour'
  if (hours < 48) return `${hours} hours`
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`
  return `${Math.trunc(Math.trunc(ms / HOUR) / 24 / 365)} years`
}

function toMs(d: Date | number): number {
  return typeof d === 'number' ? d : d.getTime()
}

/**
 * CREATED as docker prints it: `HumanDuration(now - created) + " ago"` (`2 weeks ago`).
 * Numbers are epoch milliseconds.
 */
export function ago(date: Date | number, now: Date | number = Date.now()): string {
  return `${humanDuration(toMs(now) - toMs(date))} ago`
}

/** `stringid.TruncateID`: drops any `algorithm:` prefix and keeps 12 characters. */
export function truncateId(id: string): string {
  const i = id.indexOf(':')
  if (i >= 0) id = id.slice(i + 1)
  return id.length > 12 ? id.slice(0, 12) : id
}

// East Asian Wide / Fullwidth ranges (go-runewidth's `doublewidth` table, condensed).
const WIDE: Array<[number, number]> = [
  [0x1100, 0x115f], [0x231a, 0x231b], [0x2329, 0x232a], [0x23e9, 0x23ec], [0x23f0, 0x23f0],
  [0x23f3, 0x23f3], [0x25fd, 0x25fe], [0x2614, 0x2615], [0x2648, 0x2653], [0x267f, 0x267f],
  [0x2693, 0x2693], [0x26a1, 0x26a1], [0x26aa, 0x26ab], [0x26bd, 0x26be], [0x26c4, 0x26c5],
  [0x26ce, 0x26ce], [0x26d4, 0x26d4], [0x26ea, 0x26ea], [0x26f2, 0x26f3], [0x26f5, 0x26f5],
  [0x26fa, 0x26fa], [0x26fd, 0x26fd], [0x2705, 0x2705], [0x270a, 0x270b], [0x2728, 0x2728],
  [0x274c, 0x274c], [0x274e, 0x274e], [0x2753, 0x2755], [0x2757, 0x2757], [0x2795, 0x2797],
  [0x27b0, 0x27b0], [0x27bf, 0x27bf], [0x2b1b, 0x2b1c], [0x2b50, 0x2b50], [0x2b55, 0x2b55],
  [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xa000, 0xa4cf],
  [0xa960, 0xa97f], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe10, 0xfe19], [0xfe30, 0xfe6f],
  [0xff00, 0xff60], [0xffe0, 0xffe6], [0x16fe0, 0x16fe4], [0x17000, 0x18cff], [0x1b000, 0x1b2ff],
  [0x1f004, 0x1f004], [0x1f0cf, 0x1f0cf], [0x1f18e, 0x1f18e], [0x1f191, 0x1f19a], [0x1f200, 0x1f251],
  [0x1f300, 0x1f64f], [0x1f680, 0x1f6ff], [0x1f7e0, 0x1f7eb], [0x1f90c, 0x1f9ff], [0x1fa70, 0x1faff],
  [0x20000, 0x2fffd], [0x30000, 0x3fffd],
]

/**
 * Made on first use: V8 parses a regex literal with Unicode property classes when the literal
 * is evaluated, some 0.2 ms that every CLI command would pay when this module loads.
 */
let zeroWidth: RegExp | undefined

/**
 * Terminal columns of one code point, as go-runewidth's `RuneWidth` (non-East-Asian locale):
 * combining marks, format and control characters are 0, East Asian Wide/Fullwidth 2.
 */
export function runeWidth(cp: number): number {
  // Printable ASCII, most of any table: the Unicode-property regex below is compiled on first
  // use, which costs a short CLI command a few milliseconds.
  if (cp >= 0x20 && cp < 0x7f) return 1
  if (cp === 0) return 0
  zeroWidth ??= /^[\p{Mn}\p{Me}\p{Cf}\p{Cc}]$/u
  if (zeroWidth.test(String.fromCodePoint(cp))) return 0
  for (const [lo, hi] of WIDE) {
    if (cp < lo) break
    if (cp <= hi) return 2
  }
  return 1
}

/** Display width of a string (go-runewidth `StringWidth`, summed per code point). */
export function displayWidth(s: string): number {
  let w = 0
  for (const ch of s) w += runeWidth(ch.codePointAt(0)!)
  return w
}

/**
 * Columns of one code point as docker's `formatter.Ellipsis` counts them
 * (`golang.org/x/text/width`): East Asian Wide and Fullwidth are 2, everything else 1.
 */
function charWidth(cp: number): number {
  for (const [lo, hi] of WIDE) {
    if (cp < lo) break
    if (cp <= hi) return 2
  }
  return 1
}

/**
 * docker CLI `formatter.Ellipsis`: fits `s` into `maxWidth` display columns, ending with `…`
 * when cut. ASCII is cut by runes; wide characters count two columns.
 */
export function ellipsis(s: string, maxWidth: number): string {
  if (maxWidth <= 0) return ''
  const rs = Array.from(s)
  if (maxWidth === 1) return rs[0] ?? ''
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(s)) {
    if (s.length <= maxWidth) return s
    return rs.slice(0, maxWidth - 1).join('') + '…'
  }
  const display: number[] = []
  let width = 0
  for (const r of rs) {
    width += charWidth(r.codePointAt(0)!)
    display.push(width)
  }
  if (width <= maxWidth) return s
  for (let i = 0; i + 1 < display.length; i++) {
    if (display[i]! <= maxWidth - 1 && display[i + 1]! > maxWidth - 1) return rs.slice(0, i + 1).join('') + '…'
  }
  return s
}

/** CREATED BY as `docker history` prints it: tabs become spaces, cut to 45 columns unless `--no-trunc`. */
export function historyCreatedBy(createdBy: string, trunc = true): string {
  const s = createdBy.replaceAll('\t', ' ')
  return trunc ? ellipsis(s, 45) : s
}
