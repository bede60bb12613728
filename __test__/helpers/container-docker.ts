/**
 * A private Docker Engine for the container round-trip test (its own data root, exec root,
 * socket and pidfile — separate from the benchmark peer, so suites can run side by side).
 * Networking off: containers run with --network none.
 */
import * as fs from 'node:fs'
import { execFileSync, spawn } from 'node:child_process'

const NAME = 'strata-ctr-docker'
export const DOCKER_HOST = `unix:///run/${NAME}.sock`
const DATA_ROOT = `/var/lib/${NAME}`
const EXEC_ROOT = `/run/${NAME}`
const PIDFILE = `/run/${NAME}.pid`

export function docker(...args: string[]): string {
  return execFileSync('docker', args, { env: { ...process.env, DOCKER_HOST }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function answers(): boolean {
  try {
    docker('version', '--format', '{{.Server.Version}}')
    return true
  } catch {
    return false
  }
}

export async function startDockerd(): Promise<void> {
  if (answers()) return
  fs.mkdirSync(DATA_ROOT, { recursive: true })
  fs.mkdirSync(EXEC_ROOT, { recursive: true })
  const log = fs.openSync(`/var/log/${NAME}.log`, 'w')
  const child = spawn('dockerd', [
    '--data-root', DATA_ROOT, '--exec-root', EXEC_ROOT, '--pidfile', PIDFILE, '-H', DOCKER_HOST,
    '--storage-driver=overlay2', '--iptables=false', '--ip-masq=false', '--bridge=none', '--userland-proxy=false', '--log-level=warn',
  ], { detached: true, stdio: ['ignore', log, log] })
  child.unref()
  for (let i = 0; i < 120; i++) {
    if (answers()) return
    if (child.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 500))
  }
  throw new Error(`dockerd did not start; see /var/log/${NAME}.log:\n${fs.readFileSync(`/var/log/${NAME}.log`, 'utf8').slice(-2000)}`)
}

export async function stopDockerd(): Promise<void> {
  let pid = 0
  try {
    pid = Number(fs.readFileSync(PIDFILE, 'utf8'))
  } catch {
    return
  }
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  for (let i = 0; i < 60; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    await new Promise((r) => setTimeout(r, 500))
  }
}
