/**
 * A small server speaking Docker Hub's v1 search API on 127.0.0.1 (a free port), for
 * `search` tests: `GET /v1/search?q=TERM&n=LIMIT` answers Hub's JSON shape with the entries
 * whose name contains TERM, in the order given; `GET /v1/_ping` answers as a v1 registry does
 * (Docker's daemon pings a non-Hub index before searching it). Everything else is 404.
 */
import * as http from 'node:http'
import { LocalServer } from './local-server'

export interface HubEntry {
  name: string
  description: string
  star_count: number
  is_official: boolean
  is_automated: boolean
}

export class HubSearchServer extends LocalServer {
  /** Every request path seen, in order. */
  readonly requests: string[] = []

  constructor(readonly entries: HubEntry[]) {
    super()
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests.push(req.url ?? '')
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/v1/_ping') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Docker-Registry-Version': '0.6.0', 'X-Docker-Registry-Standalone': 'true' })
      res.end('true')
      return
    }
    if (url.pathname === '/v1/search') {
      const q = url.searchParams.get('q') ?? ''
      const n = Number(url.searchParams.get('n') ?? 25)
      const hits = this.entries.filter((e) => e.name.includes(q))
      const results = hits.slice(0, n)
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ num_pages: 1, num_results: hits.length, page_size: n, query: q, page: 1, results }))
      return
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' })
    res.end('404 page not found\n')
  }
}
