/**
 * `--change` / `-c` instructions of `import` and `commit`: the Dockerfile subset Docker accepts
 * there (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR),
 * applied to an image's `config`.
 */
import { StrataError } from '../errors'
import { ContainerConfig } from './imagedb'

const ALLOWED = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']

/** JSON array form if it parses as a string array, else `undefined`. */
function jsonArray(s: string): string[] | undefined {
  if (!s.trim().startsWith('[')) return undefined
  try {
    const v = JSON.parse(s)
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined
  } catch {
    return undefined
  }
}

/** Splits `k=v k2="v 2"` (or the legacy `k v` form) into pairs. */
function keyValues(s: string, instr: string): [string, string][] {
  const out: [string, string][] = []
  const re = /\s*([^\s=]+)=("((?:[^"\\]|\\.)*)"|'([^']*)'|(\S*))/gy
  let m: RegExpExecArray | null
  let pos = 0
  while ((m = re.exec(s)) !== null) {
    out.push([m[1], m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[4] ?? m[5] ?? ''])
    pos = re.lastIndex
  }
  if (out.length > 0 && s.slice(pos).trim() === '') return out
  const sp = s.trim().search(/\s/)
  if (sp < 0) throw new StrataError('InvalidArgument', `${instr} requires at least one argument`)
  return [[s.trim().slice(0, sp), s.trim().slice(sp).trim()]]
}

export function applyChanges(config: ContainerConfig, changes: string[]): ContainerConfig {
  const c: ContainerConfig = { ...config }
  for (const raw of changes) {
    const line = raw.trim()
    const sp = line.search(/\s/)
    const instr = (sp < 0 ? line : line.slice(0, sp)).toUpperCase()
    const rest = sp < 0 ? '' : line.slice(sp + 1).trim()
    if (!ALLOWED.includes(instr)) throw new StrataError('InvalidArgument', `${instr} is not a valid change command`)
    switch (instr) {
      case 'CMD':
        c.Cmd = jsonArray(rest) ?? ['/bin/sh', '-c', rest]
        break
      case 'ENTRYPOINT':
        c.Entrypoint = jsonArray(rest) ?? ['/bin/sh', '-c', rest]
        break
      case 'ENV': {
        const env = [...(c.Env ?? [])]
        for (const [k, v] of keyValues(rest, instr)) {
          const i = env.findIndex((e) => e.split('=')[0] === k)
          if (i >= 0) env[i] = `${k}=${v}`
          else env.push(`${k}=${v}`)
        }
        c.Env = env
        break
      }
      case 'LABEL':
        c.Labels = { ...(c.Labels ?? {}) }
        for (const [k, v] of keyValues(rest, instr)) c.Labels[k] = v
        break
      case 'EXPOSE':
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}) }
        for (const p of rest.split(/\s+/).filter(Boolean)) c.ExposedPorts[p.includes('/') ? p : `${p}/tcp`] = {}
        break
      case 'VOLUME':
        c.Volumes = { ...(c.Volumes ?? {}) }
        for (const v of jsonArray(rest) ?? rest.split(/\s+/).filter(Boolean)) c.Volumes[v] = {}
        break
      case 'ONBUILD':
        c.OnBuild = [...(c.OnBuild ?? []), rest]
        break
      case 'STOPSIGNAL':
        c.StopSignal = rest
        break
      case 'USER':
        c.User = rest
        break
      case 'WORKDIR':
        c.WorkingDir = rest.startsWith('/') ? rest : `${c.WorkingDir || '/'}${(c.WorkingDir ?? '/').endsWith('/') ? '' : '/'}${rest}`
        break
    }
    if (!rest && instr !== 'CMD') throw new StrataError('InvalidArgument', `${instr} requires an argument`)
  }
  return c
}
