/** `--format` output: docker's formatter context (Go templates, `table`, `json`). */
import { formatItems, marshalContext } from '../format/template'
import { Io } from './io'

/** What `{{json .}}` of a row prints: docker's formatter contexts marshal as a sorted Go map. */
const CONTEXT = { MarshalJSON(this: object): string { return marshalContext(this) } }

/**
 * Renders `items` with a user's `--format`; `headers` name the columns of `table` formats.
 * Rows are formatter contexts (`images`, `ps`, `history`), unless `raw`: objects as the API
 * returns them (`inspect`), whose maps keep their order.
 */
export function printFormatted(io: Io, format: string, items: readonly unknown[], headers: Record<string, string>, raw = false): void {
  const rows = raw ? items : items.map((it) => Object.assign(Object.create(CONTEXT) as object, it))
  io.out(formatItems(format, rows, { headers, objectsAsMaps: raw }))
}
