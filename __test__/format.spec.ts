/**
 * Output formatting: go-units sizes and durations (against go-units' own test tables),
 * Go's %g, the docker tabwriter (against literal docker output), Go templates as
 * `--format` uses them.
 */
import test from 'ava'
import { StrataError } from '../ts/errors'
import {
  ago,
  bytesSize,
  CONTAINER_HEADERS,
  CONTAINER_TABLE_FORMAT,
  DOCKER_TABWRITER,
  ellipsis,
  executeTemplate,
  formatF,
  formatG,
  formatItems,
  formatNumber,
  goJson,
  goQuote,
  HISTORY_HEADERS,
  HISTORY_TABLE_FORMAT,
  goUnitsHumanSize,
  historyCreatedBy,
  humanDuration,
  humanSize,
  IMAGE_HEADERS,
  IMAGE_TABLE_FORMAT,
  isTableFormat,
  marshalContext,
  preFormat,
  renderTable,
  resolveFormat,
  runeCount,
  tabwrite,
  Template,
  truncateId,
} from '../ts/format'

// ---------------------------------------------------------------------------- sizes

test('humanSize: docker images SIZE (3 significant digits)', (t) => {
  const cases: Array<[number, string]> = [
    [0, '0B'],
    [1, '1B'],
    [999, '999B'],
    [1000, '1kB'],
    [1200, '1.2kB'],
    [4608, '4.61kB'],
    [13256, '13.3kB'],
    [13336, '13.3kB'],
    [544e6, '544MB'],
    [543_994_829, '544MB'],
    [63_900_000, '63.9MB'],
    [72_800_000, '72.8MB'],
    [1_234_567_890, '1.23GB'],
    // Go rounds the exact binary value half to even and switches to %e at the precision
    [1125, '1.12kB'],
    [1135, '1.14kB'],
    [999_499, '999kB'],
    [999_500, '1e+03kB'],
    [999_999_999, '1e+03MB'],
  ]
  for (const [n, s] of cases) t.is(humanSize(n), s, String(n))
})

test('goUnitsHumanSize: go-units TestHumanSize', (t) => {
  const cases: Array<[number, string]> = [
    [1000, '1kB'],
    [1024, '1.024kB'],
    [1_000_000, '1MB'],
    [1_048_576, '1.049MB'],
    [2_000_000, '2MB'],
    [3_420_000_000, '3.42GB'],
    [5_372_000_000_000, '5.372TB'],
    [2_220_000_000_000_000, '2.22PB'],
    [1e13 * 1e15, '1e+04YB'],
  ]
  for (const [n, s] of cases) t.is(goUnitsHumanSize(n), s, String(n))
})

test('bytesSize: go-units TestBytesSize', (t) => {
  const KiB = 1024
  const MiB = KiB * 1024
  const GiB = MiB * 1024
  const TiB = GiB * 1024
  const PiB = TiB * 1024
  const cases: Array<[number, string]> = [
    [1024, '1KiB'],
    [1024 * 1024, '1MiB'],
    [1048576, '1MiB'],
    [2 * MiB, '2MiB'],
    [3.42 * GiB, '3.42GiB'],
    [5.372 * TiB, '5.372TiB'],
    [2.22 * PiB, '2.22PiB'],
    [KiB * KiB * KiB * KiB * KiB * PiB, '1.049e+06YiB'],
  ]
  for (const [n, s] of cases) t.is(bytesSize(n), s, String(n))
})

