/**
 * `run -it`, `run -t`, `exec -it`, `start -ai` driven through a real pseudo-terminal (a python
 * `pty` driver acting as the user's terminal and keyboard): what the container sees (a tty, the
 * window size the user's terminal has, a resize after SIGWINCH), Ctrl-C reaching the container
 * as a byte its own terminal turns into SIGINT, docker's refusal of `-it` without a terminal,
 * and the user's terminal put back as it was on every way out.
 */
import test from 'ava'
import * as path from 'node:path'
import { storeWith } from './helpers/container'
import { busyboxImage } from './helpers/fixtures'
import { cli, REPO } from './helpers/fs'
import { driveInPty, PtyDriven, PtyStep } from './helpers/pty'

const CLI = path.join(REPO, 'bin/strata.js')

/** Runs `strata ARGS` on a fresh terminal of `rows`×`cols`, typing `steps`. */
function onTerminal(root: string, args: string[], steps: PtyStep[], rows = 33, cols = 101): Promise<PtyDriven> {
  return driveInPty([process.execPath, CLI, '--root', root, ...args], steps, { rows, cols, timeoutS: 40 })
}

const PROMPT = '/ # '

/**
 * Ctrl-C as a byte: the container's line discipline sends SIGINT to its foreground job (a
 * `sleep 30`), the shell comes back and says the job ended by SIGINT (130).
 */
const CTRL_C_ENDS_SLEEP: PtyStep[] = [
  { send: 'sleep 30\r' },
  { sleep: 0.5 },
  { send: '\u0003' },
  { expect: PROMPT, timeout: 10 },
  { send: 'echo after=$?\r' },
  { expect: 'after=130' },
]

async function fixture(t: Parameters<typeof storeWith>[0]) {
  const f = await storeWith(t, [busyboxImage(['tty:1'])])
  await f.store.close()
  return f
}

test.serial('run -it: a tty of the user\'s window size, resized on SIGWINCH; Ctrl-C reaches the container; the terminal comes back as it was', async (t) => {
  const { root } = await fixture(t)
  const r = await onTerminal(root, ['run', '-it', '--name', 'it1', 'tty:1', 'sh'], [
    { expect: PROMPT },
    { send: 'busybox tty; busybox stty size\r' },
    { expect: '/dev/pts/\\d+\\r\\n33 101\\r\\n' },
    { resize: [40, 120] },
    { send: 'busybox stty size\r' },
    { expect: '40 120\\r\\n' },
    ...CTRL_C_ENDS_SLEEP,
    { send: "trap 'echo trapped-INT' INT; sleep 30\r" },
    { sleep: 0.5 },
    { send: '\u0003' },
    { expect: 'trapped-INT', timeout: 10 },
    { send: 'exit 7\r' },
  ])
  t.is(r.failedStep, null, r.output)
  t.false(r.timedOut)
  t.is(r.exitCode, 7, r.output)
  // Raw mode as docker's: the container's \r\n arrives as is (no \r\r\n from our own terminal).
  t.false(r.output.includes('\r\r\n'), JSON.stringify(r.output))
  t.deepEqual(r.termiosAfter, r.termiosBefore)
  const ps = await cli(root, ['ps', '-a', '--format', '{{.Names}} {{.Status}}'])
  t.regex(ps.stdout, /^it1 Exited \(7\) /m)
})

test.serial('exec -it: the exec gets a terminal of its own, sized and resized; Ctrl-C reaches it; exit code passed through', async (t) => {
  const { root } = await fixture(t)
  t.is((await cli(root, ['run', '-d', '--name', 'host1', 'tty:1', 'sleep', '300'])).code, 0)
  const r = await onTerminal(root, ['exec', '-it', 'host1', 'sh'], [
    { expect: PROMPT },
    { send: 'busybox tty; busybox stty size; echo TERM=$TERM\r' },
    { expect: '/dev/pts/\\d+\\r\\n21 77\\r\\nTERM=xterm\\r\\n' },
    { resize: [50, 132] },
    { send: 'busybox stty size\r' },
    { expect: '50 132\\r\\n' },
    ...CTRL_C_ENDS_SLEEP,
    { send: 'exit 3\r' },
  ], 21, 77)
  t.is(r.failedStep, null, r.output)
  t.is(r.exitCode, 3, r.output)
  t.deepEqual(r.termiosAfter, r.termiosBefore)
  // The container's own process was not touched.
  t.regex((await cli(root, ['ps', '--format', '{{.Names}} {{.State}}'])).stdout, /^host1 running$/m)
  t.is((await cli(root, ['rm', '-f', 'host1'])).code, 0)
})

test.serial('-it without a terminal is refused as docker refuses it, before anything is created', async (t) => {
  const { root } = await fixture(t)
  const run = await cli(root, ['run', '-it', '--name', 'never', 'tty:1', 'true'])
  t.is(run.code, 1)
  t.is(run.stderr, 'the input device is not a TTY\n')
  t.is((await cli(root, ['ps', '-a', '-q'])).stdout, '')
  t.is((await cli(root, ['run', '-d', '--name', 'holder', 'tty:1', 'sleep', '300'])).code, 0)
  const exec = await cli(root, ['exec', '-it', 'holder', 'true'])
  t.is(exec.code, 1)
  t.is(exec.stderr, 'the input device is not a TTY\n')
  // -t alone needs no terminal on stdin: output comes through the container's terminal.
  const tOnly = await cli(root, ['exec', '-t', 'holder', 'busybox', 'tty'])
  t.is(tOnly.code, 0, tOnly.stderr)
  t.regex(tOnly.stdout, /^\/dev\/pts\/\d+\r\n$/)
  t.is((await cli(root, ['rm', '-f', 'holder'])).code, 0)
})

