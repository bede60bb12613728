/**
 * The one way test servers (fault proxy, hostile registry, search index) listen: plain HTTP on
 * 127.0.0.1, a free port chosen by the kernel, `host` = `127.0.0.1:PORT` once started; `stop`
 * drops open connections (a hung one included) and closes the listener.
 */
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'

export abstract class LocalServer {
  readonly server: http.Server
  host = ''

  constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res))
  }

  /** Answers one request. */
  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse): void

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  stop(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((r) => this.server.close(() => r()))
  }
}
