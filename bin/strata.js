#!/usr/bin/env node
'use strict'
const path = require('node:path')
const fs = require('node:fs')
const compiled = path.join(__dirname, '..', 'dist', 'ts', 'cli', 'main.js')
if (!fs.existsSync(compiled)) {
  process.stderr.write('strata: not built yet; run `npm run setup`\n')
  process.exit(1)
}
require(compiled)
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code })
  .catch((err) => {
    process.stderr.write(`strata: ${err && err.stack ? err.stack : err}\n`)
    process.exitCode = 1
  })
