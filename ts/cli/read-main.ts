/**
 * Entry of the CLI's read-only bundle, dist/cli/read.js (scripts/bundle-cli.js): `--version`,
 * `--help` and the commands marked `readOnly` in ./commands.ts (`images`, `ps`, `inspect`,
 * `history`). bin/strata.js runs it first; it answers `undefined` for any other command line,
 * which bin/strata.js then hands to the full bundle. Being small, it is quick to read and its
 * V8 code cache quick to load: that is most of what these commands cost beyond Node's own start.
 */
import { declareSoleCaller } from '../internal/boundary'
export { readOnlyMain as main } from './main'

// This bundle runs in the `strata` process alone (bin/strata.js), one command at a time.
declareSoleCaller()
