/**
 * A `docker-credential-<name>` helper made by the test: a real executable speaking the
 * credential-helper protocol (docker-credential-helpers' client: `get` / `store` / `erase` /
 * `list` as the argument, the server URL or a JSON request on stdin, JSON on stdout, exit 1 with
 * "credentials not found in native keychain" for an unknown server). It keeps its secrets in a
 * JSON file beside it, so a test can see what was stored where. `docker` and strata both run it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

export interface CredentialHelper {
  /** Put this dir first on PATH. */
  binDir: string
  /** What the helper holds, by server URL. */
  secrets(): Record<string, { Username: string; Secret: string }>
}

export function makeCredentialHelper(dir: string, name: string): CredentialHelper {
  const binDir = path.join(dir, `helper-bin-${name}`)
  const store = path.join(dir, `helper-store-${name}.json`)
  fs.mkdirSync(binDir, { recursive: true })
  fs.writeFileSync(store, '{}')
  const script = `#!${process.execPath}
const fs = require('fs')
const store = ${JSON.stringify(store)}
const action = process.argv[2]
const input = fs.readFileSync(0, 'utf8')
const db = JSON.parse(fs.readFileSync(store, 'utf8'))
const save = () => fs.writeFileSync(store, JSON.stringify(db))
const notFound = () => { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1) }
if (action === 'get') {
  const url = input.trim()
  if (!db[url]) notFound()
  process.stdout.write(JSON.stringify({ ServerURL: url, Username: db[url].Username, Secret: db[url].Secret }) + '\\n')
} else if (action === 'store') {
  const req = JSON.parse(input)
  db[req.ServerURL] = { Username: req.Username, Secret: req.Secret }
  save()
} else if (action === 'erase') {
  const url = input.trim()
  if (!db[url]) notFound()
  delete db[url]
  save()
} else if (action === 'list') {
  const out = {}
  for (const [k, v] of Object.entries(db)) out[k] = v.Username
  process.stdout.write(JSON.stringify(out) + '\\n')
} else {
  process.stdout.write('unknown credential action\\n')
  process.exit(1)
}
`
  const exe = path.join(binDir, `docker-credential-${name}`)
  fs.writeFileSync(exe, script, { mode: 0o755 })
  return { binDir, secrets: () => JSON.parse(fs.readFileSync(store, 'utf8')) }
}
