/**
 * The build cache over time: a randomised sequence of edits where every cached build equals a
 * `--no-cache` build of the same state (never a stale hit); cache export/import between two
 * stores (100% hits, the same image); records keep layers alive through `rmi` and cleanup
 * until `builder prune`; a `kill -9` mid-build leaves a consistent store whose next build
 * reuses the steps that finished.
 */
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn, execFileSync } from 'node:child_process'
import { Store, StrataError } from '../ts'
import { CLI } from './helpers/fs'
import { writeContext, clockPast, strataTree, buildSuite, BUILD_BASE } from './helpers/build'
import { checkConsistent } from './helpers/consistency'
import { native, type NativeFsOp } from '../ts/internal/native'
import { fsBatchesOf } from './helpers/fsbatch'
import { parseCacheSpec } from '../ts/build/cache-io'
import { chainIdsOf, type DiffId } from '../ts/internal/chain'

const suite = buildSuite()
const BB = BUILD_BASE
const freshStore = suite.freshStore

function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const DOCKERFILE = `FROM ${BB}
ARG FLAVOR=plain
RUN echo "flavor $FLAVOR" > /flavor
COPY src/ /app/
COPY top.txt /top.txt
LABEL step=metadata
RUN cat /app/* /top.txt 2>/dev/null | wc -c > /app-bytes; ls -lR /app | awk '{print $1, $NF}' > /app-listing
`

function configOf(store: Store, id: string): Promise<unknown> {
  return store.context.images.get(id).then((img) => {
    const c = JSON.parse(img!.raw.toString()) as { created?: string; history: { created?: string }[]; rootfs: { diff_ids: string[] } }
    delete c.created
    for (const h of c.history) delete h.created
    return { ...c, rootfs: c.rootfs.diff_ids.length }
  })
}

test.serial('a random sequence of edits: every cached build equals a --no-cache build of the same state', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: DOCKERFILE, 'top.txt': 'top', 'src/a.txt': 'aaaa', 'src/b.txt': 'bbbb', 'src/d/c.txt': 'cccc', '.dockerignore': '*.tmp\n' })
  const r = rng(424242)
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  const srcFiles = (): string[] => {
    const out: string[] = []
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(path.join(ctx, d), { withFileTypes: true })) {
        const rel = d ? `${d}/${e.name}` : e.name
        if (e.isDirectory()) walk(rel)
        else out.push(rel)
      }
    }
    walk('src')
    return out
  }
  let args: Record<string, string> = {}
  const edits: Record<string, () => string> = {
    // Same size, mtime put back: only the content (and ctime) changed.
    sameSizeSameMtime: () => {
      const f = pick(srcFiles())
      const p = path.join(ctx, f)
      const st = fs.statSync(p)
      const old = fs.readFileSync(p, 'utf8')
      fs.writeFileSync(p, old.split('').map((c) => String.fromCharCode(97 + ((c.charCodeAt(0) - 96) % 26))).join(''))
      fs.utimesSync(p, st.atime, st.mtime)
      return `rewrite ${f}`
    },
    // Rewritten at once after the last build: racily clean.
    immediate: () => {
      const f = pick(srcFiles())
      fs.writeFileSync(path.join(ctx, f), fs.readFileSync(path.join(ctx, f), 'utf8').toUpperCase() === fs.readFileSync(path.join(ctx, f), 'utf8') ? 'lowr' : 'UPPR')
      return `immediate ${f}`
    },
    add: () => {
      const f = `src/${pick(['', 'd/', 'e/'])}n${Math.floor(r() * 100)}.txt`
      writeContext(ctx, { [f]: `new ${f}` })
      return `add ${f}`
    },
    del: () => {
      const fs0 = srcFiles()
      if (fs0.length <= 1) return 'noop'
      const f = pick(fs0)
      fs.rmSync(path.join(ctx, f))
      return `delete ${f}`
    },
    chmod: () => {
      const f = pick(srcFiles())
      fs.chmodSync(path.join(ctx, f), pick([0o600, 0o644, 0o755, 0o640]))
      return `chmod ${f}`
    },
    chmodDir: () => {
      fs.chmodSync(path.join(ctx, 'src'), pick([0o755, 0o750, 0o700]))
      return 'chmod src/'
    },
    rename: () => {
      const f = pick(srcFiles())
      const to = `${path.dirname(f)}/r${Math.floor(r() * 100)}.txt`
      fs.renameSync(path.join(ctx, f), path.join(ctx, to))
      return `rename ${f} ${to}`
    },
    ignore: () => {
      const pat = pick(['*.tmp\n', '*.tmp\nsrc/d\n', '*.tmp\nsrc/b.txt\n', 'src/**/n*.txt\n', '*.tmp\n!src/d/c.txt\nsrc/d\n'])
      fs.writeFileSync(path.join(ctx, '.dockerignore'), pat)
      return `.dockerignore ${JSON.stringify(pat)}`
    },
    arg: () => {
      args = pick<Record<string, string>>([{}, { FLAVOR: 'mint' }, { FLAVOR: 'plain' }, { FLAVOR: 'lemon' }])
      return `ARG ${JSON.stringify(args)}`
    },
    touch: () => {
      const now = new Date(Date.now() + Math.floor(r() * 100000))
      for (const f of srcFiles()) fs.utimesSync(path.join(ctx, f), now, now)
      return 'touch all'
    },
  }
  const names = Object.keys(edits)
  await store.build({ context: ctx, buildArgs: args })
  for (let i = 0; i < 14; i++) {
    const what = edits[names[Math.floor(r() * names.length)]]()
    const cached = await store.build({ context: ctx, buildArgs: args, tags: ['seq:cached'] })
    const fresh = await store.build({ context: ctx, buildArgs: args, noCache: true, tags: ['seq:fresh'] })
    t.deepEqual(await strataTree(store, 'seq:cached', path.join(dir, `c${i}`)), await strataTree(store, 'seq:fresh', path.join(dir, `f${i}`)), `after ${what}`)
    t.deepEqual(await configOf(store, cached.imageId), await configOf(store, fresh.imageId), `config after ${what}`)
    if (what === 'touch all') t.true(cached.steps.every((s) => s.cached), 'touching hits every step')
  }
})