test('formatG / formatF / formatNumber follow Go fmt', (t) => {
  t.is(formatG(0, 3), '0')
  t.is(formatG(100, 3), '100')
  t.is(formatG(1.2, 3), '1.2')
  t.is(formatG(0.000012345, 3), '1.23e-05')
  t.is(formatG(0.0001, 3), '0.0001')
  t.is(formatG(123456789, 4), '1.235e+08')
  t.is(formatG(0.125, 2), '0.12') // exact half: to even
  t.is(formatG(0.375, 2), '0.38')
  t.is(formatG(1e6, -1), '1e+06')
  t.is(formatG(123456, -1), '123456')
  t.is(formatG(0.1, -1), '0.1')
  t.is(formatG(-2.5, -1), '-2.5')
  t.is(formatG(Infinity, -1), '+Inf')
  t.is(formatG(NaN, 3), 'NaN')
  t.is(formatF(2.5, 0), '2')
  t.is(formatF(3.14159, 2), '3.14')
  t.is(formatF(0.001, 1), '0.0')
  t.is(formatNumber(1000000), '1000000')
  t.is(formatNumber(1.5), '1.5')
  t.is(formatNumber(1234567.5), '1.2345675e+06')
})

// ---------------------------------------------------------------------------- durations

test('humanDuration: go-units TestHumanDuration', (t) => {
  const s = 1000
  const m = 60 * s
  const h = 60 * m
  const day = 24 * h
  const week = 7 * day
  const month = 30 * day
  const year = 365 * day
  const cases: Array<[number, string]> = [
    [450, 'Less than a second'],
    [0, 'Less than a second'],
    [-5 * s, 'Less than a second'],
    [1 * s, '1 second'],
    [45 * s, '45 seconds'],
    [46 * s, '46 seconds'],
    [59 * s, '59 seconds'],
    [60 * s, 'About a minute'],
    [1 * m, 'About a minute'],
    [3 * m, '3 minutes'],
    [35 * m, '35 minutes'],
    [35 * m + 40 * s, '35 minutes'],
    [45 * m, '45 minutes'],
    [45 * m + 40 * s, '45 minutes'],
    [46 * m, '46 minutes'],
    [59 * m, '59 minutes'],
    [1 * h, 'About an hour'],
    [1 * h + 29 * m, 'About an hour'],
    [1 * h + 31 * m, '2 hours'],
    [1 * h + 59 * m, '2 hours'],
    [3 * h, '3 hours'],
    [3 * h + 29 * m, '3 hours'],
    [3 * h + 31 * m, '4 hours'],
    [3 * h + 59 * m, '4 hours'],
    [3 * h + 60 * m, '4 hours'],
    [24 * h, '24 hours'],
    [1 * day + 12 * h, '36 hours'],
    [2 * day, '2 days'],
    [7 * day, '7 days'],
    [13 * day + 5 * h, '13 days'],
    [2 * week, '2 weeks'],
    [2 * week + 4 * day, '2 weeks'],
    [3 * week, '3 weeks'],
    [4 * week, '4 weeks'],
    [4 * week + 3 * day, '4 weeks'],
    [1 * month, '4 weeks'],
    [1 * month + 2 * week, '6 weeks'],
    [2 * month, '2 months'],
    [2 * month + 2 * week, '2 months'],
    [3 * month, '3 months'],
    [3 * month + 1 * week, '3 months'],
    [5 * month + 2 * week, '5 months'],
    [13 * month, '13 months'],
    [23 * month, '23 months'],
    [24 * month, '24 months'],
    [24 * month + 2 * week, '2 years'],
    [3 * year + 2 * month, '3 years'],
  ]
  for (const [ms, want] of cases) t.is(humanDuration(ms), want, String(ms))
})

test('ago: CREATED column', (t) => {
  const now = new Date('2020-09-27T12:00:00Z')
  t.is(ago(new Date('2020-09-13T12:00:00Z'), now), '2 weeks ago')
  t.is(ago(new Date('2020-01-20T12:00:00Z'), now), '8 months ago')
  t.is(ago(now.getTime() - 30_000, now.getTime()), '30 seconds ago')
  t.is(ago(now, now), 'Less than a second ago')
  t.is(ago(new Date(Date.now() - 3 * 3600_000)), '3 hours ago')
})

// ---------------------------------------------------------------------------- IDs, ellipsis

