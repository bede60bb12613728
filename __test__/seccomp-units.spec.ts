/**
 * Resolving a seccomp profile for a container (ts/containers/seccomp.ts), without root: the
 * filters of moby's setupSeccomp one by one on small profiles, the default profile's shape for
 * Docker's default capabilities, and the typed errors of a bad profile.
 * (__test__/seccomp-docker.spec.ts compares the result with the real engine's.)
 */
import test from 'ava'
import * as os from 'node:os'
import { CAPS, buildSpec } from '../ts/containers/spec'
import {
  defaultSeccompProfile, nativeArch, parseSeccompProfile, resolveSeccomp, seccompFor, seccompOpt, type SeccompProfile,
} from '../ts/containers/seccomp'

const amd64 = { caps: CAPS, arch: 'amd64', kernel: '6.8.0-45-generic' }
const rule = (names: string[], extra: object = {}) => ({ names, action: 'SCMP_ACT_ALLOW', ...extra })

test('archMap: the host architecture and its sub-architectures; none for an architecture not in the map', (t) => {
  const p: SeccompProfile = {
    defaultAction: 'SCMP_ACT_ERRNO',
    archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }, { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }],
  }
  t.deepEqual(resolveSeccomp(p, amd64), { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] })
  t.deepEqual(resolveSeccomp(p, { ...amd64, arch: 'arm64' })!.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'])
  t.is(resolveSeccomp(p, { ...amd64, arch: 's390x' })!.architectures, undefined)
  t.deepEqual(resolveSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64'] }, amd64)!.architectures, ['SCMP_ARCH_X86_64'])
})

test('includes and excludes: caps (all included needed, any excluded drops), arches, minKernel by <kernel>.<major>', (t) => {
  const p: SeccompProfile = {
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [
      rule(['always']),
      { ...rule(['with-chown-and-kill']), includes: { caps: ['CAP_CHOWN', 'CAP_KILL'] } },
      { ...rule(['with-sys-admin']), includes: { caps: ['CAP_CHOWN', 'CAP_SYS_ADMIN'] } },
      { ...rule(['without-sys-admin']), excludes: { caps: ['CAP_SYS_ADMIN'] } },
      { ...rule(['without-chown']), excludes: { caps: ['CAP_SYS_ADMIN', 'CAP_CHOWN'] } },
      { ...rule(['on-amd64']), includes: { arches: ['amd64', 'x32'] } },
      { ...rule(['on-arm64']), includes: { arches: ['arm64'] } },
      { ...rule(['not-on-amd64']), excludes: { arches: ['amd64'] } },
      { ...rule(['from-6.8']), includes: { minKernel: '6.8' } },
      { ...rule(['from-6.9']), includes: { minKernel: '6.9' } },
      { ...rule(['before-6.8']), excludes: { minKernel: '6.8' } },
      { ...rule(['before-6.9']), excludes: { minKernel: '6.9' } },
    ],
  }
  const names = (t2: typeof amd64) => resolveSeccomp(p, t2)!.syscalls!.map((s) => s.names[0])
  t.deepEqual(names(amd64), ['always', 'with-chown-and-kill', 'without-sys-admin', 'on-amd64', 'from-6.8', 'before-6.9'])
  t.deepEqual(names({ caps: [...CAPS, 'CAP_SYS_ADMIN'], arch: 'arm64', kernel: '6.10' }),
    ['always', 'with-chown-and-kill', 'with-sys-admin', 'on-arm64', 'not-on-amd64', 'from-6.8', 'from-6.9'])
  t.deepEqual(names({ ...amd64, kernel: '5.15.0' }), ['always', 'with-chown-and-kill', 'without-sys-admin', 'on-amd64', 'before-6.8', 'before-6.9'])
})

test('rules as the OCI spec has them: name → names, errnoRet kept, args with valueTwo only when not 0', (t) => {
  const p = parseSeccompProfile(JSON.stringify({
    defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1,
    syscalls: [
      { name: 'one', action: 'SCMP_ACT_ALLOW', args: null, comment: 'x', includes: {}, excludes: {} },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, args: [] },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, valueTwo: 0, op: 'SCMP_CMP_EQ' }, { index: 1, value: 3, valueTwo: 2, op: 'SCMP_CMP_MASKED_EQ' }] },
    ],
  }))
  t.deepEqual(resolveSeccomp(p, amd64), {
    defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1,
    syscalls: [
      { names: ['one'], action: 'SCMP_ACT_ALLOW' },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }, { index: 1, value: 3, valueTwo: 2, op: 'SCMP_CMP_MASKED_EQ' }] },
    ],
  })
  // Neither a default action nor syscalls: moby runs the container unconfined.
  t.is(resolveSeccomp(parseSeccompProfile('{}'), amd64), undefined)
})