test.serial('cache export and import between two stores: 100% hits, the same image', async (t) => {
  const a = await freshStore(t, 'a')
  const b = await freshStore(t, 'b')
  const ctx = path.join(a.dir, 'ctx')
  writeContext(ctx, { Dockerfile: DOCKERFILE, 'top.txt': 'top', 'src/a.txt': 'aaaa', 'src/d/c.txt': 'cccc' })
  const layoutDir = path.join(a.dir, 'cache-layout')
  const built = await a.store.build({ context: ctx, cacheTo: [{ type: 'local', dir: layoutDir }] })
  t.true(fs.existsSync(path.join(layoutDir, 'index.json')) && fs.existsSync(path.join(layoutDir, 'oci-layout')))
  const imported = await b.store.build({ context: ctx, cacheFrom: [{ type: 'local', dir: layoutDir }] })
  t.true(imported.steps.every((s) => s.cached))
  t.is(imported.imageId, built.imageId)
  t.deepEqual(await strataTree(b.store, imported.imageId, path.join(b.dir, 't')), await strataTree(a.store, built.imageId, path.join(a.dir, 't')))
})

test.serial('incremental COPY: a changed file is copied, the others linked from the last layer of the same COPY; the layer equals a --no-cache build\'s (same DiffID) and outlives the old one', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, {
    Dockerfile: `FROM ${BB}\nCOPY tree/ /\nCOPY --chown=7:8 --chmod=640 tree/ /app/owned/\nRUN cat /d1/a.txt /app/owned/d2/sub/c.txt > /seen\n`,
    'tree/d1/a.txt': 'a1', 'tree/d1/b.txt': { content: 'b', mode: 0o600 }, 'tree/d1/x.sh': { content: '#!/bin/sh\n', mode: 0o755 },
    'tree/d2/sub/c.txt': 'c', 'tree/d2/l': { link: '../d1/a.txt' }, 'tree/d2/keep': 'k',
  })
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'kept', path.join(ctx, 'tree/d1/b.txt')])
  // Two names of one file: made as a pair, never linked from the old layer.
  fs.linkSync(path.join(ctx, 'tree/d2/keep'), path.join(ctx, 'tree/d2/keep2'))
  const layerFile = async (diffIds: string[], i: number, rel: string): Promise<string> => {
    const l = await store.context.layers.get(chainIdsOf(diffIds.slice(0, i + 1) as DiffId[])[i])
    return path.join(store.context.layout.diffDir(l!.cacheId), rel)
  }
  const diffIdsOf = async (id: string): Promise<string[]> => (await store.context.images.get(id))!.config.rootfs.diff_ids
  const first = await store.build({ context: ctx, tags: ['inc:1'] })
  const before = await diffIdsOf(first.imageId)
  fs.writeFileSync(path.join(ctx, 'tree/d1/a.txt'), 'a2, longer')
  fs.chmodSync(path.join(ctx, 'tree/d1/x.sh'), 0o700)
  const inc = await store.build({ context: ctx, tags: ['inc:2'] })
  t.deepEqual(inc.steps.map((x) => x.cached), [false, false, false])
  const after = await diffIdsOf(inc.imageId)
  const base = before.length - 3
  // Unchanged files of both COPYs are the old layers' inodes; the changed ones are new files.
  for (const [i, rel] of [[base, 'd1/b.txt'], [base, 'd2/sub/c.txt'], [base + 1, 'app/owned/d2/sub/c.txt']] as [number, string][]) {
    t.is(fs.statSync(await layerFile(after, i, rel)).ino, fs.statSync(await layerFile(before, i, rel)).ino, rel)
  }
  for (const [i, rel] of [[base, 'd1/a.txt'], [base, 'd1/x.sh'], [base, 'd2/keep'], [base + 1, 'app/owned/d1/a.txt']] as [number, string][]) {
    t.not(fs.statSync(await layerFile(after, i, rel)).ino, fs.statSync(await layerFile(before, i, rel)).ino, rel)
  }
  const fresh = await store.build({ context: ctx, noCache: true, tags: ['inc:fresh'] })
  // `COPY tree/ /` makes only directories of the source (their times kept): its layer is
  // reproducible, and the incremental one is the same tar.
  t.is(after[base], (await diffIdsOf(fresh.imageId))[base])
  const expected = await strataTree(store, 'inc:fresh', path.join(dir, 'fresh'))
  t.deepEqual(await strataTree(store, 'inc:2', path.join(dir, 'inc')), expected)
  t.is(execFileSync('getfattr', ['--only-values', '-n', 'user.note', await layerFile(after, base, 'd1/b.txt')], { stdio: ['ignore', 'pipe', 'ignore'] }).toString(), 'kept')
  // The old layers go (their image and records removed): the new layers keep their files.
  await store.images.remove('inc:1')
  await store.images.remove('inc:fresh')
  t.true((await store.pruneBuildCache()).deleted.length > 0)
  t.false(fs.existsSync(await layerFile(before, base, 'd1/b.txt').catch(() => '/nonexistent')))
  t.deepEqual(await strataTree(store, 'inc:2', path.join(dir, 'inc-after-prune')), expected)
  // And a build after the prune (no hint left) copies everything again, to the same image.
  fs.writeFileSync(path.join(ctx, 'tree/d2/keep'), 'k2')
  const again = await store.build({ context: ctx, tags: ['inc:3'] })
  t.deepEqual(again.steps.map((x) => x.cached), [false, false, false])
  await store.close()
  await checkConsistent(t, root)
})

