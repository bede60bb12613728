/**
 * The OCI runtime spec (`config.json`) of a container, as Docker's daemon builds it
 * (daemon/oci_linux.go + oci/defaults.go): namespaces, the default mounts, capabilities, masked
 * paths, the process from the image config and the user's flags. Pure: the caller resolves users.
 */
import { StrataError } from '../errors'
import { NetworkMode } from './record'
import { defaultSeccomp, LinuxSeccomp } from './seccomp'

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** Docker's default capability set (also the bounding set the seccomp profile is resolved for). */
export const CAPS: readonly string[] = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE']

export const MASKED_PATHS = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap']
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']

export interface ResolvedUser {
  uid: number
  gid: number
  additionalGids: number[]
  home: string
}

export interface SpecInput {
  args: string[]
  env: string[]
  cwd: string
  user: ResolvedUser
  hostname: string
  rootPath: string
  network: NetworkMode
  /** Host files bind-mounted over the init layer's placeholders. */
  hostsPath: string
  hostnamePath: string
  resolvConfPath: string
  cgroupsPath: string
  openStdin: boolean
  /** A terminal for the process (`-t`), of this size when known (runc applies it before the process starts). */
  terminal?: boolean
  consoleSize?: { rows: number; cols: number }
  /** `linux.seccomp`: Docker's default profile when absent, none (`unconfined`) when null. */
  seccomp?: LinuxSeccomp | null
}

/**
 * The process env as the daemon builds it (CreateDaemonEnvironment): default PATH and HOSTNAME
 * first (and TERM=xterm with a terminal), the container's Env replacing or appending, then HOME
 * from the user's passwd entry.
 */
export function processEnv(configEnv: readonly string[], hostname: string, home: string, tty = false): string[] {
  const env: string[] = [DEFAULT_PATH, `HOSTNAME=${hostname}`, ...(tty ? ['TERM=xterm'] : [])]
  const has = (k: string) => configEnv.some((e) => e.split('=')[0] === k)
  for (const e of configEnv) {
    const k = e.split('=')[0]
    const i = env.findIndex((x) => x.split('=')[0] === k)
    if (i >= 0) env[i] = e
    else env.push(e)
  }
  if (!has('HOME')) env.push(`HOME=${home}`)
  return env
}

/**
 * `env` with the user's `-e` entries replacing or appending (`K=V`); a bare `K` takes this
 * process's value, or is dropped when it has none — as the docker CLI does.
 */
export function withUserEnv(env: readonly string[], additions: readonly string[]): string[] {
  const out = [...env]
  for (const e of additions) {
    const eq = e.indexOf('=')
    const k = eq < 0 ? e : e.slice(0, eq)
    if (!k) throw new StrataError('InvalidArgument', `invalid environment variable: ${e}`)
    let kv = e
    if (eq < 0) {
      if (process.env[k] === undefined) continue
      kv = `${k}=${process.env[k]}`
    }
    const i = out.findIndex((x) => x.split('=')[0] === k)
    if (i >= 0) out[i] = kv
    else out.push(kv)
  }
  return out
}

export function buildSpec(s: SpecInput): Record<string, unknown> {
  if (s.args.length === 0) throw new StrataError('InvalidArgument', 'no command specified')
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }]
  if (s.network !== 'host') namespaces.push({ type: 'network' })
  const seccomp = s.seccomp === undefined ? defaultSeccomp(CAPS) : s.seccomp
  const bind = (src: string, dst: string) => ({ destination: dst, type: 'bind', source: src, options: ['rbind', 'rprivate'] })
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: Boolean(s.terminal),
      ...(s.terminal && s.consoleSize && s.consoleSize.rows > 0 && s.consoleSize.cols > 0
        ? { consoleSize: { height: s.consoleSize.rows, width: s.consoleSize.cols } } : {}),
      user: { uid: s.user.uid, gid: s.user.gid, ...(s.user.additionalGids.length ? { additionalGids: s.user.additionalGids } : {}) },
      args: s.args,
      env: s.env,
      cwd: s.cwd || '/',
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      noNewPrivileges: false,
    },
    root: { path: s.rootPath, readonly: false },
    hostname: s.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
      bind(s.resolvConfPath, '/etc/resolv.conf'),
      bind(s.hostnamePath, '/etc/hostname'),
      bind(s.hostsPath, '/etc/hosts'),
    ],
    linux: {
      cgroupsPath: s.cgroupsPath,
      namespaces,
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      resources: { devices: [{ allow: false, access: 'rwm' }, ...DEFAULT_DEVICE_RULES] },
      ...(seccomp ? { seccomp } : {}),
    },
  }
}

// runc adds the default devices (null, zero, full, random, urandom, tty, ptmx) itself; allow them in the cgroup.
const DEFAULT_DEVICE_RULES = [
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
]

/**
 * Resolves Docker's `-u` forms (`name`, `uid`, `name:group`, `uid:gid`) against the container's
 * /etc/passwd and /etc/group contents (either may be missing).
 */
export function resolveUser(spec: string, passwd: string | undefined, group: string | undefined): ResolvedUser {
  const users = (passwd ?? '').split('\n').map((l) => l.split(':')).filter((f) => f.length >= 7)
  const groups = (group ?? '').split('\n').map((l) => l.split(':')).filter((f) => f.length >= 3)
  const [u, g] = spec ? spec.split(':', 2) : ['', undefined]
  let uid = 0
  let gid = 0
  let home = '/'
  let name: string | undefined
  const byName = users.find((f) => f[0] === (u || 'root'))
  const byId = /^\d+$/.test(u ?? '') ? users.find((f) => f[2] === u) : undefined
  const entry = /^\d+$/.test(u ?? '') ? byId : byName
  if (entry) {
    name = entry[0]
    uid = Number(entry[2])
    gid = Number(entry[3])
    home = entry[5] || '/'
  } else if (/^\d+$/.test(u ?? '')) {
    uid = Number(u)
  } else if (u) {
    throw new StrataError('InvalidArgument', `unable to find user ${u}: no matching entries in passwd file`)
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g)
    else {
      const ge = groups.find((f) => f[0] === g)
      if (!ge) throw new StrataError('InvalidArgument', `unable to find group ${g}: no matching entries in group file`)
      gid = Number(ge[2])
    }
  }
  // The daemon's getUser: the primary gid first, then (only for a user named without an
  // explicit group) every group whose member list names the user — duplicates and all.
  const sgids = name && !g ? groups.filter((f) => f[3]?.split(',').includes(name!)).map((f) => Number(f[2])) : []
  return { uid, gid, additionalGids: [gid, ...sgids], home }
}
