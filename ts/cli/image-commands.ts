/** CLI: `images`, `tag`, `rmi`, `history` — Docker's flags and output. */
import type { Store } from '../store'
import { StrataError } from '../errors'
import { splitFilter } from '../internal/filter-arg'
import { parseArgs, flag, value, values } from './args'
import { humanSize, goUnitsHumanSize, ago, truncateId, historyCreatedBy } from '../format/units'
import { renderTable } from '../format/table'
import { printFormatted } from './output'
import type { ImageFilters } from '../images'
import { Io } from './io'

function parseFilters(list: string[]): ImageFilters {
  const f: ImageFilters = {}
  for (const item of list) {
    const [k, v] = splitFilter(item)
    switch (k) {
      case 'dangling':
        if (!['true', 'false', '1', '0'].includes(v.toLowerCase())) throw new StrataError('InvalidArgument', `Invalid filter 'dangling=[${v}]'`)
        f.dangling = v === 'true' || v === '1'
        break
      case 'reference': (f.reference ??= []).push(v); break
      case 'label': (f.label ??= []).push(v); break
      case 'before': f.before = v; break
      case 'since': f.since = v; break
      default: throw new StrataError('InvalidArgument', `Invalid filter '${k}'`)
    }
  }
  return f
}

function splitTag(key: string): [string, string] {
  const i = key.lastIndexOf(':')
  return [key.slice(0, i), key.slice(i + 1)]
}

export async function imagesCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [
    { name: 'all', short: 'a' }, { name: 'quiet', short: 'q' }, { name: 'digests' }, { name: 'no-trunc' },
    { name: 'format', value: true }, { name: 'filter', short: 'f', value: true, multi: true },
  ])
  if (p.args.length > 1) throw new StrataError('InvalidArgument', '"images" requires at most 1 argument.')
  const rows = await store.images.list({ all: flag(p, 'all'), filters: parseFilters(values(p, 'filter')), match: p.args[0] })
  const noTrunc = flag(p, 'no-trunc')
  const idOf = (id: string) => (noTrunc ? id : truncateId(id))
  const now = Date.now()
  // One line per repo:tag (and one <none> line for untagged images), as docker prints them.
  const lines: Record<string, string>[] = []
  for (const r of rows) {
    const digestsByRepo = new Map<string, string>()
    for (const d of r.repoDigests) digestsByRepo.set(d.slice(0, d.indexOf('@')), d.slice(d.indexOf('@') + 1))
    const base = {
      ID: idOf(r.id), CreatedSince: r.created ? ago(r.created, now) : 'N/A',
      CreatedAt: r.created ? r.created.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000 UTC') : '',
      // The engine counts containers only for `system df`; `images` shows N/A.
      Size: humanSize(r.size), VirtualSize: goUnitsHumanSize(r.size), Containers: 'N/A',
      SharedSize: 'N/A', UniqueSize: 'N/A',
    }
    if (r.repoTags.length === 0) lines.push({ ...base, Repository: '<none>', Tag: '<none>', Digest: r.repoDigests[0]?.split('@')[1] ?? '<none>' })
    for (const t of r.repoTags) {
      const [repo, tag] = splitTag(t)
      lines.push({ ...base, Repository: repo, Tag: tag, Digest: digestsByRepo.get(repo) ?? '<none>' })
    }
  }
  if (flag(p, 'quiet')) {
    // One ID per line of the table, repeated for each tag, as the docker CLI prints them.
    for (const l of lines) io.out(`${l.ID}\n`)
    return 0
  }
  const fmt = value(p, 'format')
  if (fmt) {
    printFormatted(io, fmt, lines, { ID: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE', Containers: 'CONTAINERS', VirtualSize: 'VIRTUAL SIZE', SharedSize: 'SHARED SIZE', UniqueSize: 'UNIQUE SIZE' })
    return 0
  }
  const digests = flag(p, 'digests')
  const header = digests ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'] : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']
  const table = lines.map((l) => digests ? [l.Repository, l.Tag, l.Digest, l.ID, l.CreatedSince, l.Size] : [l.Repository, l.Tag, l.ID, l.CreatedSince, l.Size])
  io.out(renderTable([header, ...table]))
  return 0
}

export async function tagCommand(store: Store, argv: string[]): Promise<number> {
  const p = parseArgs(argv, [])
  if (p.args.length !== 2) throw new StrataError('InvalidArgument', '"tag" requires exactly 2 arguments.\nUsage:  strata tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]')
  await store.images.tag(p.args[0], p.args[1])
  return 0
}

export async function rmiCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'force', short: 'f' }, { name: 'no-prune' }])
  if (p.args.length === 0) throw new StrataError('InvalidArgument', '"rmi" requires at least 1 argument.')
  let rc = 0
  for (const name of p.args) {
    try {
      for (const ev of await store.images.remove(name, { force: flag(p, 'force'), noPrune: flag(p, 'no-prune') })) {
        io.out('untagged' in ev ? `Untagged: ${ev.untagged}\n` : `Deleted: ${ev.deleted}\n`)
      }
    } catch (e) {
      if (!(e instanceof StrataError)) throw e
      // Each image's error on its own line, as the docker CLI prints the daemon's.
      io.err(`Error response from daemon: ${e.message}\n`)
      rc = 1
    }
  }
  return rc
}

export async function historyCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'quiet', short: 'q' }, { name: 'no-trunc' }, { name: 'human', short: 'H' }, { name: 'format', value: true }])
  if (p.args.length !== 1) throw new StrataError('InvalidArgument', '"history" requires exactly 1 argument.')
  const rows = await store.images.history(p.args[0])
  const noTrunc = flag(p, 'no-trunc')
  // -H / --human, default true: sizes and times for people, else bytes and RFC 3339 times.
  const human = !p.flags.has('human') || flag(p, 'human')
  const now = Date.now()
  const data = rows.map((r) => {
    // The engine keeps whole seconds; the docker CLI prints them as RFC 3339 in UTC here.
    const createdAt = r.created ? new Date(Math.floor(r.created.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z') : '0001-01-01T00:00:00Z'
    return {
      ID: r.id === '<missing>' ? r.id : noTrunc ? r.id : truncateId(r.id),
      CreatedSince: human ? (r.created ? ago(r.created, now) : 'N/A') : createdAt,
      CreatedAt: createdAt,
      CreatedBy: historyCreatedBy(r.createdBy, !noTrunc),
      Size: human ? humanSize(r.size) : String(r.size),
      Comment: r.comment,
    }
  })
  if (flag(p, 'quiet')) {
    for (const d of data) io.out(`${d.ID}\n`)
    return 0
  }
  const fmt = value(p, 'format')
  if (fmt) {
    printFormatted(io, fmt, data, { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' })
    return 0
  }
  io.out(renderTable([['IMAGE', human ? 'CREATED' : 'CREATED AT', 'CREATED BY', 'SIZE', 'COMMENT'], ...data.map((d) => [d.ID, d.CreatedSince, d.CreatedBy, d.Size, d.Comment])]))
  return 0
}