test.serial('incremental COPY: the links it makes in the unmounted layer dir are synced before the layer is registered (strace of a CLI rebuild)', async (t) => {
  // An overlay's unmount syncs what was written through the mount; the links go into the upper
  // dir after it, so the copy syncs them itself. Seen from outside: after the COPY's last
  // linkat comes a syncfs, and only then the rename that makes a layerdb entry visible.
  const { dir, store, root } = await freshStore(t)
  await store.close()
  const ctx = path.join(dir, 'ctx')
  const files: Record<string, string> = { Dockerfile: `FROM ${BB}\nCOPY tree/ /app/\n` }
  for (let i = 0; i < 20; i++) files[`tree/d${i % 4}/f${i}.txt`] = `file ${i}`
  writeContext(ctx, files)
  execFileSync(process.execPath, [CLI, '--root', root, 'build', '-q', ctx])
  fs.writeFileSync(path.join(ctx, 'tree/d0/f0.txt'), 'changed')
  const trace = path.join(dir, 'strace.txt')
  execFileSync('strace', ['-f', '-qq', '-o', trace, '-e', 'trace=linkat,syncfs,rename,renameat,renameat2', process.execPath, CLI, '--root', root, 'build', '-q', ctx])
  const calls = fs.readFileSync(trace, 'utf8').split('\n').filter((l) => !l.includes('resumed>'))
  const links = calls.flatMap((l, i) => (/\blinkat\(/.test(l) && !/= -1/.test(l) ? [i] : []))
  t.true(links.length >= 19, `the unchanged files are linked (${links.length} linkat)`)
  const lastLink = links[links.length - 1]
  const sync = calls.findIndex((l, i) => i > lastLink && /\bsyncfs\(/.test(l))
  t.true(sync > lastLink, 'a syncfs follows the last link')
  const visible = calls.findIndex((l, i) => i > lastLink && /\brename(at2?)?\(.*layerdb/.test(l))
  t.true(visible > sync, 'the layer becomes visible after the sync')
})

test.serial('incremental COPY: hints that cannot be written or read never fail a build', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nCOPY tree/ /\n`, 'tree/d/a.txt': 'a', 'tree/d/b.txt': 'b' })
  // Where the hints go is a file: none can be written.
  fs.mkdirSync(path.join(root, 'builder'), { recursive: true })
  fs.writeFileSync(path.join(root, 'builder', 'copies'), 'not a directory')
  const first = await store.build({ context: ctx })
  fs.writeFileSync(path.join(ctx, 'tree/d/a.txt'), 'a2')
  const second = await store.build({ context: ctx })
  t.deepEqual(second.steps.map((s) => s.cached), [false])
  // A torn hint is no hint: the next miss copies everything, to the same result as --no-cache.
  fs.rmSync(path.join(root, 'builder', 'copies'))
  fs.writeFileSync(path.join(ctx, 'tree/d/a.txt'), 'a3')
  await store.build({ context: ctx })
  const hints = fs.readdirSync(path.join(root, 'builder', 'copies'))
  t.is(hints.length, 1)
  fs.writeFileSync(path.join(root, 'builder', 'copies', hints[0]), '{"v":1,"chainId":')
  fs.writeFileSync(path.join(ctx, 'tree/d/b.txt'), 'b2')
  const torn = await store.build({ context: ctx, tags: ['torn:1'] })
  const fresh = await store.build({ context: ctx, noCache: true, tags: ['torn:fresh'] })
  t.not(first.imageId, second.imageId)
  t.deepEqual(await strataTree(store, 'torn:1', path.join(dir, 't1')), await strataTree(store, 'torn:fresh', path.join(dir, 'tf')))
  t.is((await store.context.images.get(torn.imageId))!.config.rootfs.diff_ids.at(-1), (await store.context.images.get(fresh.imageId))!.config.rootfs.diff_ids.at(-1))
})

test.serial('--cache-to mode=min (the default) exports the image\'s stages only; mode=max every stage', async (t) => {
  const a = await freshStore(t, 'a')
  const ctx = path.join(a.dir, 'ctx')
  // `final` stands on `base` (FROM base: its layers are the image's) and reads `gen` (COPY --from: not).
  writeContext(ctx, {
    Dockerfile: `FROM ${BB} AS gen\nRUN echo gen > /g\nFROM ${BB} AS base\nRUN echo base > /b\nFROM base AS final\nCOPY a.txt /a.txt\nCOPY --from=gen /g /g\nRUN cat /g /a.txt /b > /all\n`,
    'a.txt': 'a',
  })
  const stageOf = (name: string): string => /^\[(\w+) /.exec(name)?.[1] ?? ''
  const hits = (r: { steps: { name: string; cached: boolean }[] }): Record<string, boolean[]> => {
    const out: Record<string, boolean[]> = {}
    for (const s of r.steps) (out[stageOf(s.name)] ??= []).push(s.cached)
    return out
  }
  const built = await a.store.build({ context: ctx, cacheTo: [{ type: 'local', dir: path.join(a.dir, 'min') }, { type: 'local', dir: path.join(a.dir, 'max'), mode: 'max' }] })
  // The CLI's spelling: mode=min when not given, as BuildKit; an unknown mode is refused before anything runs.
  t.deepEqual(parseCacheSpec(`type=local,dest=${a.dir}/d`, 'to'), { type: 'local', dir: `${a.dir}/d`, mode: 'min' })
  t.deepEqual(parseCacheSpec('type=registry,ref=localhost:5000/c:1,mode=max', 'to'), { type: 'registry', ref: 'localhost:5000/c:1', mode: 'max' })
  t.is((t.throws(() => parseCacheSpec(`type=local,dest=${a.dir}/d,mode=all`, 'to')) as StrataError | undefined)?.code, 'InvalidArgument')

  const b = await freshStore(t, 'b')
  const fromMin = await b.store.build({ context: ctx, cacheFrom: [{ type: 'local', dir: path.join(a.dir, 'min') }] })
  // gen's RUN is built again; it makes the same /g, so the COPY --from after it still hits.
  t.deepEqual(hits(fromMin), { gen: [false], base: [true], final: [true, true, true] })
  t.is(fromMin.imageId, built.imageId)
  const c = await freshStore(t, 'c')
  const fromMax = await c.store.build({ context: ctx, cacheFrom: [{ type: 'local', dir: path.join(a.dir, 'max') }] })
  t.deepEqual(hits(fromMax), { gen: [true], base: [true], final: [true, true, true] })
})

test.serial('records keep their layers through rmi and cleanup; builder prune removes them', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: DOCKERFILE, 'top.txt': 'top', 'src/a.txt': 'aaaa' })
  const layers = (): number => fs.readdirSync(path.join(root, 'image/overlay2/layerdb/sha256')).length
  const before = layers()
  await store.build({ context: ctx, tags: ['keep:1'] })
  const built = layers()
  t.true(built > before)
  await store.images.remove('keep:1')
  t.is(layers(), built)
  await store.close()
  const reopened = await Store.open({ root })
  t.is(layers(), built)
  const again = await reopened.build({ context: ctx, tags: ['keep:1'] })
  t.true(again.steps.every((s) => s.cached))
  // Dangling only: the image uses its layers, nothing goes.
  t.deepEqual((await reopened.pruneBuildCache()).deleted.length, 0)
  await reopened.images.remove('keep:1')
  const pruned = await reopened.pruneBuildCache()
  t.true(pruned.deleted.length > 0 && pruned.reclaimed > 0)
  t.is(layers(), before)
  await reopened.build({ context: ctx, tags: ['keep:2'] })
  // --keep-storage 0 with -a: every record goes; the image keeps its own layers.
  const all = await reopened.pruneBuildCache({ all: true, keepStorage: 0 })
  t.true(all.deleted.length > 0)
  t.is(all.reclaimed, 0)
  t.true((await reopened.images.list()).some((i) => i.repoTags.includes('keep:2:latest') || i.repoTags.includes('keep:2')))
  await reopened.close()
})

test.serial('builder hints: temp files a dead process left between write and rename are swept when the store next opens; a live one stays', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB} AS gen\nRUN echo g > /g\nFROM ${BB}\nCOPY src/ /src/\nCOPY --from=gen /g /g\n`, 'src/a.txt': 'a' })
  // The COPY hashes the context at once (it runs beside the gen stage): files written in that
  // clock tick are racily clean and would leave the stat index with nothing to record.
  await clockPast(ctx)
  // Every temp file a hint writer renames into place is named as the cleanup pass expects.
  const renamed: string[] = []
  const nodeFs = require('node:fs') as typeof fs
  const rename = nodeFs.renameSync
  nodeFs.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
    renamed.push(String(from))
    rename(from, to)
  }
  // The stat index is renamed into place natively, from the temp name JS gives it.
  const binding = Object.values(require.cache).find((m) => typeof m?.exports?.statIndexUpdate === 'function')!.exports as typeof native
  const update = binding.statIndexUpdate
  binding.statIndexUpdate = async (...a: Parameters<typeof update>) => {
    const r = await update(...a)
    if (r === 'written') renamed.push(a[2])
    return r
  }
  try {
    await store.build({ context: ctx })
  } finally {
    nodeFs.renameSync = rename
    binding.statIndexUpdate = update
  }
  await store.close()
  const hintDirs = ['copies', 'fromkeys', 'statindex'].map((d) => path.join(root, 'builder', d))
  const temps = renamed.filter((p) => hintDirs.includes(path.dirname(p)))
  t.is(new Set(temps.map((p) => path.dirname(p))).size, 3)
  for (const p of temps) t.regex(path.basename(p), new RegExp(`^\\..+\\.${process.pid}\\.[0-9a-f]{8}\\.tmp$`))
  const hints = hintDirs.map((d) => fs.readdirSync(d))
  for (const h of hints) t.true(h.length > 0)
  // The names the hint writers give their temp files (pid 99999999 cannot be running).
  const dead = (name: string): string => `.${name}.99999999.0badf00d.tmp`
  const live = (name: string): string => `.${name}.${process.pid}.00c0ffee.tmp`
  for (const [i, d] of hintDirs.entries()) {
    fs.writeFileSync(path.join(d, dead(hints[i][0])), '{"v":1,')
    fs.writeFileSync(path.join(d, dead('stamp')), 'x')
    fs.writeFileSync(path.join(d, live(hints[i][0])), '{"v":1,')
  }
  // A dead process's staging dir: the next open runs the cleanup pass.
  fs.mkdirSync(path.join(root, 'tmp', 'build-00000000deadbeef'))
  const reopened = await Store.open({ root })
  t.true(reopened.recovered.removedStaging > 0)
  for (const [i, d] of hintDirs.entries()) t.deepEqual(fs.readdirSync(d).sort(), [...hints[i], live(hints[i][0])].sort())
  // The hints still serve: an unchanged rebuild hits every step.
  t.true((await reopened.build({ context: ctx })).steps.every((s) => s.cached))
  await reopened.close()
})

