/**
 * Seccomp for a container's runtime spec, as Docker's daemon gives it: a *profile* (Docker's
 * format: `archMap`, syscall groups with `includes`/`excludes`) resolved for one container into
 * the OCI spec's `linux.seccomp` the way moby's `setupSeccomp` does
 * (profiles/seccomp/seccomp_linux.go). The default profile is moby's, kept as data in
 * ./seccomp/default.json (see the README there for its version). Pure, apart from reading the
 * host's architecture and kernel release for the default.
 */
import * as os from 'node:os'
import { StrataError } from '../errors'

/** An argument condition, as the OCI spec has it (`valueTwo` only when not 0, as Go's omitempty). */
export interface SeccompArg { index: number; value: number; valueTwo?: number; op: string }

/** One rule of the OCI spec's `linux.seccomp`. */
export interface SeccompSyscall { names: string[]; action: string; errnoRet?: number; args?: SeccompArg[] }

/** The OCI spec's `linux.seccomp`. */
export interface LinuxSeccomp {
  defaultAction: string
  defaultErrnoRet?: number
  architectures?: string[]
  syscalls?: SeccompSyscall[]
}

interface Filter { caps?: string[]; arches?: string[]; minKernel?: string }

/** A syscall group of a Docker profile. */
export interface ProfileSyscall {
  name?: string
  names?: string[]
  action: string
  errnoRet?: number
  args?: SeccompArg[] | null
  includes?: Filter
  excludes?: Filter
}

/** A seccomp profile in Docker's format (`docker run --security-opt seccomp=FILE`). */
export interface SeccompProfile {
  defaultAction: string
  defaultErrnoRet?: number
  architectures?: string[]
  archMap?: { architecture: string; subArchitectures?: string[] | null }[] | null
  syscalls?: ProfileSyscall[] | null
}

/** What the resolution depends on besides the profile. */
export interface SeccompTarget {
  /** The container's bounding capabilities (`CAP_…`). */
  caps: readonly string[]
  /** libseccomp's name of the host architecture (`amd64`, `arm64`, …), as moby's goToNative. */
  arch: string
  /** The host's kernel release (`6.8.0-45-generic`); only `<kernel>.<major>` counts. */
  kernel: string
}

// moby's nativeToSeccomp.
const NATIVE_TO_SECCOMP: Record<string, string> = {
  x86: 'SCMP_ARCH_X86', amd64: 'SCMP_ARCH_X86_64', arm: 'SCMP_ARCH_ARM', arm64: 'SCMP_ARCH_AARCH64',
  mips64: 'SCMP_ARCH_MIPS64', mips64n32: 'SCMP_ARCH_MIPS64N32', mipsel64: 'SCMP_ARCH_MIPSEL64',
  mips3l64n32: 'SCMP_ARCH_MIPSEL64N32', mipsle: 'SCMP_ARCH_MIPSEL', ppc: 'SCMP_ARCH_PPC', ppc64: 'SCMP_ARCH_PPC64',
  ppc64le: 'SCMP_ARCH_PPC64LE', s390: 'SCMP_ARCH_S390', s390x: 'SCMP_ARCH_S390X',
}

/** Node's `process.arch` → libseccomp's name (moby maps Go's GOARCH the same way; unknown → ''). */
export function nativeArch(arch: string = process.arch, littleEndian = os.endianness() === 'LE'): string {
  const m: Record<string, string> = { x64: 'amd64', ia32: 'x86', arm: 'arm', arm64: 'arm64', s390: 's390', s390x: 's390x', ppc: 'ppc', mipsel: 'mipsle', mips64el: 'mipsel64', mips64: 'mips64' }
  if (arch === 'ppc64') return littleEndian ? 'ppc64le' : 'ppc64'
  return m[arch] ?? ''
}

