/** Pure parts of the container layer (no root): OCI spec, users, env, names, ps columns. */
import test from 'ava'
import { buildSpec, processEnv, resolveUser, DEFAULT_PATH } from '../ts/containers/spec'
import { canonicalName, randomName } from '../ts/containers/names'
import { commandLine, statusText } from '../ts/containers/containers'
import { initialState, ContainerRecord } from '../ts/containers/record'
import { normalizeSignal, runtimeMessage } from '../ts/containers/runtime'

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n'
const GROUP = 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app\n'

const base = {
  args: ['sh'], env: ['A=1'], cwd: '/', user: { uid: 0, gid: 0, additionalGids: [], home: '/root' }, hostname: 'abc123def456',
  rootPath: '/s/overlay2/x/merged', hostsPath: '/s/containers/c/hosts', hostnamePath: '/s/containers/c/hostname',
  resolvConfPath: '/s/containers/c/resolv.conf', cgroupsPath: '/strata/c', openStdin: false,
}

test('OCI spec: namespaces (network unless host), Docker\'s default mounts, root = MergedDir, hostname', (t) => {
  const none = buildSpec({ ...base, network: 'none' }) as { linux: { namespaces: { type: string }[]; cgroupsPath: string }; mounts: { destination: string; source: string }[]; root: { path: string }; hostname: string; process: { args: string[]; terminal: boolean } }
  t.deepEqual(none.linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount', 'network'])
  const host = buildSpec({ ...base, network: 'host' }) as typeof none
  t.deepEqual(host.linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount'])
  t.deepEqual(none.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm', '/etc/resolv.conf', '/etc/hostname', '/etc/hosts'])
  t.is(none.mounts.find((m) => m.destination === '/etc/hosts')!.source, base.hostsPath)
  t.is(none.root.path, base.rootPath)
  t.is(none.hostname, 'abc123def456')
  t.is(none.linux.cgroupsPath, '/strata/c')
  t.false(none.process.terminal)
  t.throws(() => buildSpec({ ...base, args: [], network: 'none' }), { code: 'InvalidArgument' })
})

test('process env: PATH default, HOSTNAME, the container\'s Env overriding, HOME from passwd', (t) => {
  t.deepEqual(processEnv(['A=1'], 'h', '/root'), [DEFAULT_PATH, 'HOSTNAME=h', 'A=1', 'HOME=/root'])
  t.deepEqual(processEnv(['PATH=/x', 'HOME=/h', 'HOSTNAME=mine'], 'h', '/root'), ['PATH=/x', 'HOSTNAME=mine', 'HOME=/h'])
})

test('-u forms: name, uid, name:group, uid:gid; unknown names are errors; groups as the daemon sets them (primary first)', (t) => {
  t.deepEqual(resolveUser('', PASSWD, GROUP), { uid: 0, gid: 0, additionalGids: [0], home: '/root' })
  t.deepEqual(resolveUser('nobody', PASSWD, GROUP), { uid: 65534, gid: 65534, additionalGids: [65534], home: '/nonexistent' })
  t.deepEqual(resolveUser('app', PASSWD, GROUP), { uid: 1000, gid: 1000, additionalGids: [1000, 10], home: '/home/app' })
  t.deepEqual(resolveUser('1000:10', PASSWD, GROUP), { uid: 1000, gid: 10, additionalGids: [10], home: '/home/app' })
  t.deepEqual(resolveUser('4242', PASSWD, GROUP), { uid: 4242, gid: 0, additionalGids: [0], home: '/' })
  t.deepEqual(resolveUser('app:nogroup', PASSWD, GROUP).gid, 65534)
  t.throws(() => resolveUser('ghost', PASSWD, GROUP), { code: 'InvalidArgument', message: 'unable to find user ghost: no matching entries in passwd file' })
  t.throws(() => resolveUser('app:ghosts', PASSWD, GROUP), { code: 'InvalidArgument' })
  t.deepEqual(resolveUser('0', undefined, undefined), { uid: 0, gid: 0, additionalGids: [0], home: '/' })
})

test('names: Docker\'s charset, leading slash, generated adjective_surname', (t) => {
  t.is(canonicalName('web-1.a_b'), '/web-1.a_b')
  t.is(canonicalName('/web'), '/web')
  for (const bad of ['a', '-x', 'has space', 'ünï', '']) t.throws(() => canonicalName(bad), { code: 'InvalidArgument' })
  for (let i = 0; i < 50; i++) t.regex(randomName(), /^[a-z]+_[a-z]+$/)
  t.regex(randomName(1), /^[a-z]+_[a-z]+\d$/)
})

test('ps: COMMAND quoting, STATUS texts', (t) => {
  t.is(commandLine('sh', ['-c', 'echo hi > /greeting']), "sh -c 'echo hi > /greeting'")
  t.is(commandLine('/bin/true', []), '/bin/true')
  const now = Date.parse('2026-01-01T00:10:00Z')
  const rec = (state: Partial<ContainerRecord['State']>) => ({ State: { ...initialState(), ...state } }) as ContainerRecord
  t.is(statusText(rec({}), now), 'Created')
  t.is(statusText(rec({ Status: 'running', Running: true, StartedAt: '2026-01-01T00:09:55Z' }), now), 'Up 5 seconds')
  t.is(statusText(rec({ Status: 'running', Running: true, Paused: true, StartedAt: '2026-01-01T00:00:00Z' }), now), 'Up 10 minutes (Paused)')
  t.is(statusText(rec({ Status: 'exited', ExitCode: 3, FinishedAt: '2026-01-01T00:09:00Z' }), now), 'Exited (3) About a minute ago')
})

test('runtime helpers: signal names, runc error messages', (t) => {
  t.is(normalizeSignal('term'), 'SIGTERM')
  t.is(normalizeSignal('SIGUSR1'), 'SIGUSR1')
  t.is(normalizeSignal(9), '9')
  t.is(normalizeSignal(undefined), 'SIGTERM')
  t.is(runtimeMessage('{"level":"error","msg":"exec: \\"x\\": executable file not found in $PATH","time":"t"}\n'), 'exec: "x": executable file not found in $PATH')
  t.is(runtimeMessage('time="t" level=error msg="container not running"\n'), 'container not running')
})
