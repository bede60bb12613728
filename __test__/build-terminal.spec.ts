/**
 * `strata build` on a terminal (a real pseudo-terminal, driven by the python `pty` driver the
 * CLI's terminal tests use): the live step view BuildKit draws there — a `[+] Building` header
 * with the steps done so far, each step with its time or CACHED, the running step's last output
 * lines, the whole redrawn in place and cut to the terminal's width — instead of the plain
 * lines; `-q` still prints only the ID; a failure leaves the final view and BuildKit's error block.
 */
import test from 'ava'
import * as path from 'node:path'
import { REPO } from './helpers/fs'
import { driveInPty, PtyDriven } from './helpers/pty'
import { writeContext, buildSuite, BUILD_BASE } from './helpers/build'

const suite = buildSuite()
const BB = BUILD_BASE
const CLI = path.join(REPO, 'bin/strata.js')

function onTerminal(root: string, args: string[], cols: number, expect: string): Promise<PtyDriven> {
  return driveInPty([process.execPath, CLI, '--root', root, ...args], [{ expect }], { rows: 40, cols, timeoutS: 90 })
}

/** The frames of a live view: the text between redraws (cursor-up + clear-below). */
function frames(out: string): string[] {
  return out.split(/(?:\x1b\[\d+A\r)?\x1b\[J/).filter((f) => f.startsWith('[+] Building'))
}

test.serial('a build on a terminal: the live view, redrawn in place, cut to the width; then CACHED steps; -q prints only the ID', async (t) => {
  const { dir, root, store } = await suite.freshStore(t)
  await store.close()
  const ctx = path.join(dir, 'ctx')
  const long = 'x'.repeat(150)
  writeContext(ctx, {
    Dockerfile: `FROM ${BB}\nCOPY a.txt /a.txt\nRUN for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done\nRUN echo ${long} > /long\nENV DONE=1\n`,
    'a.txt': 'a\n',
  })
  const cols = 80
  const first = await onTerminal(root, ['build', '-t', 'tty:1', ctx], cols, '\\(\\d+/\\d+\\)[^\\x1b]*FINISHED|\\$ $')
  t.is(first.exitCode, 0, first.output)
  t.false(first.timedOut)
  const fs1 = frames(first.output)
  // Redrawn several times while the RUN ticked, each frame replacing the last.
  t.true(fs1.length >= 3, first.output)
  t.regex(first.output, /\x1b\[\d+A\r\x1b\[J\[\+\] Building/)
  // No plain-progress lines on a terminal.
  t.notRegex(first.output, /^#\d+ /m)
  // The running step shows its latest output under it.
  t.true(fs1.some((f) => /=> \[3\/4\] RUN for i in[^\n]*\r?\n => => # tick \d/.test(f)), first.output)
  // Every line fits the terminal (the long RUN line is cut with ...).
  for (const f of fs1) for (const line of f.split(/\r?\n/)) t.true(line.length <= cols, JSON.stringify(line))
  t.true(fs1.some((f) => f.includes('RUN echo xxxxx') && f.includes('...')))
  // The last frame: every step done, each with its time, and the header says FINISHED.
  const last = fs1[fs1.length - 1]
  const m = /^\[\+\] Building \d+\.\ds \((\d+)\/(\d+)\) FINISHED/.exec(last)
  t.truthy(m, last)
  t.is(m![1], m![2])
  t.regex(last, / => \[2\/4\] COPY a\.txt \/a\.txt +\d+\.\ds\r?\n/)
  t.regex(last, / => exporting to image +\d+\.\ds/)

  // Again: everything cached, shown so.
  const again = await onTerminal(root, ['build', '-t', 'tty:1', ctx], cols, 'FINISHED[^\\n]*\\n(.|\\n)*exporting to image')
  t.is(again.exitCode, 0, again.output)
  const last2 = frames(again.output).pop()!
  t.regex(last2, / => CACHED \[2\/4\] COPY a\.txt \/a\.txt +0\.0s\r?\n/)
  t.regex(last2, / => CACHED \[3\/4\] RUN for i in/)

  // -q on a terminal: the image ID alone.
  const quiet = await onTerminal(root, ['build', '-q', ctx], cols, 'sha256:[0-9a-f]{64}')
  t.is(quiet.exitCode, 0)
  t.regex(quiet.output, /^sha256:[0-9a-f]{64}\r\n$/)
})

test.serial('a failing build on a terminal: the final view with the step marked ERROR, then BuildKit\'s error block', async (t) => {
  const { dir, root, store } = await suite.freshStore(t)
  await store.close()
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo about to fail; exit 3\n` })
  const r = await onTerminal(root, ['build', '-t', 'tty:bad', ctx], 100, 'ERROR: failed to solve[^\\n]*\\n')
  t.is(r.exitCode, 1, r.output)
  const last = frames(r.output).pop()!
  t.regex(last, / => ERROR \[2\/2\] RUN echo about to fail; exit 3 +\d+\.\ds/)
  t.regex(r.output, /------\r\n > \[2\/2\] RUN echo about to fail; exit 3:\r\n(.|\r\n)*about to fail\r\n------\r\n/)
  t.regex(r.output, /ERROR: failed to solve: process "\/bin\/sh -c echo about to fail; exit 3" did not complete successfully: exit code: 3\r\n$/)
})