test('truncateId', (t) => {
  const id = 'sha256:e1d7dc9731daa2c79858307d65ef0f763f3d25b4cb9c36b6f0a95a1c3127f0ad'
  t.is(truncateId(id), 'e1d7dc9731da')
  t.is(truncateId(id.slice(7)), 'e1d7dc9731da')
  t.is(truncateId('abc'), 'abc')
})

test('ellipsis / historyCreatedBy as docker history', (t) => {
  const copy = '/bin/sh -c #(nop) COPY file:50563a97010fd7ce1ceebd1fa4f4891ac3decdf428333fb2683696f4358af6c2 in / '
  t.is(historyCreatedBy(copy), '/bin/sh -c #(nop) COPY file:50563a97010fd7ce…')
  t.is(Array.from(historyCreatedBy(copy)).length, 45)
  t.is(historyCreatedBy(copy, false), copy)
  t.is(historyCreatedBy('/bin/sh -c #(nop)\tCMD ["/hello"]'), '/bin/sh -c #(nop) CMD ["/hello"]')
  t.is(ellipsis('x'.repeat(45), 45), 'x'.repeat(45))
  t.is(ellipsis('x'.repeat(46), 45), `${'x'.repeat(44)}…`)
  t.is(ellipsis('abc', 1), 'a')
  t.is(ellipsis('abc', 0), '')
  // wide characters take two columns
  t.is(ellipsis('日本語の文字列', 5), '日本…')
  t.is(ellipsis('日本語', 6), '日本語')
  t.is(ellipsis('héllo wörld', 6), 'héllo…')
  // x/text/width: a combining mark still counts one column in Ellipsis
  t.is(ellipsis('e\u0301e\u0301e\u0301', 4), 'e\u0301e…')
})

// ---------------------------------------------------------------------------- tabwriter

test('renderTable reproduces docker images output', (t) => {
  const out = renderTable([
    ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
    ['mysql', 'latest', 'e1d7dc9731da', '2 weeks ago', '544MB'],
    ['hello-world', 'latest', 'bf756fb1ae65', '8 months ago', '13.3kB'],
  ])
  t.is(
    out,
    'REPOSITORY    TAG       IMAGE ID       CREATED        SIZE\n' +
      'mysql         latest    e1d7dc9731da   2 weeks ago    544MB\n' +
      'hello-world   latest    bf756fb1ae65   8 months ago   13.3kB\n',
  )
})

test('renderTable: header only, minwidth 10, last column never padded', (t) => {
  t.is(renderTable([['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']]), 'REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n')
  t.is(renderTable([['a', 'b'], ['c', 'd']]), 'a         b\nc         d\n')
  t.is(renderTable([]), '')
})

test('tabwrite: docker history block (empty COMMENT keeps SIZE padded)', (t) => {
  const rows = [
    ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
    ['feb5d9fea6a5', '2 years ago', historyCreatedBy('/bin/sh -c #(nop)  CMD ["/hello"]'), '0B', ''],
    ['<missing>', '2 years ago', historyCreatedBy('/bin/sh -c #(nop) COPY file:50563a97010fd7ce1ceebd1fa4f4891ac3decdf428333fb2683696f4358af6c2 in / '), '13.3kB', ''],
  ]
  t.is(
    renderTable(rows),
    'IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT\n' +
      'feb5d9fea6a5   2 years ago   /bin/sh -c #(nop)  CMD ["/hello"]               0B        \n' +
      '<missing>      2 years ago   /bin/sh -c #(nop) COPY file:50563a97010fd7ce…   13.3kB    \n',
  )
})

