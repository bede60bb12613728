/**
 * The image config a build writes, exactly as BuildKit's Dockerfile frontend and image
 * exporter write it: the `Image` struct of `dockerfile2llb` (OCI image config + Docker's
 * Healthcheck, ArgsEscaped, OnBuild, Shell, and `variant`), patched by the exporter into a
 * JSON object with sorted top-level keys (`architecture`, `config`, `created`, `history`,
 * `os`, `rootfs`, ...), Go's JSON encoding (HTML-safe escapes, sorted map keys, RFC 3339
 * times with nanoseconds) and the exporter's rules for history `created` times.
 */
import { goQuote } from './shell'
import type { DiffId } from '../chain'

/** `config` of an image config, as BuildKit keeps it (field order is the JSON order). */
export interface BkConfig {
  User?: string
  ExposedPorts?: Record<string, Record<string, never>>
  Env?: string[]
  Entrypoint?: string[] | null
  Cmd?: string[] | null
  Volumes?: Record<string, Record<string, never>>
  WorkingDir?: string
  Labels?: Record<string, string>
  StopSignal?: string
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number }
  ArgsEscaped?: boolean
  OnBuild?: string[] | null
  StopTimeout?: number
  Shell?: string[]
}

export interface BkHistory {
  created?: string
  created_by?: string
  author?: string
  comment?: string
  empty_layer?: boolean
}

export interface BkImage {
  author?: string
  architecture: string
  os: string
  variant?: string
  config: BkConfig
  rootfs: { type: string; diff_ids: DiffId[] }
  history: BkHistory[]
}

/** The comment BuildKit gives the history entries of Dockerfile instructions. */
export const HISTORY_COMMENT = 'buildkit.dockerfile.v0'

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** A base image's config as BuildKit reads it: only the fields of its `Image` struct survive. */
export function fromBaseConfig(raw: Record<string, unknown>): BkImage {
  const c = (raw.config ?? {}) as Record<string, unknown>
  const cfg: BkConfig = {}
  const copy = <K extends keyof BkConfig>(k: K): void => {
    const v = c[k]
    if (v !== undefined && v !== null && !(typeof v === 'string' && v === '') && v !== false) cfg[k] = v as BkConfig[K]
  }
  for (const k of ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'Healthcheck', 'ArgsEscaped', 'StopTimeout', 'Shell'] as const) copy(k)
  if (Array.isArray(c.OnBuild) && c.OnBuild.length > 0) cfg.OnBuild = [...(c.OnBuild as string[])]
  const rootfs = (raw.rootfs ?? { type: 'layers', diff_ids: [] }) as { type: string; diff_ids: DiffId[] }
  return {
    ...(typeof raw.author === 'string' && raw.author ? { author: raw.author } : {}),
    architecture: String(raw.architecture ?? ''),
    os: String(raw.os ?? ''),
    ...(typeof raw.variant === 'string' && raw.variant ? { variant: raw.variant } : {}),
    config: cfg,
    rootfs: { type: rootfs.type || 'layers', diff_ids: [...(rootfs.diff_ids ?? [])] },
    history: ((raw.history ?? []) as BkHistory[]).map((h) => ({ ...h })),
  }
}

