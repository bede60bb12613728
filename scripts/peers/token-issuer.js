#!/usr/bin/env node
// A small token issuer for distribution's `auth: token:` (tests and benchmarks only): ES256 JWTs
// signed with KEY, the certificate CERT in the `x5c` header (the registry trusts it through its
// `rootcertbundle`). Users come from --user U:P (repeatable); a known user gets pull and push on
// every repository it asks for, an anonymous caller nothing.
//
//   node token-issuer.js --key K --cert C --issuer ISS --service SVC --port-file F [--user U:P]...
//        [--jwt-ttl SECS] [--expires-in SECS] [--expired-first N] [--garbage]
//
// GET /token?service=&scope=...&scope=...   the token endpoint
// GET /stats                                {"requests": N, "scopeSets": {"<sorted scopes>": N}}
// --jwt-ttl is the token's real lifetime (its `exp`); --expires-in what the answer claims (so a
// test can make the client refresh a token by itself); --expired-first N makes the first N tokens
// expired beyond the registry's leeway (it answers 401 to them). --garbage answers
// 200 with HTML instead of a token.
'use strict'
const http = require('node:http')
const fs = require('node:fs')
const crypto = require('node:crypto')

const args = process.argv.slice(2)
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def }
const users = new Map()
args.forEach((a, i) => { if (a === '--user') { const [u, ...p] = args[i + 1].split(':'); users.set(u, p.join(':')) } })
const key = crypto.createPrivateKey(fs.readFileSync(opt('key')))
const der = new crypto.X509Certificate(fs.readFileSync(opt('cert'))).raw
const issuer = opt('issuer'), service = opt('service')
const jwtTtl = Number(opt('jwt-ttl', '300')), expiresIn = Number(opt('expires-in', String(jwtTtl)))
const garbage = args.includes('--garbage')
let expiredLeft = Number(opt('expired-first', '0'))
const stats = { requests: 0, scopeSets: {} }

const b64url = (b) => Buffer.from(b).toString('base64url')

function token(account, scopes) {
  const now = Math.floor(Date.now() / 1000)
  const access = account ? scopes.map((s) => {
    const i = s.lastIndexOf(':'); const j = s.indexOf(':')
    return { type: s.slice(0, j), name: s.slice(j + 1, i), actions: s.slice(i + 1).split(',').filter((a) => a === 'pull' || a === 'push' || a === '*') }
  }) : []
  const header = { typ: 'JWT', alg: 'ES256', x5c: [der.toString('base64')] }
  // distribution accepts tokens up to 60 s past `exp`: an expired one must be older than that.
  const exp = expiredLeft-- > 0 ? now - 120 : now + jwtTtl
  const claims = { iss: issuer, sub: account || '', aud: service, exp, nbf: now - 10, iat: now, jti: crypto.randomBytes(12).toString('hex'), access }
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
  const sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
  return `${input}.${b64url(sig)}`
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/stats') { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(stats)); return }
  if (url.pathname !== '/token') { res.statusCode = 404; res.end(); return }
  stats.requests++
  const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean).sort()
  const keyOf = scopes.join(' ')
  stats.scopeSets[keyOf] = (stats.scopeSets[keyOf] || 0) + 1
  let account = ''
  const auth = req.headers.authorization || ''
  if (auth.startsWith('Basic ')) {
    const [u, ...p] = Buffer.from(auth.slice(6), 'base64').toString().split(':')
    if (users.get(u) !== p.join(':')) {
      res.statusCode = 401; res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }))
      return
    }
    account = u
  }
  if (garbage) { res.setHeader('content-type', 'text/html'); res.end('<html><body>login page</body></html>'); return }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ token: token(account, scopes), expires_in: expiresIn, issued_at: new Date().toISOString() }))
})
server.listen(0, '127.0.0.1', () => fs.writeFileSync(opt('port-file'), String(server.address().port)))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
