/** CLI: `strata push [-a|--all-tags] [-q] NAME[:TAG]`, with Docker 20.10's lines. */
import { Store } from '../store'
import { StrataError } from '../errors'
import { parseArgs, flag } from './args'
import { parseNormalizedNamed } from '../reference'
import { Io } from './io'
import { progressRenderer } from './pull-command'

export async function pushCommand(store: Store, argv: string[], io: Io): Promise<number> {
  const p = parseArgs(argv, [{ name: 'all-tags', short: 'a' }, { name: 'quiet', short: 'q' }, { name: 'disable-content-trust' }])
  if (p.args.length !== 1) throw new StrataError('InvalidArgument', '"push" requires exactly 1 argument.')
  const allTags = flag(p, 'all-tags')
  const quiet = flag(p, 'quiet')
  const ref = parseNormalizedNamed(p.args[0])
  if (ref.digest !== undefined) throw new StrataError('InvalidReference', 'cannot push a digest reference')
  if (allTags && ref.tag !== undefined) throw new StrataError('InvalidArgument', "tag can't be used with --all-tags/-a")
  let target = p.args[0]
  if (!allTags && ref.tag === undefined) {
    if (!quiet) io.out('Using default tag: latest\n')
    target = `${ref.familiarName}:latest`
  }
  const render = progressRenderer(io)
  if (!quiet) io.out(`The push refers to repository [${ref.name}]\n`)
  try {
    await store.push(target, {
      allTags,
      onProgress: quiet ? undefined : (e) => {
        if (e.kind === 'layer') {
          const status = e.status === 'Mounted from' ? `Mounted from ${e.from}` : e.status
          render(e.current === undefined ? { id: e.id, status } : { id: e.id, status, current: e.current, total: e.total ?? 0 })
        } else if (e.kind === 'pushed') render({ status: `${e.tag}: digest: ${e.digest} size: ${e.size}` })
      },
    })
  } catch (e) {
    // Docker prints a push's error as the stream's last line, without a prefix.
    if (e instanceof StrataError && e.code !== 'InvalidArgument' && e.code !== 'InvalidReference') {
      io.err(`${e.message}\n`)
      return 1
    }
    throw e
  }
  if (quiet) io.out(`${allTags ? ref.familiarName : parseNormalizedNamed(target).familiarString()}\n`)
  return 0
}