test.serial('the stat index is written while the steps run (before a later RUN starts), not on the build\'s tail', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nCOPY a.txt /a.txt\nRUN cat /a.txt\n`, 'a.txt': 'a' })
  await clockPast(ctx)
  const order: string[] = []
  const binding = Object.values(require.cache).find((m) => typeof m?.exports?.statIndexUpdate === 'function')!.exports as typeof native
  const update = binding.statIndexUpdate
  binding.statIndexUpdate = (...a: Parameters<typeof update>) => {
    order.push('index')
    return update(...a)
  }
  try {
    await store.build({ context: ctx, onProgress: (e) => { if (e.type === 'vertex') order.push(e.name.includes('RUN') ? 'run' : e.name.includes('exporting') ? 'export' : 'other') } })
  } finally {
    binding.statIndexUpdate = update
  }
  t.deepEqual(order.filter((o) => o !== 'other'), ['index', 'run', 'export'])
  await store.close()
})

test.serial('the steps\' leftovers go before the image is written: its staging dir is renamed aside (removed in the background) when the export starts', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nCOPY a.txt /a.txt\nRUN cat /a.txt\n`, 'a.txt': 'a' })
  const atExport: string[][] = []
  await store.build({ context: ctx, onProgress: (e) => { if (e.type === 'vertex' && e.name.includes('exporting')) atExport.push(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.startsWith('build-'))) } })
  t.deepEqual(atExport, [[]])
  await store.close()
  t.deepEqual(fs.readdirSync(path.join(root, 'tmp')).filter((n) => n.includes('build-')), [])
})

