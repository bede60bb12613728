/**
 * The test addon (crates/strata-testing, built into native/testing/ by `npm run build:testing`;
 * `npm test` builds it): whiteouts and opaque dirs made by hand, snapshots of real trees,
 * synchronous overlay mounts. The release addon the library loads carries none of these.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

type TestingBinding = typeof import('../../native/testing/binding')

function load(): TestingBinding {
  const file = path.resolve(__dirname, '..', '..', 'native', 'testing', 'binding.js')
  if (!fs.existsSync(file)) throw new Error('strata: test addon not built; run `npm run build:testing`')
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as TestingBinding
}

export const testing: TestingBinding = load()