test('the default profile for Docker\'s default caps on amd64: errno by default, the allow list, no CAP_SYS_ADMIN-only calls', (t) => {
  const s = resolveSeccomp(parseSeccompProfile(JSON.stringify(defaultSeccompProfile())), amd64)!
  t.is(s.defaultAction, 'SCMP_ACT_ERRNO')
  t.deepEqual(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'])
  const allowed = new Set(s.syscalls!.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names))
  for (const n of ['read', 'write', 'execve', 'openat', 'chroot', 'arch_prctl', 'ptrace']) t.true(allowed.has(n), n)
  for (const n of ['unshare', 'mount', 'setns', 'bpf', 'reboot', 'init_module', 'kexec_load']) t.false(allowed.has(n), n)
  // clone is allowed only without namespace flags for a container without CAP_SYS_ADMIN.
  t.deepEqual(s.syscalls!.filter((r) => r.names.includes('clone')).map((r) => r.args?.[0]?.op), ['SCMP_CMP_MASKED_EQ'])
  t.deepEqual(s.syscalls!.find((r) => r.names.includes('clone3')), { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 })
  // With CAP_SYS_ADMIN the namespace calls come in.
  const admin = resolveSeccomp(defaultSeccompProfile(), { ...amd64, caps: [...CAPS, 'CAP_SYS_ADMIN'] })!
  t.true(admin.syscalls!.some((r) => r.names.includes('unshare') && r.action === 'SCMP_ACT_ALLOW'))
})

test('buildSpec: Docker\'s default seccomp unless given one, none when null', (t) => {
  const base = {
    args: ['sh'], env: [], cwd: '/', user: { uid: 0, gid: 0, additionalGids: [], home: '/root' }, hostname: 'h', rootPath: '/r',
    hostsPath: '/h', hostnamePath: '/hn', resolvConfPath: '/rc', cgroupsPath: '/strata/c', openStdin: false, network: 'none' as const,
  }
  type L = { linux: { seccomp?: unknown } }
  const want = resolveSeccomp(defaultSeccompProfile(), { caps: CAPS, arch: nativeArch(), kernel: os.release() })
  t.truthy(want)
  t.deepEqual((buildSpec(base) as L).linux.seccomp, want)
  t.false('seccomp' in (buildSpec({ ...base, seccomp: null }) as L).linux)
  t.deepEqual((buildSpec({ ...base, seccomp: { defaultAction: 'SCMP_ACT_ALLOW' } }) as L).linux.seccomp, { defaultAction: 'SCMP_ACT_ALLOW' })
})

test('--security-opt: seccomp=unconfined, seccomp=<profile JSON>, the default; other options and bad profiles are InvalidArgument', (t) => {
  t.is(seccompFor(['seccomp=unconfined'], CAPS), undefined)
  t.deepEqual(seccompFor([], CAPS), seccompFor([], CAPS))
  t.is(seccompFor([], CAPS)!.defaultAction, 'SCMP_ACT_ERRNO')
  t.deepEqual(seccompFor(['seccomp={"defaultAction":"SCMP_ACT_LOG"}'], CAPS), { defaultAction: 'SCMP_ACT_LOG' })
  t.is(seccompOpt(['seccomp:unconfined']), 'unconfined')
  t.throws(() => seccompOpt(['apparmor=unconfined']), { code: 'InvalidArgument' })
  t.throws(() => seccompOpt(['no-new-privileges']), { code: 'InvalidArgument' })
  const bad = [
    'not json', '[]', '{"defaultAction":1}', '{"syscalls":{}}', '{"syscalls":[{"names":["a"]}]}',
    '{"syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}',
    '{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":[]}]}',
    '{"syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","errnoRet":-1}]}',
    '{"syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":18446744073709551615,"op":"SCMP_CMP_EQ"}]}]}',
    '{"syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"6"}}]}',
    '{"syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":"CAP_CHOWN"}}]}',
  ]
  for (const b of bad) t.throws(() => seccompFor([`seccomp=${b}`], CAPS), { code: 'InvalidArgument' }, b)
})

test('the host architecture as libseccomp names it', (t) => {
  t.is(nativeArch('x64'), 'amd64')
  t.is(nativeArch('arm64'), 'arm64')
  t.is(nativeArch('ppc64', true), 'ppc64le')
  t.is(nativeArch('riscv64'), '')
})