test.serial('the image\'s config and tags are written with its last step\'s record: one task renames the record and the config, then (a barrier) the tags', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n`, 'a.txt': 'a' })
  let imageId = ''
  const batches = await fsBatchesOf(async () => { imageId = (await store.build({ context: ctx, tags: ['along:1'] })).imageId })
  const { layout } = store.context
  const config = layout.imageConfig(imageId)
  const renames = (b: NativeFsOp[]): string[] => b.flatMap((o) => (o.op === 'rename' ? [o.target] : []))
  const last = batches.filter((b) => renames(b).includes(config))
  t.is(last.length, 1)
  const ops = last[0]
  const at = (target: string): number => ops.findIndex((o) => o.op === 'rename' && o.target === target)
  const record = renames(ops).find((p) => path.dirname(p) === layout.buildCache)!
  t.truthy(record)
  // The record, then the config, their dirs synced, then the tags: renamed in that order.
  t.true(at(record) < at(config))
  t.true(at(config) < at(layout.repositories))
  t.true(ops.slice(at(config), at(layout.repositories)).some((o) => o.op === 'fsync'))
  // Written and synced before (beside the layer's registration): nothing is written in this task,
  // and nothing of the image afterwards.
  t.false(ops.some((o) => o.op === 'writeNew' || o.op === 'write'))
  t.false(batches.slice(batches.indexOf(last[0]) + 1).some((b) => b.some((o) => 'path' in o && o.path.startsWith(path.join(root, 'image')))))
  t.true((await store.images.list()).some((i) => i.id === imageId && i.repoTags.includes('along:1')))
  await store.close()
})

test.serial('build stubs a dead process left in the making are swept when the store next opens; a live one stays', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN true\n` })
  // The stub is made under a name carrying its maker's pid, then renamed into place.
  const renamed: string[] = []
  const fsp = require('node:fs/promises') as typeof import('node:fs/promises')
  const rename = fsp.rename
  fsp.rename = async (from: fs.PathLike, to: fs.PathLike) => {
    renamed.push(String(from))
    return rename(from, to)
  }
  try {
    await store.build({ context: ctx })
  } finally {
    fsp.rename = rename
  }
  await store.close()
  const builder = path.join(root, 'builder')
  const made = renamed.filter((p) => path.dirname(p) === builder && path.basename(p).startsWith('.stub-'))
  t.is(made.length, 1)
  t.regex(path.basename(made[0]), new RegExp(`^\\.stub-${process.pid}-[0-9a-f]+$`))
  // Left by a crash: a dead process's (pid 99999999 cannot be running), this live process's, and
  // two of the older form without a pid, one untouched for two hours, one just made.
  const stub = (name: string, age = 0): void => {
    fs.mkdirSync(path.join(builder, name, 'etc'), { recursive: true })
    fs.writeFileSync(path.join(builder, name, 'etc', 'hosts'), '')
    const when = new Date(Date.now() - age)
    fs.utimesSync(path.join(builder, name), when, when)
  }
  stub('.stub-99999999-0badf00d0bad')
  stub(`.stub-${process.pid}-00c0ffee00c0`)
  stub('.stub-0123456789ab', 2 * 3600_000)
  stub('.stub-ba9876543210')
  fs.mkdirSync(path.join(root, 'tmp', 'build-00000000deadbeef'))
  const reopened = await Store.open({ root })
  t.true(reopened.recovered.removedStaging > 0)
  t.deepEqual(fs.readdirSync(builder).filter((n) => n.startsWith('.stub-')).sort(), [`.stub-${process.pid}-00c0ffee00c0`, '.stub-ba9876543210'].sort())
  t.true(fs.existsSync(path.join(builder, 'stub', 'etc', 'resolv.conf')))
  t.true((await reopened.build({ context: ctx })).steps.every((s) => s.cached))
  await reopened.close()
})

