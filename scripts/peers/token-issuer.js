#!/usr/bin/env node
// A small token issuer for distribution's `auth: token:` (tests and benchmarks only): ES256 JWTs
// signed with KEY, the certificate CERT in the `x5c` header (the registry trusts it through its
// `rootcertbundle`). Users come from --user U:P (repeatable); a known user gets pull and push on
// every repository it asks for, an anonymous caller nothing.
//
//   node token-issuer.js --key K --cert C --issuer ISS --service SVC --port-file F [--user U:P]...
//        [--jwt-ttl SECS] [--expires-in SECS] [--expired-first N] [--garbage] [--rotate-refresh]
//
// Both ways a client may ask (distribution's token spec, docs/spec/auth/token.md and oauth.md):
//
// GET  /token?service=&scope=...&scope=...[&offline_token=true&client_id=C]   Basic auth or none.
//      With offline_token=true an authenticated caller also gets a `refresh_token` (an opaque
//      identity token, issued to client_id C).
// POST /token  (application/x-www-form-urlencoded, OAuth2)
//      grant_type=password&username=&password=&client_id=C&service=&scope=[&access_type=offline]
//          access_type=offline adds a `refresh_token`.
//      grant_type=refresh_token&refresh_token=R&client_id=C&service=&scope=
//          R must be one this issuer gave out, to the same client_id (RFC 6749 §6); the answer
//          has no new refresh token unless --rotate-refresh (then a new one, and R stops working).
//      Refusals are OAuth errors: 400 {"error":"invalid_grant"|"invalid_request"|...}, 401 for a
//      wrong password.
// GET  /stats   {"requests": N, "scopeSets": {"<sorted scopes>": N}, "log": [one object per token
//      request: method, grant (basic|anonymous|password|refresh_token), clientId, offline, account,
//      scopes, refreshIssued]}
//
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
const rotateRefresh = args.includes('--rotate-refresh')
let expiredLeft = Number(opt('expired-first', '0'))
const stats = { requests: 0, scopeSets: {}, log: [] }
/** Refresh tokens given out: token → { account, clientId }. */
const refreshTokens = new Map()

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

function newRefreshToken(account, clientId) {
  const t = crypto.randomBytes(24).toString('base64url')
  refreshTokens.set(t, { account, clientId })
  return t
}

function send(res, status, body) {
  res.statusCode = status
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify(body))
}

const oauthError = (res, status, error, description) => send(res, status, { error, error_description: description })

function count(scopes, entry) {
  stats.requests++
  const keyOf = scopes.join(' ')
  stats.scopeSets[keyOf] = (stats.scopeSets[keyOf] || 0) + 1
  stats.log.push(entry)
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString()))
    req.on('error', reject)
  })
}

/** GET: Basic auth (or anonymous), refresh token only with offline_token=true. */
function handleGet(req, res, url) {
  const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean).sort()
  const offline = url.searchParams.get('offline_token') === 'true'
  const clientId = url.searchParams.get('client_id') || ''
  let account = ''
  const auth = req.headers.authorization || ''
  if (auth.startsWith('Basic ')) {
    const [u, ...p] = Buffer.from(auth.slice(6), 'base64').toString().split(':')
    account = u
    if (users.get(u) !== p.join(':')) {
      count(scopes, { method: 'GET', grant: 'basic', clientId, offline, account, scopes, refreshIssued: false, refused: true })
      send(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] })
      return
    }
  }
  const refresh = offline && account ? newRefreshToken(account, clientId) : undefined
  count(scopes, { method: 'GET', grant: account ? 'basic' : 'anonymous', clientId, offline, account, scopes, refreshIssued: Boolean(refresh) })
  if (garbage) { res.setHeader('content-type', 'text/html'); res.end('<html><body>login page</body></html>'); return }
  send(res, 200, { token: token(account, scopes), expires_in: expiresIn, issued_at: new Date().toISOString(), ...(refresh ? { refresh_token: refresh } : {}) })
}

/** POST: the OAuth2 form (grant_type password or refresh_token). */
async function handlePost(req, res) {
  if (!/^application\/x-www-form-urlencoded/.test(req.headers['content-type'] || '')) {
    oauthError(res, 400, 'invalid_request', 'expected a form'); return
  }
  const form = new URLSearchParams(await readBody(req))
  const scopes = (form.get('scope') || '').split(' ').filter(Boolean).sort()
  const grant = form.get('grant_type') || ''
  const clientId = form.get('client_id') || ''
  const entry = { method: 'POST', grant, clientId, offline: form.get('access_type') === 'offline', account: '', scopes, refreshIssued: false }
  count(scopes, entry)
  if (!clientId) { oauthError(res, 400, 'invalid_request', 'client_id required'); return }
  let account
  let refresh
  if (grant === 'password') {
    account = form.get('username') || ''
    entry.account = account
    if (!account || users.get(account) !== (form.get('password') || '')) {
      entry.refused = true
      oauthError(res, 401, 'invalid_grant', 'wrong username or password'); return
    }
    if (entry.offline) refresh = newRefreshToken(account, clientId)
  } else if (grant === 'refresh_token') {
    const given = form.get('refresh_token') || ''
    const known = refreshTokens.get(given)
    if (!known || known.clientId !== clientId) {
      entry.refused = true
      oauthError(res, 400, 'invalid_grant', known ? 'refresh token issued to another client' : 'unknown refresh token'); return
    }
    account = known.account
    entry.account = account
    if (rotateRefresh) { refreshTokens.delete(given); refresh = newRefreshToken(account, clientId) }
  } else {
    oauthError(res, 400, 'unsupported_grant_type', `grant_type ${grant}`); return
  }
  entry.refreshIssued = Boolean(refresh)
  if (garbage) { res.setHeader('content-type', 'text/html'); res.end('<html><body>login page</body></html>'); return }
  send(res, 200, { access_token: token(account, scopes), scope: scopes.join(' '), expires_in: expiresIn, issued_at: new Date().toISOString(), ...(refresh ? { refresh_token: refresh } : {}) })
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/stats') { send(res, 200, stats); return }
  if (url.pathname !== '/token') { res.statusCode = 404; res.end(); return }
  if (req.method === 'GET') handleGet(req, res, url)
  else if (req.method === 'POST') handlePost(req, res).catch(() => { res.statusCode = 500; res.end() })
  else { res.statusCode = 405; res.end() }
})
server.listen(0, '127.0.0.1', () => fs.writeFileSync(opt('port-file'), String(server.address().port)))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