test('tabwrite: column blocks are per run of lines, widths count runes', (t) => {
  t.is(tabwrite('a\tb\tc\naaaaaaaaaaaa\tb\n\nx\ty\n'), 'a              b         c\naaaaaaaaaaaa   b\n\nx         y\n')
  t.is(tabwrite('héllo\tx\nh\ty\n'), 'héllo     x\nh         y\n')
  t.is(tabwrite('abcdefghijkl\tx'), 'abcdefghijkl   x')
  t.is(tabwrite('no tabs here\n'), 'no tabs here\n')
  t.is(tabwrite('a\tb\n', { ...DOCKER_TABWRITER, minwidth: 0, padding: 1 }), 'a b\n')
})

test('tabwrite: docker measures cells in terminal columns (go-runewidth), stdlib in runes', (t) => {
  // 6 wide characters = 12 columns, + padding 3
  t.is(tabwrite('日本語のタグ\tx\nab\ty\n'), `日本語のタグ   x\nab${' '.repeat(13)}y\n`)
  // 6 runes + 3 < minwidth 10
  t.is(tabwrite('日本語のタグ\tx\nab\ty\n', { ...DOCKER_TABWRITER, widthOf: runeCount }), `日本語のタグ${' '.repeat(4)}x\nab${' '.repeat(8)}y\n`)
  // combining acute accent takes no column
  t.is(tabwrite('cafe\u0301-latte-12\tx\nc\ty\n'), 'cafe\u0301-latte-12   x\nc               y\n')
})

// ---------------------------------------------------------------------------- templates

const image = {
  ID: 'e1d7dc9731da',
  Repository: 'mysql',
  Tag: 'latest',
  RepoTags: ['mysql:latest', 'mysql:8'],
  Labels: new Map([
    ['maintainer', 'me'],
    ['com.example.vendor', 'ACME'],
  ]),
  Config: { Env: ['PATH=/usr/bin', 'GOSU_VERSION=1.12'], Cmd: ['mysqld'], User: '' },
  RootFS: { Type: 'layers', Layers: ['sha256:aa', 'sha256:bb'] },
  Containers: 0,
  Dangling: false,
  Size: 544000000,
  Nothing: null,
}

test('template: fields, nested paths, tabs', (t) => {
  t.is(executeTemplate('{{.ID}}\t{{.Repository}}', image), 'e1d7dc9731da\tmysql')
  t.is(executeTemplate('{{.Config.Env}}', image), '[PATH=/usr/bin GOSU_VERSION=1.12]')
  t.is(executeTemplate('{{ .Repository }}:{{ .Tag }}', image), 'mysql:latest')
  t.is(executeTemplate('{{.}}', 'dot'), 'dot')
  t.is(executeTemplate('plain text', image), 'plain text')
  t.is(executeTemplate('{{.Size}} {{.Containers}} {{.Dangling}}', image), '544000000 0 false')
})

test('template: Go default printing', (t) => {
  t.is(executeTemplate('{{.Labels}}', image), 'map[com.example.vendor:ACME maintainer:me]')
  t.is(executeTemplate('{{.RootFS}}', image), '{layers [sha256:aa sha256:bb]}')
  t.is(executeTemplate('{{.Nothing}}', image), '<no value>')
  t.is(executeTemplate('{{.X}}', { X: [1, 'a', null, true, 1.5] }), '[1 a <nil> true 1.5]')
  t.is(executeTemplate('{{.X}}', { X: [] }), '[]')
  t.is(executeTemplate('{{.M}}', { M: { b: 1, a: 2 } }, { objectsAsMaps: true }), 'map[a:2 b:1]')
  t.is(executeTemplate('{{.Missing}}', { M: 1 }, { objectsAsMaps: true }), '<no value>')
  t.is(executeTemplate('{{.A.B.C}}', {}, { objectsAsMaps: true }), '<no value>')
  t.is(executeTemplate('{{.T}}', { T: new Date('2020-09-27T12:00:00.5Z') }), '2020-09-27 12:00:00.5 +0000 UTC')
})

