/**
 * search: Docker Hub's search API (a test server speaking it, with `docker search` through the
 * real engine as the judge of the table) and the catalog of a real distribution registry with
 * enough repositories to need several pages.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFile } from 'node:child_process'
import { tmpDir, cli } from './helpers/fs'
import { buildImage } from './helpers/image'
import { tar } from './helpers/tar'
import { TestRegistry, MT_OCI_MANIFEST, ociManifest } from './helpers/registry'
import { HubSearchServer, HubEntry } from './helpers/hub-search'
import { Dockerd } from './helpers/dockerd'
import { Store, StrataError } from '../ts'
import { parseSearchFilters, splitSearchTerm } from '../ts/registry/search'

const work = fs.mkdtempSync(path.join('/var/tmp', 'strata-search-'))
const docker = new Dockerd('registry-search')
const entries: HubEntry[] = [
  { name: 'mysql', description: 'MySQL is a widely used, open-source relational database management system (RDBMS).', star_count: 9990, is_official: true, is_automated: false },
  { name: 'mariadb', description: 'MariaDB is a community-developed fork of MySQL\nintended to remain free.', star_count: 3659, is_official: true, is_automated: false },
  { name: 'mysql/mysql-server', description: 'Optimized MySQL Server Docker images.', star_count: 730, is_official: false, is_automated: true },
  { name: 'centos/mysql-57-centos7', description: 'MySQL 5.7 SQL database server', star_count: 83, is_official: false, is_automated: false },
  { name: 'someone/mysql-tiny', description: '', star_count: 0, is_official: false, is_automated: false },
]
const hub = new HubSearchServer(entries)
let plain: TestRegistry
const REPOS = 46
/** Catalog page size for the test: several pages from a few dozen repositories. */
const PAGE = 10

test.before(async () => {
  await hub.start()
  docker.start()
  plain = TestRegistry.start(path.join(work, 'plain'), 'plain')
  // Enough repositories for three catalog pages; every tenth is a "web" one.
  const img = buildImage({ layers: [tar([{ name: 'f', data: Buffer.from('x') }])] })
  const manifest = ociManifest(img)
  const names = Array.from({ length: REPOS }, (_, i) => `${i % 10 === 3 ? 'web' : 'svc'}-${String(i).padStart(3, '0')}`)
  for (const n of names) {
    for (const b of [img.config, img.blobs[0]]) await plain.pushBlob(n, b)
    await plain.pushManifest(n, 'latest', manifest, MT_OCI_MANIFEST)
  }
})
test.after.always(async () => {
  await hub.stop()
  docker.stop()
  plain?.stop()
  fs.rmSync(work, { recursive: true, force: true })
})

/**
 * Docker 20.10's CLI, run asynchronously: the engine asks the Hub test server, which answers
 * from this process's event loop.
 */
function dockerSearch(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/docker', ['search', ...args], { env: { ...process.env, DOCKER_HOST: docker.host } }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)))
  })
}

test('terms and filters are read as Docker reads them', (t) => {
  t.deepEqual(splitSearchTerm('mysql'), ['docker.io', 'mysql'])
  t.deepEqual(splitSearchTerm('user/app'), ['docker.io', 'user/app'])
  t.deepEqual(splitSearchTerm('localhost:5000/app'), ['localhost:5000', 'app'])
  t.deepEqual(splitSearchTerm('index.docker.io/app'), ['docker.io', 'app'])
  t.deepEqual(parseSearchFilters(['stars=3', 'is-official=true', 'is-automated=0']), { stars: 3, isOfficial: true, isAutomated: false })
  t.is(t.throws(() => parseSearchFilters(['stars=x']), { instanceOf: StrataError })!.message, "Invalid filter 'stars=x'")
  t.is(t.throws(() => parseSearchFilters(['color=red']), { instanceOf: StrataError })!.message, "Invalid filter 'color'")
})

test('Docker Hub\'s search API: the same table as docker search, with --limit, --no-trunc, filters and --format', async (t) => {
  const root = path.join(tmpDir(t), 'root')
  const cases: string[][] = [
    [],
    ['--no-trunc'],
    ['--limit', '2'],
    ['-f', 'stars=100'],
    ['-f', 'is-official=true'],
    ['-f', 'is-automated=true'],
    ['--format', '{{.Name}}: {{.StarCount}} {{.IsOfficial}}'],
    ['--format', 'table {{.Name}}\t{{.Description}}'],
  ]
  for (const flags of cases) {
    const ours = await cli(root, ['search', ...flags, `${hub.host}/mysql`])
    t.is(ours.code, 0, ours.stderr)
    const theirs = await dockerSearch([...flags, `${hub.host}/mysql`])
    t.is(ours.stdout, theirs, flags.join(' '))
  }
  t.regex((await cli(root, ['search', `${hub.host}/mysql`])).stdout.split('\n')[0], /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\s+AUTOMATED$/)
  const bad = await cli(root, ['search', '--limit', '101', `${hub.host}/mysql`])
  t.is(bad.code, 1)
  t.regex(bad.stderr, /Limit 101 is outside the range of \[1, 100\]/)
  t.regex((await cli(root, ['search', '-f', 'stars=many', `${hub.host}/mysql`])).stderr, /Invalid filter 'stars=many'/)
  t.true(hub.requests.some((r) => r.startsWith('/v1/search?q=mysql&n=2')), 'the limit is asked of the registry')
})

test('a plain registry: its catalog, page by page, for names containing the term', async (t) => {
  const dir = tmpDir(t)
  const store = await Store.open({ root: path.join(dir, 'root'), dockerConfig: path.join(dir, 'cfg') })
  const web = await store.search(`${plain.host}/web`, { limit: 100, pageSize: PAGE })
  t.deepEqual(web.map((r) => r.name), Array.from({ length: REPOS }, (_, i) => i).filter((i) => i % 10 === 3).map((i) => `${plain.host}/web-${String(i).padStart(3, '0')}`))
  t.deepEqual(web[0], { name: `${plain.host}/web-003`, description: '', starCount: 0, isOfficial: false, isAutomated: false })
  t.true(web.some((r) => r.name.endsWith('web-043')), 'the last page was read')
  t.is((await store.search(`${plain.host}/svc`, { pageSize: PAGE })).length, 25, 'the default limit, across pages')
  t.is((await store.search('web', { registry: plain.host, limit: 3, pageSize: PAGE })).length, 3)
  t.deepEqual(await store.search(`${plain.host}/nothing-like-this`, { pageSize: PAGE }), [])
  const r = await cli(path.join(dir, 'root'), ['search', '--limit', '2', `${plain.host}/web`])
  const lines = r.stdout.trimEnd().split('\n')
  t.regex(lines[0], /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\s+AUTOMATED$/)
  t.deepEqual(lines.slice(1).map((l) => l.trim().split(/\s+/)), [[`${plain.host}/web-003`, '0'], [`${plain.host}/web-013`, '0']])
  await store.close()
})