test.serial('run -t without -i: signals proxied to the container (docker\'s sig-proxy), output through its terminal', async (t) => {
  const { root } = await fixture(t)
  const r = await onTerminal(root, ['run', '-t', 'tty:1', 'sh', '-c', "trap 'echo got-int' INT; busybox tty; sleep 3; echo done"], [
    { expect: '/dev/pts/' },
    { sleep: 0.5 },
    // Our terminal is not raw here: Ctrl-C makes SIGINT for the CLI, which passes it on.
    { send: '\u0003' },
    { expect: 'got-int', timeout: 10 },
    { expect: 'done', timeout: 15 },
  ])
  t.is(r.failedStep, null, r.output)
  t.is(r.exitCode, 0, r.output)
  t.deepEqual(r.termiosAfter, r.termiosBefore)
})

test.serial('the terminal is restored when the CLI is killed by a signal and when the container is killed under it', async (t) => {
  const { root } = await fixture(t)
  const killed = await onTerminal(root, ['run', '-it', '--name', 'victim', 'tty:1', 'sh'], [
    { expect: PROMPT },
    { signal: 'TERM' },
    { sleep: 1 },
  ])
  t.is(killed.signal, 15, killed.output)
  t.deepEqual(killed.termiosAfter, killed.termiosBefore)
  t.is((await cli(root, ['rm', '-f', 'victim'])).code, 0)

  t.is((await cli(root, ['create', '-it', '--name', 'sai', 'tty:1', 'sh'])).code, 0)
  // Killed from outside once it runs (bounded wait: a loaded machine starts it slowly).
  const gone = (async () => {
    for (let i = 0; i < 100; i++) {
      if ((await cli(root, ['ps', '-q', '-f', 'name=^sai$'])).stdout.trim()) return cli(root, ['kill', 'sai'])
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    return { code: -1, stdout: '', stderr: 'sai never ran' }
  })()
  const r = await onTerminal(root, ['start', '-ai', 'sai'], [{ expect: PROMPT }, { sleep: 30 }])
  const killed2 = await gone
  t.is(killed2.code, 0, killed2.stderr)
  t.is(r.exitCode, 137, r.output)
  t.deepEqual(r.termiosAfter, r.termiosBefore)
})

test.serial('Ctrl-P Ctrl-Q detaches: the container runs on (logged, its exit recorded later); exec -dt and a detached exec -it run to their end', async (t) => {
  const { root } = await fixture(t)
  const r = await onTerminal(root, ['run', '-it', '--name', 'det', 'tty:1', 'sh', '-c', 'while true; do echo tick; sleep 0.2; done & sh'], [
    { expect: PROMPT },
    { send: '\u0010\u0011' },
    { sleep: 1 },
  ])
  t.is(r.exitCode, 0, r.output)
  t.deepEqual(r.termiosAfter, r.termiosBefore)
  t.regex((await cli(root, ['ps', '--format', '{{.Names}} {{.State}}'])).stdout, /^det running$/m)
  // Still logged after the detach (by the shim that took the terminal over).
  const count = async () => (await cli(root, ['logs', 'det'])).stdout.split('tick').length
  const before = await count()
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.true((await count()) > before)
  t.is((await cli(root, ['kill', 'det'])).code, 0)
  let status = ''
  for (let i = 0; i < 100 && !status.startsWith('Exited'); i++) {
    status = (await cli(root, ['ps', '-a', '-f', 'name=^det$', '--format', '{{.Status}}'])).stdout.trim()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.regex(status, /^Exited \(137\)/)

  t.is((await cli(root, ['run', '-d', '--name', 'execs', 'tty:1', 'sleep', '300'])).code, 0)
  // Far more output than a pty buffer holds: someone has to go on reading it.
  const dt = await cli(root, ['exec', '-dt', 'execs', 'sh', '-c', 'i=0; while [ $i -lt 4000 ]; do echo line-$i-..........................................; i=$((i+1)); done; touch /dt-done'])
  t.deepEqual([dt.code, dt.stdout, dt.stderr], [0, '', ''])
  const it = await onTerminal(root, ['exec', '-it', 'execs', 'sh'], [
    { expect: PROMPT },
    { send: 'sleep 1; touch /it-done\r' },
    { send: '\u0010\u0011' },
    { sleep: 0.5 },
  ])
  t.is(it.exitCode, 0, it.output)
  let seen = ''
  for (let i = 0; i < 100 && seen !== '/dt-done\n/it-done\n'; i++) {
    seen = (await cli(root, ['exec', 'execs', 'sh', '-c', 'ls /dt-done /it-done 2>/dev/null'])).stdout
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.is(seen, '/dt-done\n/it-done\n')
  t.is((await cli(root, ['rm', '-f', 'execs', 'det'])).code, 0)
})
