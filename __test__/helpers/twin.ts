/**
 * Running the same command line through `docker` (a private engine) and `strata`, for
 * differential tests: raw stdout (tar streams survive), stderr without the docker CLI's logrus
 * noise, exit codes.
 */
import { spawn } from 'node:child_process'
import { CLI } from './fs'
import type { Dockerd } from './dockerd'

export interface Ran {
  code: number
  stdout: Buffer
  stderr: string
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: Buffer | string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      // The docker CLI logs its own tar goroutine's complaints (`time="..." level=error ...`).
      const stderr = Buffer.concat(err).toString().split('\n').filter((l) => !/^time="[^"]*" level=/.test(l)).join('\n')
      resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr })
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(input)
  })
}

/** `docker ARGS` against the engine. */
export function docker(engine: Dockerd, args: string[], input?: Buffer | string): Promise<Ran> {
  return run('docker', args, { DOCKER_HOST: engine.host }, input)
}

/** `strata --root ROOT ARGS` (the built CLI). */
export function strata(root: string, args: string[], input?: Buffer | string): Promise<Ran> {
  return run(process.execPath, [CLI, '--root', root, ...args], {}, input)
}