test.serial('kill -9 during a build: the store is consistent and the next build reuses the finished steps', async (t) => {
  const { dir, store, root } = await freshStore(t)
  await store.close()
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo one > /one\nCOPY f /f\nRUN echo started; sleep 60\n`, f: 'f' })
  const child = spawn(process.execPath, [CLI, '--root', root, 'build', '--progress=plain', '-t', 'killed:1', ctx], { stdio: ['ignore', 'ignore', 'pipe'] })
  const closed = new Promise((r) => child.on('close', r))
  let err = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no progress: ${err}`)), 60000)
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString()
      if (/\d+\.\d{3} started/.test(err)) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  // The steps before the RUN are recorded while the RUN runs (their registration overlaps the
  // next step): the kill comes once both records are there, the RUN still running.
  const records = path.join(root, 'builder', 'cache')
  for (let i = 0; i < 1000 && (fs.existsSync(records) ? fs.readdirSync(records).filter((n) => n.endsWith('.json')).length : 0) < 2; i++) await new Promise((r) => setTimeout(r, 10))
  child.kill('SIGKILL')
  await closed
  await checkConsistent(t, root)
  t.deepEqual(native.overlayMounts(root), [])
  t.deepEqual(fs.existsSync(path.join(root, 'runc')) ? fs.readdirSync(path.join(root, 'runc')) : [], [])
  const s = await Store.open({ root })
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${BB}\nRUN echo one > /one\nCOPY f /f\nRUN echo done > /done\n`)
  const r = await s.build({ context: ctx, tags: ['killed:1'] })
  t.deepEqual(r.steps.map((x) => x.cached), [true, true, false])
  await s.close()
})

test.serial('a step whose layer cannot be registered leaves no record and no temp file; the next build makes the step', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo one > /one\n` })
  // A file where the layer db's write-sets go: registering the step's layer fails (ENOTDIR)
  // while its cache record is being written beside it.
  const writeSets = store.context.layout.layerdbTmp
  fs.rmSync(writeSets, { recursive: true, force: true })
  fs.writeFileSync(writeSets, 'in the way')
  await t.throwsAsync(store.build({ context: ctx }))
  const cacheDir = path.join(root, 'builder', 'cache')
  t.deepEqual(fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir) : [], [])
  fs.rmSync(writeSets)
  fs.mkdirSync(writeSets)
  const r = await store.build({ context: ctx })
  t.deepEqual(r.steps.map((s) => s.cached), [false])
  t.is(fs.readdirSync(cacheDir).length, 1)
  t.true((await store.build({ context: ctx })).steps.every((s) => s.cached))
  await checkConsistent(t, root)
})

