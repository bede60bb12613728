/**
 * Go's `text/tabwriter` as the docker CLI configures it for every table:
 * `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` (minwidth 10, tabwidth 1, padding 3,
 * padchar ' ', no flags).
 *
 * Semantics reproduced from tabwriter.go:
 *  - text is cut into cells by `\t`; a cell is *tab-terminated* or the last one of its line;
 *  - only tab-terminated cells belong to columns; the last cell of a line is written as is
 *    (never padded), so `docker images` has no trailing blanks after SIZE;
 *  - a column block is a run of consecutive lines that all have a cell in that column; its
 *    width is max(minwidth, widest cell + padding), computed per block, not per table;
 *  - widths are terminal columns: docker forks text/tabwriter (cli/command/formatter/tabwriter)
 *    only to measure cells with go-runewidth's `StringWidth` instead of counting runes, so
 *    CJK text takes two columns and combining marks none (`widthOf` restores rune counting);
 *  - text after the last newline is flushed as a final, unterminated line.
 */
import { displayWidth } from './units'

export interface TabwriterOptions {
  minwidth: number
  tabwidth: number
  padding: number
  padchar: string
  /** Width of a cell's text; default terminal columns as docker's fork (`runeCount` for Go's stdlib). */
  widthOf?: (text: string) => number
}

/** docker CLI's settings (`formatter.Context.postFormat`, `docker history`, `docker ps`). */
export const DOCKER_TABWRITER: TabwriterOptions = { minwidth: 10, tabwidth: 1, padding: 3, padchar: ' ' }

interface Cell {
  text: string
  width: number
}

/** Go stdlib text/tabwriter's measure: UTF-8 characters. */
export function runeCount(s: string): number {
  let n = 0
  for (const _ of s) n++
  return n
}

/** Runs `text` through a tabwriter and flushes it. */
export function tabwrite(text: string, opts: TabwriterOptions = DOCKER_TABWRITER): string {
  const rawLines = text.split('\n')
  const endsWithNewline = rawLines[rawLines.length - 1] === ''
  if (endsWithNewline) rawLines.pop()
  const widthOf = opts.widthOf ?? displayWidth
  const lines: Cell[][] = rawLines.map((l) => l.split('\t').map((t) => ({ text: t, width: widthOf(t) })))
  const out: string[] = []
  const widths: number[] = []

  const pad = (textw: number, cellw: number): string => {
    if (opts.padchar === '\t') {
      // Tab padding rounds the cell width up to a multiple of tabwidth.
      if (opts.tabwidth === 0) return ''
      const w = Math.ceil(cellw / opts.tabwidth) * opts.tabwidth
      return '\t'.repeat(Math.ceil((w - textw) / opts.tabwidth))
    }
    return opts.padchar.repeat(Math.max(cellw - textw, 0))
  }

  const writeLines = (line0: number, line1: number): void => {
    for (let i = line0; i < line1; i++) {
      const line = lines[i]!
      let s = ''
      line.forEach((c, j) => {
        if (j < widths.length && j < line.length - 1) {
          s += c.text + pad(c.width, widths[j]!)
        } else {
          s += c.text
        }
      })
      const last = i === lines.length - 1
      out.push(s + (last && !endsWithNewline ? '' : '\n'))
    }
  }

  // tabwriter.format: recursive over column blocks.
  const format = (line0: number, line1: number): void => {
    const column = widths.length
    for (let th = line0; th < line1; th++) {
      const line = lines[th]!
      if (column >= line.length - 1) continue
      // A block for this column starts at line `th`.
      writeLines(line0, th)
      line0 = th
      let width = opts.minwidth
      let t = th
      for (; t < line1; t++) {
        const l = lines[t]!
        if (column >= l.length - 1) break
        const w = l[column]!.width + opts.padding
        if (w > width) width = w
      }
      widths.push(width)
      format(line0, t)
      widths.pop()
      line0 = t
      th = t - 1
    }
    writeLines(line0, line1)
  }

  format(0, lines.length)
  return out.join('')
}

/**
 * Renders rows as docker prints a table: cells joined by tabs, one line per row, through
 * the docker tabwriter. The first row is usually the header (`REPOSITORY`, `TAG`, ...).
 */
export function renderTable(rows: readonly (readonly string[])[], opts: TabwriterOptions = DOCKER_TABWRITER): string {
  if (rows.length === 0) return ''
  return tabwrite(rows.map((r) => r.join('\t')).join('\n') + '\n', opts)
}
