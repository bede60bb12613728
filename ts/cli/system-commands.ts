/**
 * CLI: `system df [-v] [--format]`, `image prune [-a] [-f] [--filter]`, `container prune [-f]
 * [--filter]`, `system prune [-a] [-f] [--filter]` — docker's tables, confirmation prompts
 * (`-f` skips them; an answer other than y/Y, or no answer at all, cancels quietly with exit 0)
 * and "Total reclaimed space:" lines.
 */
import type { Store } from '../store'
import type { DiskUsage } from '../system'
import { StrataError } from '../errors'
import { parseArgs, flag, value, values } from './args'
import { Io, processIo } from './io'
import { printFormatted } from './output'
import { parseFilterArgs } from '../containers/filters'
import { psContext } from './container-commands'
import { ago, goUnitsHumanSize, humanSizeWithPrecision, truncateId } from '../format/units'
import { executeTemplate, formatItems, isTableFormat, preFormat } from '../format/template'
import { parseNormalizedNamed } from '../reference'

/** go-units HumanSize (what df's totals and prune's "reclaimed" use). */
const human = goUnitsHumanSize

/** docker's `Reclaimable` cell: the size, and its share of the total when there is one. */
function reclaimable(amount: number, total: number): string {
  return total > 0 ? `${human(amount)} (${Math.trunc((amount * 100) / total)}%)` : human(amount)
}

function active(state: string): boolean {
  return state === 'running' || state === 'paused' || state === 'restarting'
}

/** The four summary rows of `system df`. */
function summaryRows(du: DiskUsage): Record<string, string>[] {
  const used = du.images.filter((i) => i.containers > 0).reduce((n, i) => n + i.size - i.sharedSize, 0)
  const rw = du.containers.reduce((n, c) => n + (c.sizeRw ?? 0), 0)
  const idleRw = du.containers.filter((c) => !active(c.state)).reduce((n, c) => n + (c.sizeRw ?? 0), 0)
  return [
    { Active: String(du.images.filter((i) => i.containers > 0).length), Reclaimable: reclaimable(du.layersSize - used, du.layersSize), Size: human(du.layersSize), TotalCount: String(du.images.length), Type: 'Images' },
    { Active: String(du.containers.filter((c) => active(c.state)).length), Reclaimable: reclaimable(idleRw, rw), Size: human(rw), TotalCount: String(du.containers.length), Type: 'Containers' },
    { Active: '0', Reclaimable: human(0), Size: human(0), TotalCount: '0', Type: 'Local Volumes' },
    { Active: String(du.buildCache.filter((b) => b.inUse).length), Reclaimable: human(du.builderSize - du.buildCache.filter((b) => b.inUse && !b.shared).reduce((n, b) => n + b.size, 0)), Size: human(du.builderSize), TotalCount: String(du.buildCache.length), Type: 'Build Cache' },
  ]
}

const SUMMARY_HEADERS = { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' }
const IMAGE_HEADERS = {
  Repository: 'REPOSITORY', Tag: 'TAG', ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE',
  SharedSize: 'SHARED SIZE', UniqueSize: 'UNIQUE SIZE', Containers: 'CONTAINERS', Digest: 'DIGEST', VirtualSize: 'VIRTUAL SIZE',
}
const CONTAINER_HEADERS = {
  ID: 'CONTAINER ID', Names: 'NAMES', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED',
  Ports: 'PORTS', State: 'STATE', Status: 'STATUS', Size: 'SIZE', Labels: 'LABELS', Mounts: 'MOUNTS', LocalVolumes: 'LOCAL VOLUMES',
  Networks: 'NETWORKS', Platform: 'PLATFORM',
}
const VOLUME_HEADERS = { Name: 'VOLUME NAME', Links: 'LINKS', Size: 'SIZE', Driver: 'DRIVER', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS' }
const CACHE_HEADERS = { ID: 'CACHE ID', CacheType: 'CACHE TYPE', Size: 'SIZE', CreatedSince: 'CREATED', LastUsedSince: 'LAST USED', UsageCount: 'USAGE', Shared: 'SHARED' }

/** docker's imageContext for `system df -v`: the first tag only, sizes as docker rounds them. */
function imageRows(du: DiskUsage, trunc: boolean, now: number): Record<string, unknown>[] {
  return du.images.map((i) => {
    let repo = '<none>'
    let tag = '<none>'
    if (i.repoTags.length > 0) {
      const r = parseNormalizedNamed(i.repoTags[0])
      if (r.tag !== undefined) {
        repo = r.familiarName
        tag = r.tag
      }
    }
    return {
      Containers: String(i.containers),
      CreatedAt: i.created ? i.created.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000 UTC') : '',
      CreatedSince: i.created ? ago(i.created, now) : 'N/A',
      Digest: '',
      ID: trunc ? truncateId(i.id) : i.id,
      Repository: repo,
      SharedSize: human(i.sharedSize),
      Size: humanSizeWithPrecision(i.size, 3),
      Tag: tag,
      UniqueSize: human(i.size - i.sharedSize),
      VirtualSize: human(i.size),
    }
  })
}

const DF_IMAGES = 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}'
const DF_CONTAINERS = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}'
const DF_VOLUMES = 'table {{.Name}}\t{{.Links}}\t{{.Size}}'
const DF_CACHE = 'table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}'

