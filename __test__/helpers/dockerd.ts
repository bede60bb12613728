/**
 * A private Docker Engine for tests, started by the project's own `scripts/peers/dockerd.sh`
 * under a name of its own (own socket, data root, exec root, log), so test files and the
 * benchmark peer never stop each other's daemon.
 */
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { REPO } from './fs'

const SCRIPT = path.join(REPO, 'scripts/peers/dockerd.sh')

/** Checkouts of the project on one host (git worktrees, CI's clone) each get engines of their own. */
const CHECKOUT = createHash('sha256').update(REPO).digest('hex').slice(0, 6)

export class Dockerd {
  host = ''
  readonly name: string
  /** `suite` names the engine within this checkout; the socket and roots also carry the checkout's hash. */
  constructor(suite: string) {
    this.name = `${suite}-${CHECKOUT}`
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, STRATA_DOCKERD_NAME: this.name }
  }

  start(): void {
    const out = execFileSync('bash', [SCRIPT, 'start'], { env: this.env(), encoding: 'utf8' })
    this.host = /DOCKER_HOST=(\S+)/.exec(out)![1]
  }

  stop(): void {
    try {
      execFileSync('bash', [SCRIPT, 'stop'], { env: this.env(), stdio: 'ignore' })
    } catch { /* already stopped */ }
  }

  docker(...args: string[]): string {
    return execFileSync('docker', args, { env: { ...process.env, DOCKER_HOST: this.host }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  }
}
