/**
 * The Dockerfile front end: syntax (continuations with comments, escape directive, exec form
 * decoded with JSON.parse, heredocs), the semantic pass (whitelists, Docker's messages, line
 * numbers) and Docker's variable substitution.
 */
import test from 'ava'
import { parseDockerfile } from '../ts/build/dockerfile'
import { toInstructions, parseGoDuration, Stage } from '../ts/build/instructions'
import { processWord, processWords, envMap } from '../ts/build/shell'
import { BuildError } from '../ts/build/errors'

const parse = (text: string) => toInstructions(parseDockerfile(text))

test('continuations drop comment and empty lines and keep the spacing Docker keeps', (t) => {
  const { stages } = parse('FROM busybox\nRUN echo a \\\n  # a comment inside\n\n  && echo "b  c"\nRUN ["sh", "-c",  "echo  x"]\n')
  const [run1, run2] = stages[0].commands
  t.like(run1, { kind: 'run', line: 2, endLine: 5, cmdLine: ['echo a   && echo "b  c"'], prependShell: true })
  // Exec form: JSON.parse keeps the spaces inside strings.
  t.like(run2, { kind: 'run', line: 6, cmdLine: ['sh', '-c', 'echo  x'], prependShell: false })
})

test('the escape directive changes the escape token and continuation', (t) => {
  const { stages, escape } = parse('# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo x\n')
  t.is(escape, '`')
  t.deepEqual((stages[0].commands[0] as { cmdLine: string[] }).cmdLine, ['dir c:\\   && echo x'])
})

test('stages, meta args, flags and per-instruction values', (t) => {
  const { stages, metaArgs } = parse([
    'ARG BASE=busybox', 'ARG V', 'FROM $BASE AS Builder', 'WORKDIR /src', 'FROM --platform=linux/amd64 scratch',
    'COPY --from=builder --chown=1:2 --chmod=640 a b /dst/', 'ENV A=1 B="x y"', 'ENV C d e', 'LABEL "a b"=c d=e',
    'EXPOSE 80 53/udp', 'HEALTHCHECK --interval=5s --retries=3 CMD curl x', 'ONBUILD RUN echo hi', 'USER nobody',
    'VOLUME ["/data", "/logs"]', 'STOPSIGNAL SIGINT', 'SHELL ["/bin/bash", "-c"]', 'CMD echo hi', 'ENTRYPOINT ["/bin/app"]',
  ].join('\n'))
  t.deepEqual(metaArgs.map((a) => a.args), [[{ key: 'BASE', value: 'busybox' }], [{ key: 'V' }]])
  t.deepEqual(stages.map((s: Stage) => [s.name, s.baseName, s.platform, s.index]), [['builder', '$BASE', '', 0], ['', 'scratch', 'linux/amd64', 1]])
  const c = stages[1].commands
  t.like(c[0], { kind: 'copy', from: 'builder', chown: '1:2', chmod: '640', sourcesAndDest: ['a', 'b', '/dst/'] })
  t.like(c[1], { kind: 'env', pairs: [['A', '1'], ['B', '"x y"']] })
  t.like(c[2], { kind: 'env', pairs: [['C', 'd e']] })
  t.like(c[3], { kind: 'label', pairs: [['"a b"', 'c'], ['d', 'e']] })
  t.like(c[4], { kind: 'expose', ports: ['53/udp', '80'] })
  t.like(c[5], { kind: 'healthcheck', test: ['CMD-SHELL', 'curl x'], interval: 5e9, retries: 3 })
  t.like(c[6], { kind: 'onbuild', expression: 'RUN echo hi' })
  t.like(c[8], { kind: 'volume', volumes: ['/data', '/logs'] })
  t.like(c[10], { kind: 'shell', shell: ['/bin/bash', '-c'] })
  t.like(c[11], { kind: 'cmd', cmdLine: ['echo hi'], prependShell: true })
  t.like(c[12], { kind: 'entrypoint', cmdLine: ['/bin/app'], prependShell: false })
})

test('heredocs: bodies, <<- tab stripping, quoted delimiters do not expand', (t) => {
  const { stages } = parse('FROM busybox\nRUN <<EOF\necho hi\necho there\nEOF\nRUN <<-EOT\n\techo tab\n\tEOT\nCOPY <<"X" /f\n$A\nX\nRUN echo done\n')
  const [r1, r2, cp, r3] = stages[0].commands as { heredocs: { content: string; expand: boolean }[]; line: number; endLine: number }[]
  t.deepEqual(r1.heredocs, [{ name: 'EOF', content: 'echo hi\necho there\n', expand: true }] as never)
  t.is(r2.heredocs[0].content, 'echo tab\n')
  t.deepEqual([cp.heredocs[0].content, cp.heredocs[0].expand], ['$A\n', false])
  t.deepEqual([r3.line, r3.endLine], [12, 12])
  const e = t.throws(() => parse('FROM busybox\nRUN <<EOF\necho never closed\n'), { instanceOf: BuildError })
  t.is(e?.code, 'DockerfileParse')
  t.is((e as BuildError).line, 2)
})

