/** `--format` output: docker's formatter context (Go templates, `table`, `json`). */
import { formatItems } from '../format/template'
import { Io } from './io'

/** Renders `items` with a user's `--format`; `headers` name the columns of `table` formats. */
export function printFormatted(io: Io, format: string, items: readonly unknown[], headers: Record<string, string>, raw = false): void {
  io.out(formatItems(format, items, { headers, objectsAsMaps: raw }))
}