test('template: json', (t) => {
  t.is(executeTemplate('{{json .RootFS}}', image), '{"Type":"layers","Layers":["sha256:aa","sha256:bb"]}')
  t.is(executeTemplate('{{.RootFS | json}}', image), '{"Type":"layers","Layers":["sha256:aa","sha256:bb"]}')
  t.is(executeTemplate('{{json .Labels}}', image), '{"com.example.vendor":"ACME","maintainer":"me"}')
  t.is(executeTemplate('{{json .Config.User}}', image), '""')
  t.is(executeTemplate('{{json .Nothing}}', image), 'null')
  t.is(executeTemplate('{{json .}}', { Cmd: '<a> & "b"\n', N: 1.5, B: true }), '{"Cmd":"<a> & \\"b\\"\\n","N":1.5,"B":true}')
  t.is(goJson({ s: '\u2028' }), '{"s":"\\u2028"}')
})

test('template: functions', (t) => {
  t.is(executeTemplate('{{index .Labels "maintainer"}}', image), 'me')
  t.is(executeTemplate('{{index .Labels "nope"}}', image), '<no value>')
  t.is(executeTemplate('{{index .RepoTags 1}}', image), 'mysql:8')
  t.is(executeTemplate('{{join .RepoTags ","}}', image), 'mysql:latest,mysql:8')
  t.is(executeTemplate('{{upper .Repository}} {{lower "ABC"}} {{title "hello world"}}', image), 'MYSQL abc Hello World')
  t.is(executeTemplate('{{println .ID .Size}}', image), 'e1d7dc9731da 544000000\n')
  t.is(executeTemplate('{{print "a" "b" 1 2}}', image), 'ab1 2')
  t.is(executeTemplate('{{printf "%s-%5d|%-6s|%q" .Repository 42 "x" "y"}}', image), 'mysql-   42|x     |"y"')
  t.is(executeTemplate('{{split "a:b:c" ":"}}', image), '[a b c]')
  t.is(executeTemplate('{{len .RepoTags}} {{len .Repository}}', image), '2 5')
  t.is(executeTemplate('{{pad .Repository 1 2}}|{{truncate .ID 4}}', image), ' mysql  |e1d7')
  t.is(executeTemplate('{{slice .ID 0 4}}', image), 'e1d7')
  t.is(executeTemplate('{{"x" | printf "%s-%s" "y"}}', image), 'y-x')
  t.is(executeTemplate('{{.Repository | upper | printf "<%s>"}}', image), '<MYSQL>')
  t.is(executeTemplate('{{(index .RepoTags 0) | upper}}', image), 'MYSQL:LATEST')
  t.is(executeTemplate('{{`raw\\t`}}', image), 'raw\\t')
  t.is(executeTemplate('{{"tab\\tnl"}}', image), 'tab\tnl')
  t.is(executeTemplate('{{print nil}} {{printf "%s" 5}} {{printf "%d %d" 1}}', image), '<nil> %!s(int=5) 1 %!d(MISSING)')
  t.is(executeTemplate("{{'a'}} {{0x10}} {{1e3}} {{1.5}}", image), '97 16 1000 1.5')
})

