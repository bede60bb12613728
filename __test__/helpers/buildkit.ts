/**
 * The peer `strata build` is judged against: BuildKit as Debian's docker 20.10 CLI drives it
 * (`/usr/bin/docker` with `DOCKER_BUILDKIT=1`; a newer `docker` first on PATH may lack the
 * builder) and the classic builder, both on a private Docker Engine (./dockerd.ts). The engine
 * has no bridge network, so builds use `--network host` (strata's default too).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { Dockerd } from './dockerd'

export const LEGACY_DOCKER = '/usr/bin/docker'

/** sha256 of an empty tar (1024 zero bytes). */
const EMPTY_TAR = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef'

/**
 * BuildKit 0.8 (Docker 20.10) keeps a step that changed nothing as an empty tar layer; newer
 * BuildKit, Docker's classic builder and strata drop it and mark the history row
 * `empty_layer`. Rewrites a 20.10 config that way, so the two can be compared.
 */
export function withoutEmptyLayers(cfg: Record<string, unknown>): Record<string, unknown> {
  const c = JSON.parse(JSON.stringify(cfg)) as { history?: { empty_layer?: boolean }[]; rootfs: { diff_ids: string[] } }
  const ids: string[] = []
  let i = 0
  for (const h of c.history ?? []) {
    if (h.empty_layer) continue
    const id = c.rootfs.diff_ids[i++]
    if (id === EMPTY_TAR) h.empty_layer = true
    else ids.push(id)
  }
  c.rootfs.diff_ids = ids
  return c as unknown as Record<string, unknown>
}

export class BuildKitPeer extends Dockerd {
  /** `/usr/bin/docker ARGS` against this engine; `buildkit` picks the builder. */
  cli(args: string[], opts: { buildkit?: boolean; input?: string | Buffer } = {}): string {
    return execFileSync(LEGACY_DOCKER, args, {
      env: { ...process.env, DOCKER_HOST: this.host, DOCKER_BUILDKIT: opts.buildkit === false ? '0' : '1' },
      encoding: 'utf8', maxBuffer: 1 << 28, input: opts.input, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    })
  }

  /** `docker build` of a context dir; returns the image ID. */
  build(ctx: string, extra: string[] = [], opts: { buildkit?: boolean } = {}): string {
    const iid = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bk-')), 'iid')
    try {
      this.cli(['build', '--network', 'host', '--iidfile', iid, ...extra, ctx], opts)
      return fs.readFileSync(iid, 'utf8').trim()
    } finally {
      fs.rmSync(path.dirname(iid), { recursive: true, force: true })
    }
  }

  /** The merged filesystem of an image of the engine, extracted under `into`. */
  exportTo(image: string, into: string): void {
    const cid = this.cli(['create', image, 'x']).trim()
    try {
      fs.mkdirSync(into, { recursive: true })
      const tarFile = `${into}.tar`
      this.cli(['export', '-o', tarFile, cid])
      execFileSync('tar', ['-xf', tarFile, '-C', into, '--numeric-owner', '-p', '--warning=no-timestamp'])
      fs.rmSync(tarFile)
    } finally {
      this.cli(['rm', '-f', cid])
    }
  }

  /** The config JSON of an image of the engine (via `docker save`), empty layers as `withoutEmptyLayers` says. */
  rawConfig(image: string): Record<string, unknown> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bk-save-'))
    try {
      this.cli(['save', '-o', path.join(dir, 'i.tar'), image])
      execFileSync('tar', ['-xf', path.join(dir, 'i.tar'), '-C', dir])
      const [m] = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { Config: string }[]
      return withoutEmptyLayers(JSON.parse(fs.readFileSync(path.join(dir, m.Config), 'utf8')) as Record<string, unknown>)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }

  /** The files (relative paths) a BuildKit build of `ctx` writes with `-o type=local`. */
  contextFiles(ctx: string): string[] {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bk-out-'))
    try {
      this.cli(['build', '--network', 'host', '-o', `type=local,dest=${out}`, ctx])
      const files: string[] = []
      const walk = (d: string, rel: string): void => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          const r = rel ? `${rel}/${e.name}` : e.name
          if (e.isDirectory()) walk(path.join(d, e.name), r)
          else files.push(r)
        }
      }
      walk(out, '')
      return files.sort()
    } finally {
      fs.rmSync(out, { recursive: true, force: true })
    }
  }
}
