/**
 * Go's number formatting, bit for bit where docker output depends on it.
 *
 * `fmt.Sprintf("%.3g", x)` (go-units sizes) rounds the *exact* binary value half-to-even
 * and switches to `1e+03` notation when the exponent reaches the precision; JS's
 * `toPrecision` rounds half-up and writes `1.00e+3`. So we expand the double exactly
 * (BigInt) and reimplement strconv's `%e`/`%f`/`%g` digit layout (strconv/ftoa.go).
 */

/** A decimal `0.d1d2d3... × 10^dp` (strconv's `decimalSlice`), no trailing zeros. */
interface Decimal {
  d: string
  dp: number
}

const f64 = new Float64Array(1)
const u64 = new BigUint64Array(f64.buffer)

/** Exact decimal expansion of a finite, non-negative double. */
function exactDecimal(x: number): Decimal {
  if (x === 0) return { d: '', dp: 0 }
  f64[0] = x
  const bits = u64[0]!
  const bexp = Number((bits >> 52n) & 0x7ffn)
  let mant = bits & 0xfffffffffffffn
  let e2: number
  if (bexp === 0) {
    e2 = -1074
  } else {
    mant |= 1n << 52n
    e2 = bexp - 1075
  }
  let digits: string
  let dp: number
  if (e2 >= 0) {
    digits = (mant << BigInt(e2)).toString()
    dp = digits.length
  } else {
    // m / 2^k = m·5^k / 10^k
    const k = -e2
    digits = (mant * 5n ** BigInt(k)).toString()
    dp = digits.length - k
  }
  return trim({ d: digits, dp })
}

function trim(a: Decimal): Decimal {
  let d = a.d.replace(/0+$/, '')
  let dp = a.dp
  const lead = d.length - d.replace(/^0+/, '').length
  d = d.slice(lead)
  dp -= lead
  if (d === '') dp = 0
  return { d, dp }
}

/** strconv `decimal.Round(nd)`: to nd significant digits, exact halves to even. */
function roundDecimal(a: Decimal, nd: number): Decimal {
  if (nd < 0 || nd >= a.d.length) return a
  const next = a.d.charCodeAt(nd) - 48
  let up: boolean
  if (next === 5 && nd + 1 === a.d.length) {
    up = nd > 0 && (a.d.charCodeAt(nd - 1) - 48) % 2 === 1
  } else {
    up = next >= 5
  }
  if (!up) return trim({ d: a.d.slice(0, nd), dp: a.dp })
  const digits = a.d.slice(0, nd).split('').map(Number)
  let i = nd - 1
  while (i >= 0 && digits[i] === 9) i--
  if (i < 0) return { d: '1', dp: a.dp + 1 }
  digits[i]! += 1
  return trim({ d: digits.slice(0, i + 1).join(''), dp: a.dp })
}

/** Shortest decimal that round-trips (what JS and Go's shortest mode both produce). */
function shortestDecimal(x: number): Decimal {
  if (x === 0) return { d: '', dp: 0 }
  const [mant, exp] = x.toExponential().split('e') as [string, string]
  return trim({ d: mant.replace('.', ''), dp: Number(exp) + 1 })
}

function digitAt(a: Decimal, i: number): string {
  return i >= 0 && i < a.d.length ? a.d[i]! : '0'
}

function fmtE(neg: boolean, a: Decimal, prec: number): string {
  let s = neg ? '-' : ''
  s += a.d.length === 0 ? '0' : a.d[0]
  if (prec > 0) {
    s += '.'
    for (let i = 1; i <= prec; i++) s += digitAt(a, i)
  }
  const exp = a.d.length === 0 ? 0 : a.dp - 1
  const abs = Math.abs(exp)
  return `${s}e${exp < 0 ? '-' : '+'}${abs < 10 ? '0' : ''}${abs}`
}

function fmtF(neg: boolean, a: Decimal, prec: number): string {
  let s = neg ? '-' : ''
  if (a.dp > 0) {
    for (let i = 0; i < a.dp; i++) s += digitAt(a, i)
  } else {
    s += '0'
  }
  if (prec > 0) {
    s += '.'
    for (let i = 1; i <= prec; i++) s += digitAt(a, a.dp + i - 1)
  }
  return s
}

function special(x: number, plusInf: boolean): string | undefined {
  if (Number.isNaN(x)) return 'NaN'
  if (x === Infinity) return plusInf ? '+Inf' : 'Inf'
  if (x === -Infinity) return '-Inf'
  return undefined
}

/**
 * `strconv.FormatFloat(x, 'g', prec, 64)` / `fmt.Sprintf("%.<prec>g", x)`; `prec < 0` is the
 * shortest representation (as `%v` uses).
 */
export function formatG(x: number, prec: number): string {
  const sp = special(x, prec < 0)
  if (sp !== undefined) return sp
  const neg = x < 0 || Object.is(x, -0)
  const ax = Math.abs(x)
  const shortest = prec < 0
  let digs: Decimal
  if (shortest) {
    digs = shortestDecimal(ax)
    prec = digs.d.length
  } else {
    if (prec === 0) prec = 1
    digs = roundDecimal(exactDecimal(ax), prec)
  }
  let eprec = prec
  if (eprec > digs.d.length && digs.d.length >= digs.dp) eprec = digs.d.length
  if (shortest) eprec = 6
  const exp = digs.dp - 1
  if (exp < -4 || exp >= eprec) {
    if (prec > digs.d.length) prec = digs.d.length
    return fmtE(neg, digs, prec - 1)
  }
  if (prec > digs.dp) prec = digs.d.length
  return fmtF(neg, digs, Math.max(prec - digs.dp, 0))
}

/** `fmt.Sprintf("%.<prec>f", x)` with Go's exact half-to-even rounding. */
export function formatF(x: number, prec: number): string {
  const sp = special(x, false)
  if (sp !== undefined) return sp
  const neg = x < 0 || Object.is(x, -0)
  const a = exactDecimal(Math.abs(x))
  const nd = a.dp + prec
  return fmtF(neg, nd < 0 ? { d: '', dp: 0 } : roundDecimal(a, nd), prec)
}

/**
 * How Go's `%v` prints a number. JS has one number type; integers print as Go ints
 * (`1000000`), everything else as a float64 (`%g` shortest: `0.5`, `1.5e+06`).
 */
export function formatNumber(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e21) return Object.is(x, -0) ? '0' : x.toFixed(0)
  return formatG(x, -1)
}

const QUOTE_ESCAPES: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '\\': '\\\\', '"': '\\"' }

/**
 * `strconv.Quote`: a double-quoted Go string literal (docker ps prints COMMAND with it).
 * Printable characters stay as they are; control, format and non-ASCII space characters are
 * escaped as `\a \b \f \n \r \t \v`, `\xNN` below U+0080, else `\uNNNN` / `\UNNNNNNNN`.
 */
export function goQuote(s: string): string {
  let out = '"'
  for (const ch of s) {
    const esc = QUOTE_ESCAPES[ch]
    if (esc !== undefined) {
      out += esc
      continue
    }
    const cp = ch.codePointAt(0)!
    // strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space
    if (ch === ' ' || !/^[\p{C}\p{Z}]$/u.test(ch)) {
      out += ch
    } else if (cp < 0x80) {
      out += `\\x${cp.toString(16).padStart(2, '0')}`
    } else if (cp < 0x10000) {
      out += `\\u${cp.toString(16).padStart(4, '0')}`
    } else {
      out += `\\U${cp.toString(16).padStart(8, '0')}`
    }
  }
  return out + '"'
}
