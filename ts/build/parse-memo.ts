/**
 * Parsed Dockerfiles, remembered for the CLI: `dockerfile-ast` and the line rules after it
 * (./dockerfile.ts) take ~8 ms of a CLI build for a dozen lines — code that runs once per
 * process, in the interpreter — for a result that only depends on the text and on the code.
 *
 * `<root>/builder/dockerfiles/<hex>.json`, `<hex>` the sha256 of `[version, bundle id, text]`:
 *
 * ```
 * {"v":1,"parsed":{"escape":"\\","nodes":[…],"warnings":[]}}
 * ```
 *
 * The bundle id is the sha256 of the CLI bundle the process runs (scripts/bundle-cli.js writes
 * it in), so a memo is only ever read by the very code that wrote it: any change to the parser,
 * its rules or the library makes other names. Code not run from the bundle (the API, the
 * tests) has no id and parses every time. Only successful parses are kept (an error is thrown
 * again by the parse). A cache: written atomically, torn or unreadable means absent, and
 * `builder prune` removes them with the other hints.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { sha256Hex } from '../internal/sha256'
import { writeHint } from '../internal/metawrites'
import { parseDockerfile, ParsedDockerfile } from './dockerfile'

/** Written into the CLI bundle by scripts/bundle-cli.js; undefined elsewhere. */
declare const STRATA_BUNDLE_ID: string | undefined

const VERSION = 1

/** The bundle's id, if this code runs from the CLI bundle. */
function bundleId(): string | undefined {
  return typeof STRATA_BUNDLE_ID === 'string' && /^[0-9a-f]{64}$/.test(STRATA_BUNDLE_ID) ? STRATA_BUNDLE_ID : undefined
}

/** `parseDockerfile(text)`, from the memo in `dir` when this bundle parsed the same text before. */
export function parseDockerfileMemo(text: string, dir: string): ParsedDockerfile {
  const id = bundleId()
  if (id === undefined) return parseDockerfile(text)
  const file = path.join(dir, `${sha256Hex(JSON.stringify([VERSION, id, text]))}.json`)
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { v?: number; parsed?: ParsedDockerfile }
    if (v.v === VERSION && v.parsed && Array.isArray(v.parsed.nodes) && Array.isArray(v.parsed.warnings) && typeof v.parsed.escape === 'string') return v.parsed
  } catch { /* none yet, or unreadable */ }
  const parsed = parseDockerfile(text)
  // A memo that cannot be written is parsed again next time.
  writeHint(file, JSON.stringify({ v: VERSION, parsed }))
  return parsed
}