for (const [name, text, line, msg] of [
  ['unknown instruction', 'FROM busybox\nRUN true\nFOO bar\n', 3, /unknown instruction: FOO/],
  ['unknown flag', 'FROM busybox\nCOPY --nope=1 a b\n', 2, /Unknown flag: nope/],
  ['flag of another instruction', 'FROM busybox\nADD --from=x a b\n', 2, /Unknown flag: from/],
  ['duplicate flag', 'FROM busybox\nCOPY --chown=1 --chown=2 a b\n', 2, /Duplicate flag specified: chown/],
  ['missing flag value', 'FROM busybox\nCOPY --chown a b\n', 2, /Missing a value on flag: chown/],
  ['COPY without destination', 'FROM busybox\n\nCOPY onlyone\n', 3, /requires at least two arguments/],
  ['instruction before FROM', 'RUN true\nFROM busybox\n', 1, /no build stage in current context/],
  ['bad stage name', 'FROM busybox AS 1abc\n', 1, /invalid name for build stage/],
  ['FROM arity', 'FROM a b\n', 1, /FROM requires either one or three arguments/],
  ['ENV without value', 'FROM busybox\nENV A\n', 2, /ENV must have two arguments/],
  ['ENV pair without =', 'FROM busybox\nENV A=1 B\n', 2, /can't find = in "B"/],
  ['WORKDIR arity', 'FROM busybox\nWORKDIR\n', 2, /WORKDIR requires exactly one argument/],
  ['SHELL not JSON', 'FROM busybox\nSHELL /bin/sh -c\n', 2, /JSON form/],
  ['exec form with a number', 'FROM busybox\nRUN ["sh", 1]\n', 2, /arrays must be comprised of strings only/],
  ['ONBUILD ONBUILD', 'FROM busybox\nONBUILD ONBUILD RUN x\n', 2, /Chaining ONBUILD/],
  ['HEALTHCHECK type', 'FROM busybox\nHEALTHCHECK FOO x\n', 2, /Unknown type "FOO"/],
  ['HEALTHCHECK interval', 'FROM busybox\nHEALTHCHECK --interval=1us CMD x\n', 2, /cannot be less than 1ms/],
  ['RUN --mount=... (an unknown flag of RUN)', 'FROM busybox\nRUN --mounts=type=cache true\n', 2, /Unknown flag: mounts/],
  ['bad chmod', 'FROM busybox\nCOPY --chmod=u+x a b\n', 2, /invalid chmod/],
  ['empty file', '# only a comment\n\n', 3, /file with no instructions/],
] as const) {
  test(`bad Dockerfile: ${name} is a DockerfileParse error at line ${line}`, (t) => {
    const e = t.throws(() => parse(text), { instanceOf: BuildError }) as BuildError
    t.is(e.code, 'DockerfileParse')
    t.is(e.line, line)
    t.regex(e.message, msg)
    t.regex(e.message, new RegExp(`line ${line}:`))
  })
}

test('what Docker 20.10 builds and strata does not: RUN --mount is InvalidArgument with its line, not an unknown flag', (t) => {
  const e = t.throws(() => parse('FROM busybox\nRUN --mount=type=cache,target=/x true\n'), { instanceOf: BuildError }) as BuildError
  t.is(e.code, 'InvalidArgument')
  t.is(e.line, 2)
  t.regex(e.message, /line 2: RUN --mount is not supported by strata/)
})

test('variable substitution: $V ${V} ${V:-w} ${V-w} ${V:+w} ${V+w} \\$ and quotes', (t) => {
  const env = envMap(['A=1', 'E=', 'SP=a b'])
  const cases: [string, string][] = [
    ['$A', '1'], ['${A}', '1'], ['x${A}y', 'x1y'], ['${U}', ''], ['$U', ''],
    ['${U:-w}', 'w'], ['${E:-w}', 'w'], ['${A:-w}', '1'], ['${U-w}', 'w'], ['${E-w}', ''],
    ['${A:+x}', 'x'], ['${E:+x}', ''], ['${U:+x}', ''], ['${E+x}', 'x'], ['${U+x}', ''],
    ['\\$A', '$A'], ["'$A'", '$A'], ['"$A"', '1'], ['"\\$A"', '$A'], ['a\\ b', 'a b'], ['${U:-${A}}', '1'], ['$', '$'],
  ]
  for (const [w, want] of cases) t.is(processWord(w, env), want, w)
  t.deepEqual(processWords('$SP "c d" e', env), ['a', 'b', 'c d', 'e'])
  t.throws(() => processWord('${A', env), { message: /missing ':' in substitution/ })
  t.throws(() => processWord('${U:?needed}', env), { message: /U: needed/ })
  t.is(processWord('$U ${U:-x}', env, { skipUnsetEnv: true }), '$U ${U:-x}')
  t.is(processWord('`$A', env, { escape: '`' }), '$A')
})

test('Go durations', (t) => {
  t.is(parseGoDuration('1m30s'), 90e9)
  t.is(parseGoDuration('1.5s'), 1.5e9)
  t.is(parseGoDuration('300ms'), 3e8)
  t.throws(() => parseGoDuration('5'))
})