export async function systemDfCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'verbose', short: 'v' }, { name: 'format', value: true }])
  if (p.args.length > 0) throw new StrataError('InvalidArgument', '"system df" accepts no arguments.')
  const format = value(p, 'format') ?? 'table'
  const du = await store.diskUsage()
  const now = Date.now()
  if (!flag(p, 'verbose')) {
    printFormatted(io, format === 'table' ? 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}' : format, summaryRows(du), SUMMARY_HEADERS)
    return 0
  }
  const trunc = isTableFormat(format)
  // Verbose: the containers without their virtual size, as docker shows them.
  const containers = du.containers.map((c) => psContext({ ...c, sizeRootFs: 0 }, trunc, now))
  const images = imageRows(du, trunc, now)
  const cache = du.buildCache.map((b) => ({
    CacheType: b.type, CreatedAt: b.createdAt.toISOString(), CreatedSince: ago(b.createdAt, now), Description: '', ID: trunc ? b.id.slice(0, 12) : b.id,
    InUse: String(b.inUse), LastUsedAt: b.lastUsedAt?.toISOString() ?? '', LastUsedSince: b.lastUsedAt ? ago(b.lastUsedAt, now) : '',
    Parent: '', Reclaimable: String(!b.inUse), Shared: String(b.shared), Size: human(b.size), UsageCount: String(b.usageCount),
  }))
  if (format !== 'table') {
    // One template run over all four lists, with no newline after it (docker's verboseWrite).
    io.out(executeTemplate(preFormat(format), { Images: images, Containers: containers, Volumes: [], BuildCache: cache }))
    return 0
  }
  io.out('Images space usage:\n\n')
  io.out(formatItems(DF_IMAGES, images, { headers: IMAGE_HEADERS }))
  io.out('\nContainers space usage:\n\n')
  io.out(formatItems(DF_CONTAINERS, containers, { headers: CONTAINER_HEADERS }))
  io.out('\nLocal Volumes space usage:\n\n')
  io.out(formatItems(DF_VOLUMES, [], { headers: VOLUME_HEADERS }))
  io.out(`\nBuild cache usage: ${human(du.builderSize)}\n\n`)
  io.out(formatItems(DF_CACHE, cache, { headers: CACHE_HEADERS }))
  return 0
}

/**
 * docker's prompt.Confirm: the question and ` [y/N] ` on stdout, one line read from stdin;
 * only `y`/`Y` goes on (no input at all is a no).
 */
async function confirm(io: Io, message: string): Promise<boolean> {
  io.out(`${message} [y/N] `)
  if (io !== processIo) return false
  const stdin = process.stdin
  const line = await new Promise<string | undefined>((resolve) => {
    let buf = ''
    const done = (v: string | undefined) => {
      stdin.off('data', onData).off('end', onEnd).off('error', onEnd)
      stdin.pause()
      resolve(v)
    }
    const onData = (d: Buffer) => {
      buf += d.toString('utf8')
      const nl = buf.indexOf('\n')
      if (nl >= 0) done(buf.slice(0, nl))
    }
    const onEnd = () => done(buf === '' ? undefined : buf)
    stdin.on('data', onData).once('end', onEnd).once('error', onEnd)
  })
  return line !== undefined && line.trim().toLowerCase() === 'y'
}

const PRUNE_FLAGS = [{ name: 'force', short: 'f' }, { name: 'filter', value: true, multi: true }]

