/** docker's `--filter KEY=VALUE` arguments (the CLI's FilterOpt). */
import { StrataError } from '../errors'

/** One `KEY=VALUE` filter argument: the key lower-cased, the value as given. */
export function splitFilter(arg: string): [key: string, value: string] {
  const eq = arg.indexOf('=')
  if (eq < 0) throw new StrataError('InvalidArgument', `bad format of filter (expected name=value)`)
  return [arg.slice(0, eq).toLowerCase(), arg.slice(eq + 1)]
}