/** BuildKit's `emptyImage`: what `FROM scratch` starts from. */
export function emptyImage(os: string, arch: string, variant?: string): BkImage {
  return {
    architecture: arch, os, ...(variant ? { variant } : {}),
    config: { Env: [DEFAULT_PATH_ENV], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  }
}

export function cloneImage(img: BkImage): BkImage {
  return JSON.parse(JSON.stringify(img)) as BkImage
}

/**
 * Fills in history `created` times as BuildKit's exporter does: a layer entry has its
 * layer's time; an entry without one (metadata instructions, empty layers) takes the first
 * new layer's time if it comes before that layer, else the time of the layer before it.
 * Returns the image's `created` (the last entry's).
 */
export function normalizeHistory(history: BkHistory[]): string | undefined {
  let created: string | undefined
  let noCreated = false
  for (const h of history) {
    if (h.created !== undefined) {
      created = h.created
      if (noCreated) break
    } else noCreated = true
  }
  noCreated = false
  for (const h of history) {
    if (h.created !== undefined) {
      if (noCreated) created = h.created
    } else {
      noCreated = true
      h.created = created
    }
  }
  let last: string | undefined
  for (const h of history) if (h.created !== undefined) last = h.created
  return last
}

/** Go's json.Marshal string escaping (HTML-safe: <, >, & as \u003c...; U+2028/9 escaped). */
function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** Go's json.Marshal of plain data: map (object) keys sorted unless `ordered` says otherwise. */
export function goJson(v: unknown, ordered = false): string {
  if (v === null || v === undefined) return 'null'
  if (typeof v === 'string') return goString(v)
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v)
  if (Array.isArray(v)) return `[${v.map((x) => goJson(x)).join(',')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o).filter((k) => o[k] !== undefined)
  if (!ordered) keys.sort()
  return `{${keys.map((k) => `${goString(k)}:${goJson(o[k])}`).join(',')}}`
}

const CONFIG_ORDER: (keyof BkConfig)[] = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal',
  'Healthcheck', 'ArgsEscaped', 'OnBuild', 'StopTimeout', 'Shell']

/** `config` in BuildKit's field order, empty fields left out as its `omitempty` tags say. */
function configJson(c: BkConfig): string {
  const parts: string[] = []
  for (const k of CONFIG_ORDER) {
    const v = c[k]
    if (k === 'OnBuild') {
      const ob = v as string[] | null | undefined
      parts.push(`"OnBuild":${goJson(ob && ob.length ? ob : null)}`)
      continue
    }
    if (v === undefined || v === null || v === '' || v === false) continue
    if (Array.isArray(v) && v.length === 0) continue
    if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) continue
    if (k === 'Healthcheck') {
      const h = v as NonNullable<BkConfig['Healthcheck']>
      const hp: string[] = []
      if (h.Test && h.Test.length) hp.push(`"Test":${goJson(h.Test)}`)
      for (const f of ['Interval', 'Timeout', 'StartPeriod', 'Retries'] as const) if (h[f]) hp.push(`"${f}":${h[f]}`)
      parts.push(`"Healthcheck":{${hp.join(',')}}`)
      continue
    }
    parts.push(`${goString(k)}:${goJson(v)}`)
  }
  return `{${parts.join(',')}}`
}

function historyJson(h: BkHistory): string {
  const parts: string[] = []
  if (h.created) parts.push(`"created":${goString(h.created)}`)
  if (h.created_by) parts.push(`"created_by":${goString(h.created_by)}`)
  if (h.author) parts.push(`"author":${goString(h.author)}`)
  if (h.comment) parts.push(`"comment":${goString(h.comment)}`)
  if (h.empty_layer) parts.push('"empty_layer":true')
  return `{${parts.join(',')}}`
}

/** The config bytes: top-level keys sorted (the exporter patches a map), Go's encoding. */
export function imageConfigBytes(img: BkImage, created: string | undefined): Buffer {
  const top: Record<string, string> = {
    architecture: goString(img.architecture),
    config: configJson(img.config),
    created: created === undefined ? 'null' : goString(created),
    history: `[${img.history.map(historyJson).join(',')}]`,
    os: goString(img.os),
    rootfs: `{"type":${goString(img.rootfs.type)},"diff_ids":${goJson(img.rootfs.diff_ids)}}`,
  }
  if (img.author) top.author = goString(img.author)
  if (img.variant) top.variant = goString(img.variant)
  const keys = Object.keys(top).sort()
  return Buffer.from(`{${keys.map((k) => `"${k}":${top[k]}`).join(',')}}`)
}

/** Now as Go's time.Time JSON: RFC 3339 UTC with nanoseconds, trailing zeros dropped. */
export function nowRfc3339Nano(): string {
  const ns = process.hrtime.bigint()
  const ms = Date.now()
  // Sub-millisecond digits from the monotonic clock: unique and increasing within a process.
  const frac = Number(ns % 1_000_000n)
  const base = new Date(ms).toISOString() // 2024-01-02T03:04:05.678Z
  const digits = `${base.slice(20, 23)}${String(frac).padStart(6, '0')}`.replace(/0+$/, '')
  return `${base.slice(0, 19)}${digits ? `.${digits}` : ''}Z`
}

// ---- Go's %v / %q renderings used in history lines -------------------------------------

/** Go's `%q` of a []string: `["a" "b"]`. */
export function goQuoteSlice(v: readonly string[]): string {
  return `[${v.map(goQuote).join(' ')}]`
}

/** Go's `%v` of a []string: `[a b]`. */
export function goSlice(v: readonly string[]): string {
  return `[${v.join(' ')}]`
}

/** Go's time.Duration.String() of nanoseconds. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s'
  const neg = ns < 0
  let u = Math.abs(ns)
  let out: string
  if (u < 1e9) {
    const [unit, div] = u < 1e3 ? ['ns', 1] : u < 1e6 ? ['µs', 1e3] : ['ms', 1e6]
    out = `${trimFrac(u / div)}${unit}`
  } else {
    const h = Math.floor(u / 3600e9)
    u -= h * 3600e9
    const m = Math.floor(u / 60e9)
    u -= m * 60e9
    out = `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${trimFrac(u / 1e9)}s`
  }
  return neg ? `-${out}` : out
}

function trimFrac(x: number): string {
  return x.toFixed(9).replace(/\.?0+$/, '')
}

/** Go's `%q` of an int: a quoted rune literal (`'\x00'`, `'\x03'`, `'A'`). */
export function goQuoteRune(n: number): string {
  const named: Record<number, string> = { 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r' }
  if (named[n]) return `'\\${named[n]}'`
  if (n < 0x20 || n === 0x7f) return `'\\x${n.toString(16).padStart(2, '0')}'`
  if (n === 0x27) return "'\\''"
  if (n === 0x5c) return "'\\\\'"
  return `'${String.fromCodePoint(n)}'`
}
