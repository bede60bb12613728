/**
 * Output formatting the `strata` CLI shares with `docker`: sizes and durations (go-units),
 * Go templates for `--format`, and the tabwriter behind every table.
 */
export * from './units'
export * from './table'
export * from './template'
export * from './docker'
export { formatG, formatF, formatNumber, goQuote } from './gofmt'