function bad(why: string): never {
  throw new StrataError('InvalidArgument', `Decoding seccomp profile failed: ${why}`)
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
function strings(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) bad(`${what} must be a list of strings`)
  return v as string[]
}
function uint(v: unknown, what: string): number {
  // JSON numbers past 2^53 would silently change in JavaScript; refuse them instead.
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${what} must be an unsigned integer below 2^53`)
  return v
}

/** `"<kernel>.<major>"` (moby's KernelVersion: each part 0–255, not both 0). */
function kernelVersion(v: string, what: string): [number, number] {
  const m = /^(\d+)\.(\d+)$/.exec(v)
  const k = m ? [Number(m[1]), Number(m[2])] as [number, number] : undefined
  if (!k || k[0] > 255 || k[1] > 255 || (k[0] === 0 && k[1] === 0)) bad(`invalid kernel version ${JSON.stringify(v)} in ${what}, expected "<kernel>.<major>"`)
  return k
}

function filter(v: unknown, what: string): Filter {
  if (v === undefined || v === null) return {}
  if (!isObj(v)) bad(`${what} must be an object`)
  const f: Filter = {}
  const caps = strings(v.caps, `${what}.caps`)
  if (caps) f.caps = caps
  const arches = strings(v.arches, `${what}.arches`)
  if (arches) f.arches = arches
  if (v.minKernel !== undefined && v.minKernel !== null && v.minKernel !== '') {
    if (typeof v.minKernel !== 'string') bad(`${what}.minKernel must be a string`)
    kernelVersion(v.minKernel, what)
    f.minKernel = v.minKernel
  }
  return f
}

function arg(v: unknown, what: string): SeccompArg {
  if (!isObj(v)) bad(`${what} must be an object`)
  if (typeof v.op !== 'string') bad(`${what}.op must be a string`)
  const a: SeccompArg = { index: uint(v.index ?? 0, `${what}.index`), value: uint(v.value ?? 0, `${what}.value`), op: v.op }
  const two = uint(v.valueTwo ?? 0, `${what}.valueTwo`)
  if (two !== 0) a.valueTwo = two
  return a
}

function syscall(v: unknown, what: string): ProfileSyscall {
  if (!isObj(v)) bad(`${what} must be an object`)
  if (typeof v.action !== 'string') bad(`${what}.action must be a string`)
  const s: ProfileSyscall = { action: v.action, includes: filter(v.includes, `${what}.includes`), excludes: filter(v.excludes, `${what}.excludes`) }
  if (v.name !== undefined && v.name !== '') {
    if (typeof v.name !== 'string') bad(`${what}.name must be a string`)
    s.name = v.name
  }
  const names = strings(v.names, `${what}.names`)
  if (names) s.names = names
  if (s.name !== undefined && names?.length) bad(`'name' and 'names' were specified in ${what}, use either 'name' or 'names'`)
  if (v.errnoRet !== undefined && v.errnoRet !== null) s.errnoRet = uint(v.errnoRet, `${what}.errnoRet`)
  if (v.args !== undefined && v.args !== null) {
    if (!Array.isArray(v.args)) bad(`${what}.args must be a list`)
    s.args = v.args.map((a, i) => arg(a, `${what}.args[${i}]`))
  }
  return s
}

/**
 * Checks and normalises a profile's JSON text (what `--security-opt seccomp=FILE` reads).
 * Throws StrataError `InvalidArgument` for anything moby would refuse to decode or resolve.
 */
export function parseSeccompProfile(text: string): SeccompProfile {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    bad((e as Error).message)
  }
  if (!isObj(v)) bad('the profile must be a JSON object')
  if (v.defaultAction !== undefined && typeof v.defaultAction !== 'string') bad('defaultAction must be a string')
  const p: SeccompProfile = { defaultAction: (v.defaultAction as string | undefined) ?? '' }
  if (v.defaultErrnoRet !== undefined && v.defaultErrnoRet !== null) p.defaultErrnoRet = uint(v.defaultErrnoRet, 'defaultErrnoRet')
  const arches = strings(v.architectures, 'architectures')
  if (arches) p.architectures = arches
  if (v.archMap !== undefined && v.archMap !== null) {
    if (!Array.isArray(v.archMap)) bad('archMap must be a list')
    p.archMap = v.archMap.map((a, i) => {
      if (!isObj(a) || typeof a.architecture !== 'string') bad(`archMap[${i}].architecture must be a string`)
      return { architecture: a.architecture, subArchitectures: strings(a.subArchitectures, `archMap[${i}].subArchitectures`) ?? [] }
    })
  }
  if (p.architectures?.length && p.archMap?.length) bad("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'")
  if (v.syscalls !== undefined && v.syscalls !== null) {
    if (!Array.isArray(v.syscalls)) bad('syscalls must be a list')
    p.syscalls = v.syscalls.map((s, i) => syscall(s, `syscalls[${i}]`))
  }
  return p
}

function kernelAtLeast(release: string, min: string): boolean {
  // moby reads "%d.%d" from the release: 6.8.0-45-generic and 6.8-rc5 are both 6.8.
  const m = /^(\d+)\.(\d+)/.exec(release)
  if (!m) throw new StrataError('InvalidArgument', `failed to parse kernel version ${JSON.stringify(release)}`)
  const [k, j] = kernelVersion(min, 'minKernel')
  const have = [Number(m[1]), Number(m[2])]
  return have[0] > k || (have[0] === k && have[1] >= j)
}

/**
 * The OCI `linux.seccomp` of a profile for one container (moby's setupSeccomp), or undefined
 * for a profile that confines nothing (no default action and no syscalls).
 */
export function resolveSeccomp(profile: SeccompProfile, t: SeccompTarget): LinuxSeccomp | undefined {
  const syscalls = profile.syscalls ?? []
  if (!profile.defaultAction && syscalls.length === 0) return undefined
  const out: LinuxSeccomp = { defaultAction: profile.defaultAction }
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = profile.defaultErrnoRet
  const architectures = [...(profile.architectures ?? [])]
  const native = NATIVE_TO_SECCOMP[t.arch]
  const mapped = native === undefined ? undefined : profile.archMap?.find((a) => a.architecture === native)
  if (mapped) architectures.push(mapped.architecture, ...(mapped.subArchitectures ?? []))
  if (architectures.length) out.architectures = architectures
  const has = (c: string) => t.caps.includes(c)
  const rules: SeccompSyscall[] = []
  for (const call of syscalls) {
    const ex = call.excludes ?? {}
    const inc = call.includes ?? {}
    if (ex.arches?.includes(t.arch)) continue
    if (ex.caps?.some(has)) continue
    if (ex.minKernel && kernelAtLeast(t.kernel, ex.minKernel)) continue
    if (inc.arches?.length && !inc.arches.includes(t.arch)) continue
    if (inc.caps?.length && !inc.caps.every(has)) continue
    if (inc.minKernel && !kernelAtLeast(t.kernel, inc.minKernel)) continue
    const rule: SeccompSyscall = { names: call.name !== undefined ? [call.name] : [...(call.names ?? [])], action: call.action }
    if (call.errnoRet !== undefined) rule.errnoRet = call.errnoRet
    if (call.args?.length) rule.args = call.args.map((a) => ({ ...a }))
    rules.push(rule)
  }
  if (rules.length) out.syscalls = rules
  return out
}

/**
 * moby's default profile (./seccomp/default.json), loaded on first use: the commands that never
 * start a container (the CLI's read-only bundle) do not carry or parse it.
 */
export function defaultSeccompProfile(): SeccompProfile {
  return require('./seccomp/default.json') as typeof import('./seccomp/default.json') as SeccompProfile
}

const defaults = new Map<string, LinuxSeccomp | undefined>()

/** Docker's default `linux.seccomp` for a container with these capabilities on this host (memoised). */
export function defaultSeccomp(caps: readonly string[]): LinuxSeccomp | undefined {
  const key = caps.join(',')
  if (!defaults.has(key)) defaults.set(key, resolveSeccomp(defaultSeccompProfile(), { caps, arch: nativeArch(), kernel: os.release() }))
  return defaults.get(key)
}

/**
 * The seccomp of a container from its `--security-opt` entries in Docker's stored form
 * (`seccomp=unconfined`, `seccomp=<profile JSON>`; the CLI has read a profile file already):
 * undefined for unconfined, else the resolved profile (the default one when none is given).
 */
export function seccompFor(securityOpt: readonly string[], caps: readonly string[]): LinuxSeccomp | undefined {
  const opt = seccompOpt(securityOpt)
  if (opt === undefined) return defaultSeccomp(caps)
  if (opt === 'unconfined') return undefined
  return resolveSeccomp(parseSeccompProfile(opt), { caps, arch: nativeArch(), kernel: os.release() })
}

/**
 * The value of the last `seccomp=` (or `seccomp:`) entry; throws `InvalidArgument` for an entry
 * strata does not support (Docker's other security options), as the daemon does for unknown ones.
 */
export function seccompOpt(securityOpt: readonly string[]): string | undefined {
  let out: string | undefined
  for (const o of securityOpt) {
    const m = /^seccomp[=:]([\s\S]*)$/.exec(o)
    if (!m) throw new StrataError('InvalidArgument', `invalid --security-opt: ${JSON.stringify(o)} (strata supports seccomp=unconfined and seccomp=PROFILE)`)
    out = m[1]
  }
  return out
}
