/**
 * The walkthrough's registry part (seeds 002 and 003: login, push, pull layer by layer, search,
 * logout), against a CNCF distribution registry with a password behind TLS that the project's
 * own script starts on a free 127.0.0.1 port. Credentials go to a Docker config dir of the
 * walkthrough's own (`$DOCKER_CONFIG`), never to the user's.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'

type Strata = (...args: string[]) => Promise<number>
type Say = (text: string) => void
type Sh = (cmd: string) => void

const SCRIPT = path.resolve(__dirname, '..', 'scripts', 'peers', 'registry.sh')
const USER = 'strata'
const PASSWORD = 'walkthrough-secret'

/** Runs sections `first`.. and returns the next free section number. */
export async function walkRegistry(strata: Strata, sh: Sh, say: Say, work: string, image: string, first: number): Promise<{ next: number; pulled: string }> {
  const dir = path.join(work, 'registry')
  const cfg = path.join(work, 'docker-config')
  const before = process.env.DOCKER_CONFIG
  process.env.DOCKER_CONFIG = cfg
  let n = first
  say(`${n++}. A registry of our own: the CNCF distribution registry, with a password, behind TLS; login checks the password, then stores it where docker keeps it (seed 002)`)
  const out = execFileSync('bash', [SCRIPT, 'start', dir, 'htpasswd', '--user', USER, '--password', PASSWORD], { encoding: 'utf8' })
  const host = /REGISTRY=(\S+)/.exec(out)![1]
  try {
    process.stdout.write(`(registry on https://${host}, user ${USER})\n`)
    await strata('login', '-u', USER, '-p', 'wrong-password', host)
    await strata('login', '-u', USER, '-p', PASSWORD, host)
    sh(`cat ${cfg}/config.json; echo`)

    const name = `${host}/demo/app`
    say(`${n++}. push: tag for the registry, then upload it layer by layer; the second push finds every layer there already (seed 002)`)
    await strata('tag', image, `${name}:1.0`)
    await strata('push', `${name}:1.0`)
    await strata('push', `${name}:1.0`)

    say(`${n++}. pull: remove the image, then download it back layer by layer (seed 003); the base layer another image still has is not downloaded (seed 004)`)
    await strata('rmi', `${name}:1.0`, image, image.replace(/:[^:/]+$/, ':latest'))
    await strata('pull', `${name}:1.0`)
    await strata('images', '--digests', name)

    say(`${n++}. search: this registry has no search API, so strata searches its catalog (docker search cannot); logout removes the password`)
    await strata('search', `${host}/demo`)
    await strata('logout', host)
    sh(`cat ${cfg}/config.json; echo`)
    return { next: n, pulled: `${name}:1.0` }
  } finally {
    execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' })
    fs.rmSync(dir, { recursive: true, force: true })
    if (before === undefined) delete process.env.DOCKER_CONFIG
    else process.env.DOCKER_CONFIG = before
  }
}