test('template: range, if/else, with, variables, trim markers', (t) => {
  t.is(executeTemplate('{{range .RepoTags}}[{{.}}]{{end}}', image), '[mysql:latest][mysql:8]')
  t.is(executeTemplate('{{range $i, $t := .RepoTags}}{{$i}}={{$t}};{{end}}', image), '0=mysql:latest;1=mysql:8;')
  t.is(executeTemplate('{{range .Labels}}{{.}},{{end}}', image), 'ACME,me,')
  t.is(executeTemplate('{{range $k, $v := .Labels}}{{$k}}={{$v}} {{end}}', image), 'com.example.vendor=ACME maintainer=me ')
  t.is(executeTemplate('{{range .Empty}}x{{else}}none{{end}}', { Empty: [] }), 'none')
  t.is(executeTemplate('{{range .RepoTags}}{{if eq . "mysql:8"}}{{break}}{{end}}{{.}}{{end}}', image), 'mysql:latest')
  t.is(executeTemplate('{{range .RepoTags}}{{$.Repository}}{{end}}', image), 'mysqlmysql')
  t.is(executeTemplate('{{if .Dangling}}yes{{else}}no{{end}}', image), 'no')
  t.is(executeTemplate('{{if .Containers}}a{{else if .RepoTags}}b{{else}}c{{end}}', image), 'b')
  t.is(executeTemplate('{{if and .RepoTags (not .Dangling)}}ok{{end}}', image), 'ok')
  t.is(executeTemplate('{{if or .Config.User "root"}}{{or .Config.User "root"}}{{end}}', image), 'root')
  // and/or short-circuit: .Nothing.Field would fail if evaluated
  t.is(executeTemplate('{{if and .Nothing .Nothing.Field}}x{{else}}y{{end}}', image), 'y')
  t.is(executeTemplate('{{or .Repository .Nothing.Field}}', image), 'mysql')
  t.is(executeTemplate('{{.Containers | or .Dangling}}', image), '0')
  t.is(executeTemplate('{{if gt .Size 1000}}big{{end}}{{if lt .Containers 1}} none{{end}}', image), 'big none')
  t.is(executeTemplate('{{with .Config}}{{.Cmd}}{{end}}', image), '[mysqld]')
  t.is(executeTemplate('{{with .Config.User}}{{.}}{{else}}-{{end}}', image), '-')
  t.is(executeTemplate('{{$n := .Repository}}{{$n}}{{$n = "x"}}{{$n}}', image), 'mysqlx')
  t.is(executeTemplate('a  {{- .Tag -}}  b', image), 'alatestb')
  t.is(executeTemplate('{{/* comment */}}c', image), 'c')
})

test('template: methods are called with arguments', (t) => {
  const ctx = {
    Labels: 'a=1,b=2',
    Label(name: string): string {
      return new Map([['a', '1']]).get(name) ?? ''
    },
    get Names(): string {
      return 'web'
    },
  }
  t.is(executeTemplate('{{.Label "a"}}|{{.Label "z"}}|{{.Names}}', ctx), '1||web')
})