/** Runs a prune, printing the daemon's refusals as docker does. */
async function daemon<T>(io: Io, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn()
  } catch (e) {
    if (!(e instanceof StrataError) || e.message.startsWith('bad format of filter')) throw e
    io.err(`Error response from daemon: ${e.message}\n`)
    return undefined
  }
}

function containerReport(deleted: string[]): string {
  return deleted.length ? `Deleted Containers:\n${deleted.map((id) => `${id}\n`).join('')}` : ''
}

function imageReport(deleted: ({ untagged: string } | { deleted: string })[]): string {
  if (deleted.length === 0) return ''
  return `Deleted Images:\n${deleted.map((e) => ('untagged' in e ? `untagged: ${e.untagged}\n` : `deleted: ${e.deleted}\n`)).join('')}`
}

export async function containerPruneCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, PRUNE_FLAGS)
  if (p.args.length > 0) throw new StrataError('InvalidArgument', '"container prune" accepts no arguments.')
  const filters = parseFilterArgs(values(p, 'filter'))
  if (!flag(p, 'force') && !(await confirm(io, 'WARNING! This will remove all stopped containers.\nAre you sure you want to continue?'))) return 0
  const res = await daemon(io, () => store.containers.prune(filters))
  if (!res) return 1
  const out = containerReport(res.deleted)
  if (out) io.out(`${out}\n`)
  io.out(`Total reclaimed space: ${human(res.spaceReclaimed)}\n`)
  return 0
}

export async function imagePruneCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [...PRUNE_FLAGS, { name: 'all', short: 'a' }])
  if (p.args.length > 0) throw new StrataError('InvalidArgument', '"image prune" accepts no arguments.')
  const all = flag(p, 'all')
  const filters = parseFilterArgs(values(p, 'filter'))
  const warning = all
    ? 'WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?'
    : 'WARNING! This will remove all dangling images.\nAre you sure you want to continue?'
  if (!flag(p, 'force') && !(await confirm(io, warning))) return 0
  const res = await daemon(io, () => store.images.prune({ all, filters }))
  if (!res) return 1
  const out = imageReport(res.deleted)
  if (out) io.out(`${out}\n`)
  io.out(`Total reclaimed space: ${human(out ? res.spaceReclaimed : 0)}\n`)
  return 0
}

export async function systemPruneCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [...PRUNE_FLAGS, { name: 'all', short: 'a' }, { name: 'volumes' }])
  if (p.args.length > 0) throw new StrataError('InvalidArgument', '"system prune" accepts no arguments.')
  const all = flag(p, 'all')
  const filters = parseFilterArgs(values(p, 'filter'))
  if (flag(p, 'volumes') && filters.until) {
    io.err('ERROR: The "until" filter is not supported with "--volumes"\n')
    return 1
  }
  if (!flag(p, 'force')) {
    const warnings = ['all stopped containers', 'all networks not used by at least one container']
    if (flag(p, 'volumes')) warnings.push('all anonymous volumes not used by at least one container')
    warnings.push(all ? 'all images without at least one container associated to them' : 'all dangling images')
    warnings.push(all ? 'all build cache' : 'unused build cache')
    const shown = ['label', 'label!', 'until'].flatMap((k) => (filters[k] ?? []).map((v) => `${k}=${v}`)).sort()
    const message = `WARNING! This will remove:\n${warnings.map((w) => `  - ${w}\n`).join('')}${shown.length ? `\n  Items to be pruned will be filtered with:\n${shown.map((f) => `  - ${f}\n`).join('')}` : ''}\nAre you sure you want to continue?`
    if (!(await confirm(io, message))) return 0
  }
  const containers = await daemon(io, () => store.containers.prune(filters))
  if (!containers) return 1
  const cOut = containerReport(containers.deleted)
  if (cOut) io.out(`${cOut}\n`)
  const images = await daemon(io, () => store.images.prune({ all, filters }))
  if (!images) return 1
  const iOut = imageReport(images.deleted)
  if (iOut) io.out(`${iOut}\n`)
  // The build cache: unused records, every record with -a (docker's builder.CachePrune).
  const cache = await daemon(io, () => store.pruneBuildCache({ all }))
  if (!cache) return 1
  if (cache.deleted.length) io.out(`Deleted build cache objects:\n${cache.deleted.map((k) => `${k.slice(7, 32)}\n`).join('')}\n`)
  io.out(`Total reclaimed space: ${human(containers.spaceReclaimed + (iOut ? images.spaceReclaimed : 0) + cache.reclaimed)}\n`)
  return 0
}