test.serial('a cache record a dead process left under its temp name (killed between write and rename) is swept when the store next opens; a live one stays', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo one > /one\n` })
  await store.build({ context: ctx })
  await store.close()
  const cacheDir = path.join(root, 'builder', 'cache')
  const [record] = fs.readdirSync(cacheDir)
  // The names a record's writer gives its temp file (pid 99999999 cannot be running).
  const dead = `.${record}.99999999.0badf00d.tmp`
  const live = `.${record}.${process.pid}.00c0ffee.tmp`
  for (const n of [dead, live]) fs.writeFileSync(path.join(cacheDir, n), '{"v":1,')
  // A dead process's staging dir: the next open runs the cleanup pass.
  fs.mkdirSync(path.join(root, 'tmp', 'build-00000000deadbeef'))
  const reopened = await Store.open({ root })
  t.deepEqual(fs.readdirSync(cacheDir).sort(), [record, live].sort())
  t.true((await reopened.build({ context: ctx })).steps.every((s) => s.cached))
  await reopened.close()
})

test.serial('builder prune --filter: until/unused-for, id, shared/private and the rest as the engine takes them; bad filters touch nothing', async (t) => {
  const { dir, store, root } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, { Dockerfile: `FROM ${BB}\nRUN echo old > /old\nRUN echo new > /new\n` })
  // The image goes: its records are then used by no image (`shared=false`, `private=true`).
  await store.images.remove((await store.build({ context: ctx })).imageId)
  const cacheDir = path.join(root, 'builder', 'cache')
  const records = (): { key: string; description: string; file: string }[] => fs.readdirSync(cacheDir).map((f) => ({ ...JSON.parse(fs.readFileSync(path.join(cacheDir, f), 'utf8')), file: path.join(cacheDir, f) }))
  t.is(records().length, 2)
  // The first step's record was last used two hours ago.
  const old = records().find((r) => r.description.includes('echo old'))!
  const twoHours = new Date(Date.now() - 2 * 3600e3)
  fs.utimesSync(old.file, twoHours, twoHours)
  for (const [filter, message] of [
    [['foo=bar'], /Invalid filter 'foo'/], [['until=1d'], /"until" filter expects a duration \(e\.g\., '24h'\): time: unknown unit "d" in duration "1d"/],
    [['until=1h', 'unused-for=2h'], /conflicting filters: "until" and "unused-for"/], [['until=1h', 'until=2h'], /filters expect only one value/],
    [['mutable=true'], /Invalid filter 'mutable'/], [['inuse'], /bad format of filter \(expected name=value\)/],
  ] as [string[], RegExp][]) {
    const e = await t.throwsAsync(store.pruneBuildCache({ all: true, filter }), { message })
    t.is((e as { code?: string }).code, 'InvalidArgument')
  }
  t.is(records().length, 2)
  // Nothing matches: shared (no image uses these layers), inuse=true, another type, another id.
  for (const filter of [['shared=true'], ['inuse=true'], ['type=exec.cachemount'], ['id=^0{64}$'], ['until=3h'], ['unused-for=3h']]) {
    t.deepEqual((await store.pruneBuildCache({ all: true, filter })).deleted, [], filter.join())
  }
  t.deepEqual((await store.pruneBuildCache({ filter: ['until=90m', 'private=true', 'type=regular', 'inuse=false'] })).deleted, [old.key])
  const left = records()
  t.is(left.length, 1)
  t.deepEqual((await store.pruneBuildCache({ filter: [`id=^${left[0].key.slice(7, 20)}`, `description=${left[0].description}`] })).deleted, [left[0].key])
  t.is(records().length, 0)
})

test.serial('COPY --from keys follow the content of the selected files: a rebuilt source stage with the same files hits', async (t) => {
  const { dir, store } = await freshStore(t)
  const ctx = path.join(dir, 'ctx')
  writeContext(ctx, {
    Dockerfile: `FROM ${BB} AS gen\nARG NOISE=1\nARG DATA=data\nARG OWNER=0\nRUN mkdir -p /out/sub && echo $DATA > /out/f && echo sub > /out/sub/g && chown -R $OWNER /out && echo $NOISE > /noise\n` +
      `FROM ${BB}\nCOPY --from=gen /out /out\nRUN cat /out/f /out/sub/g > /seen\n`,
  })
  const cached = (r: { steps: { name: string; cached: boolean }[] }): boolean[] => r.steps.filter((s) => !s.name.startsWith('[gen ')).map((s) => s.cached)
  const first = await store.build({ context: ctx, buildArgs: { NOISE: '1' } })
  // The source stage runs again (another layer: /noise and every mtime differ); the files it
  // hands over are the same, so the COPY and the RUN after it hit.
  const noisy = await store.build({ context: ctx, buildArgs: { NOISE: '2' } })
  t.false(noisy.steps.find((s) => s.name.includes('gen'))!.cached)
  t.deepEqual(cached(noisy), [true, true])
  t.is(noisy.imageId, first.imageId)
  // Another content, or another owner (COPY --from keeps owners): a miss.
  t.deepEqual(cached(await store.build({ context: ctx, buildArgs: { NOISE: '3', DATA: 'other' } })), [false, false])
  t.deepEqual(cached(await store.build({ context: ctx, buildArgs: { NOISE: '4', OWNER: '65534' } })), [false, false])
  // ...and back: the first content hits again; the result is what a --no-cache build makes.
  const back = await store.build({ context: ctx, buildArgs: { NOISE: '5' }, tags: ['from:cached'] })
  t.deepEqual(cached(back), [true, true])
  await store.build({ context: ctx, buildArgs: { NOISE: '5' }, noCache: true, tags: ['from:fresh'] })
  t.deepEqual(await strataTree(store, 'from:cached', path.join(dir, 'a')), await strataTree(store, 'from:fresh', path.join(dir, 'b')))
})