test('template: errors are InvalidArgument with Go messages', (t) => {
  const e1 = t.throws(() => executeTemplate('{{.Foo}}', image, { typeName: '*formatter.imageContext' }), { instanceOf: StrataError })
  t.is(e1?.code, 'InvalidArgument')
  t.is(e1?.message, `template: :1:2: executing "" at <.Foo>: can't evaluate field Foo in type *formatter.imageContext`)
  const e2 = t.throws(() => executeTemplate('{{.ID}}\n{{.Config.Nope}}', image), { instanceOf: StrataError })
  t.regex(e2?.message ?? '', /^template: :2:2: executing "" at <\.Config\.Nope>: can't evaluate field Nope/)
  const e3 = t.throws(() => executeTemplate('{{nosuch .ID}}', image), { instanceOf: StrataError })
  t.is(e3?.code, 'InvalidArgument')
  t.is(e3?.message, 'template parsing error: template: :1: function "nosuch" not defined')
  for (const bad of ['{{.ID', '{{if .ID}}x', '{{end}}', '{{.ID | }}', '{{(.ID}}', '{{"unterminated}}', '{{range}}{{end}}']) {
    const e = t.throws(() => new Template(bad), { instanceOf: StrataError }, bad)
    t.is(e?.code, 'InvalidArgument', bad)
  }
  t.throws(() => executeTemplate('{{index .RepoTags 9}}', image), { message: /error calling index: index out of range: 9/ })
  t.throws(() => executeTemplate('{{join .ID ","}}', image), { instanceOf: StrataError })
  t.throws(() => executeTemplate('{{.Nothing.Field}}', image), { message: /nil pointer evaluating interface \{\}\.Field/ })
  t.throws(() => executeTemplate('{{.Repository "arg"}}', image), { instanceOf: StrataError })
  t.throws(() => executeTemplate('{{$x}}', image), { instanceOf: StrataError })
  t.throws(() => executeTemplate('{{nil}}', image), { message: /nil is not a command/ })
  t.throws(() => executeTemplate('{{eq .Repository 1}}', image), { message: /incompatible types for comparison/ })
})

// ---------------------------------------------------------------------------- docker formatter

const HEADERS = { ID: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', CreatedSince: 'CREATED', Size: 'SIZE', Digest: 'DIGEST' }
const rows = [
  { ID: 'e1d7dc9731da', Repository: 'mysql', Tag: 'latest', CreatedSince: '2 weeks ago', Size: '544MB' },
  { ID: 'bf756fb1ae65', Repository: 'hello-world', Tag: 'latest', CreatedSince: '8 months ago', Size: '13.3kB' },
]

test('formatItems: docker images default table', (t) => {
  const out = formatItems('table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}', rows, { headers: HEADERS })
  t.is(
    out,
    'REPOSITORY    TAG       IMAGE ID       CREATED        SIZE\n' +
      'mysql         latest    e1d7dc9731da   2 weeks ago    544MB\n' +
      'hello-world   latest    bf756fb1ae65   8 months ago   13.3kB\n',
  )
})

test('formatItems: literal \\t typed on the command line, header functions, empty list', (t) => {
  // what a shell passes for: --format "table {{.ID}}\t{{upper .Repository}}"
  const typed = 'table {{.ID}}\\t{{upper .Repository}}'
  t.is(formatItems(typed, rows, { headers: HEADERS }), 'IMAGE ID       REPOSITORY\ne1d7dc9731da   MYSQL\nbf756fb1ae65   HELLO-WORLD\n')
  t.is(formatItems('table {{lower .Repository}}', rows.slice(0, 1), { headers: HEADERS }), 'REPOSITORY\nmysql\n')
  t.is(formatItems('table {{.Repository}}\t{{.Tag}}', [], { headers: HEADERS }), 'REPOSITORY   TAG\n')
})

test('formatItems: non-table formats print one line per item, no tabwriter', (t) => {
  t.is(formatItems('{{.ID}}', rows), 'e1d7dc9731da\nbf756fb1ae65\n')
  t.is(formatItems('{{.Repository}}:{{.Tag}}\\t{{.ID}}', rows), 'mysql:latest\te1d7dc9731da\nhello-world:latest\tbf756fb1ae65\n')
  t.is(formatItems('json', rows.slice(0, 1)), '{"ID":"e1d7dc9731da","Repository":"mysql","Tag":"latest","CreatedSince":"2 weeks ago","Size":"544MB"}\n')
  t.is(formatItems('{{.ID}}', []), '')
  t.throws(() => formatItems('{{.Nope}}', rows, { typeName: '*formatter.imageContext' }), {
    instanceOf: StrataError,
    message: `template parsing error: template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type *formatter.imageContext`,
  })
})

test('preFormat / isTableFormat', (t) => {
  t.true(isTableFormat('table {{.ID}}'))
  t.false(isTableFormat('{{.ID}}'))
  t.is(preFormat('table {{.ID}}\\t{{.Tag}}  '), '{{.ID}}\t{{.Tag}}')
  t.is(preFormat('{{.ID}}\\n'), '{{.ID}}\n')
  t.is(preFormat('json'), '{{json .}}')
})

test('goQuote is strconv.Quote (docker ps COMMAND)', (t) => {
  t.is(goQuote('/docker-entrypoint.sh nginx -g daemon off;'), '"/docker-entrypoint.sh nginx -g daemon off;"')
  t.is(goQuote('sh -c "echo hi"\n\t\x07\x7f'), '"sh -c \\"echo hi\\"\\n\\t\\a\\x7f"')
  t.is(goQuote('日本\u00a0\u200b'), '"日本\\u00a0\\u200b"')
  t.is(goQuote(ellipsis('/docker-entrypoint.sh nginx -g daemon off;', 20)), '"/docker-entrypoint.…"')
  t.is(executeTemplate('{{printf "%q" .}}', 'a"b'), '"a\\"b"')
})

test('docker default formats and headers', (t) => {
  t.is(resolveFormat(undefined, IMAGE_TABLE_FORMAT), IMAGE_TABLE_FORMAT)
  t.is(resolveFormat('table', IMAGE_TABLE_FORMAT, { quiet: true }), '{{.ID}}')
  t.is(resolveFormat('{{.ID}}: {{.Size}}', IMAGE_TABLE_FORMAT), '{{.ID}}: {{.Size}}')
  const images = [
    { Repository: 'test/ubuntu', Tag: 'v3', ID: '4e3b13c8a266', CreatedSince: '3 months ago', Size: humanSize(136_300_000) },
    { Repository: '<none>', Tag: '<none>', ID: '0123456789ab', CreatedSince: '', Size: '0B' },
  ]
  t.is(
    formatItems(IMAGE_TABLE_FORMAT, images, { headers: IMAGE_HEADERS }),
    'REPOSITORY    TAG       IMAGE ID       CREATED        SIZE\n' +
      'test/ubuntu   v3        4e3b13c8a266   3 months ago   136MB\n' +
      '<none>        <none>    0123456789ab   N/A            0B\n',
  )
  const history = [{ ID: '<missing>', CreatedSince: '2 years ago', CreatedBy: historyCreatedBy('/bin/sh -c #(nop)  CMD ["/hello"]'), Size: '0B', Comment: '' }]
  t.is(
    formatItems(HISTORY_TABLE_FORMAT, history, { headers: HISTORY_HEADERS }),
    'IMAGE       CREATED       CREATED BY                          SIZE      COMMENT\n' +
      '<missing>   2 years ago   /bin/sh -c #(nop)  CMD ["/hello"]   0B        \n',
  )
  const ps = [
    {
      ID: 'a0c29c013a99',
      Image: 'ubuntu',
      Command: goQuote('/bin/bash'),
      RunningFor: '5 minutes ago',
      Status: 'Up 5 minutes',
      Ports: '',
      Names: 'busy_turing',
    },
  ]
  t.is(
    formatItems(CONTAINER_TABLE_FORMAT, ps, { headers: CONTAINER_HEADERS }),
    'CONTAINER ID   IMAGE     COMMAND       CREATED         STATUS         PORTS     NAMES\n' +
      'a0c29c013a99   ubuntu    "/bin/bash"   5 minutes ago   Up 5 minutes             busy_turing\n',
  )
})

test('marshalContext / MarshalJSON: docker --format json for formatter contexts', (t) => {
  class ImageContext {
    constructor(private readonly repo: string) {}
    get Repository(): string {
      return this.repo
    }
    Tag(): string {
      return 'latest'
    }
    Digest(): string {
      return '<none>'
    }
    Containers(): string {
      return 'N/A'
    }
    Label(name: string): string {
      return name
    }
    MarshalJSON(): string {
      return marshalContext(this)
    }
  }
  const ctx = new ImageContext('a&b')
  const want = '{"Containers":"N/A","Digest":"\\u003cnone\\u003e","Repository":"a\\u0026b","Tag":"latest"}'
  t.is(marshalContext(ctx), want)
  t.is(formatItems('json', [ctx]), `${want}\n`)
  t.is(executeTemplate('{{json .Digest}}', ctx), '"<none>"', 'the json function itself does not escape HTML')
  t.is(goJson({ a: '<' }, { escapeHTML: true }), '{"a":"\\u003c"}')
  t.is(goJson({ nested: ctx }), `{"nested":${want}}`)
})
