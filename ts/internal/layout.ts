/**
 * The on-disk layout of a strata store: Docker's overlay2 layout, as the seeds show it.
 *
 * ```
 * <root>/lock                                   flock: exclusive while metadata changes, shared while
 *                                                 it is read (ts/internal/lock.ts)
 * <root>/lock.wait                              flock: shared by processes waiting for `lock` (so a
 *                                                 process about to re-take `lock` lets them go first)
 * <root>/lock.gen                               the write generation, odd while a writer holds `lock`
 *                                                 exclusive: 20 decimal digits, a space, the same 20
 *                                                 again, a newline; overwritten in place (readers
 *                                                 that read without `lock`, ts/lock.ts)
 * <root>/overlay2/<cache-id>/diff/              the layer's files, in overlay format:
 *                                                 whiteout     = char device 0/0 named NAME
 *                                                 opaque dir   = xattr trusted.overlay.opaque=y
 * <root>/overlay2/<cache-id>/link               26-char short name of this layer
 * <root>/overlay2/<cache-id>/lower              l/<short>:l/<short>:... the layers below, top first
 *                                                 (absent for a base layer)
 * <root>/overlay2/<cache-id>/work/              overlay workdir (writable layers only)
 * <root>/overlay2/<cache-id>/merged/            mount point while mounted (writable layers only)
 * <root>/overlay2/<cache-id>/committed          marker: complete and read-only (image layers);
 *                                                 written inside the staging dir, before the rename
 * <root>/overlay2/l/<short>                     symlink -> ../<cache-id>/diff
 * <root>/image/overlay2/imagedb/content/sha256/<image id hex>     config JSON, bytes as received
 * <root>/image/overlay2/imagedb/metadata/sha256/<image id hex>/   parent, lastUpdated, media-type (the
 *                                               manifest media type it was pulled or loaded with)
 * <root>/image/overlay2/layerdb/sha256/<chain id hex>/            one read-only layer:
 *     diff                 its DiffID (sha256:...)
 *     size                 bytes of file content in it (decimal)
 *     cache-id             the overlay2/<cache-id> holding its files
 *     parent               ChainID of the layer below (absent for a base layer)
 *     tar-split.json.gz    tar headers and padding, to rebuild the original tar bit for bit
 *     compressed-digest    sha256 of the compressed blob it was loaded or pulled from, or that a push
 *                          compressed it to (kept in content/blobs when strata has the bytes)
 * <root>/image/overlay2/layerdb/mounts/<container id>/            a container's writable layers:
 *     mount-id, init-id, parent (ChainID of the image's top layer)
 * <root>/image/overlay2/layerdb/tmp/                              layerdb entries being built
 * <root>/image/overlay2/repositories.json       {"Repositories": {repo: {"repo:tag" | "repo@digest": id}}}
 * <root>/image/overlay2/distribution/diffid-by-digest/sha256/<blob digest hex>      DiffID of a blob
 * <root>/image/overlay2/distribution/v2metadata-by-diffid/sha256/<diff id hex>     JSON list of
 *                                               {"Digest","SourceRepository","HMAC"}: where a layer's
 *                                               blobs are known to be (Docker's format; ts/internal/distribution.ts)
 * <root>/content/blobs/sha256/<hex>             compressed layer blobs as pulled, by digest, kept to
 *                                                 push them again unchanged; removed with the last layer
 *                                                 whose compressed-digest names them (ts/internal/content.ts)
 * <root>/content/ingest/<hex>                   partial blob downloads, resumed by the next pull;
 *                                                 flock-ed while a pull writes one; cleanup
 *                                                 removes those untouched for a day
 * <root>/daemon.json                            registry settings: Docker's `registry-mirrors`,
 *                                                 `insecure-registries` (read by the registry client)
 * <root>/certs.d/<host:port>/                   CA roots (*.crt) and client pairs (*.cert + *.key) of a
 *                                                 registry, searched before /etc/docker/certs.d
 * <root>/containers/<id>/config.v2.json          container records
 * <root>/leases/<pid>-<hex>                     {"images": [...], "layers": [ChainIDs]}: layers a reader
 *                                                 still uses (an open image view, a save under way);
 *                                                 flocked by its owner while alive (ts/internal/leases.ts)
 * <root>/builder/cache/<key hex>.json          build cache records, one per filesystem step (format in
 *                                                 ts/build/cache.ts): step key -> resulting layer ChainID;
 *                                                 the layers they name stay alive after `rmi`
 * <root>/builder/statindex/<sha256 of path>.json  a build context's stat index (format in
 *                                                 ts/build/statindex.ts): lstat -> sha256 of contents
 * <root>/builder/fromkeys/<hex>.json            what the sources of a `COPY --from` hash to in a stage's
 *                                                 filesystem, by (its top ChainID, the sources): a
 *                                                 memo of immutable content (format in ts/build/fromkey.ts)
 * <root>/builder/copies/<hex>.json             the last layer each COPY instruction made and the files
 *                                                 it copied, so its next miss links the unchanged ones
 *                                                 (a hint; format in ts/build/reuse.ts)
 * <root>/builder/dockerfiles/<hex>.json        Dockerfiles the CLI parsed, by (its bundle, the text): a
 *                                                 memo (format in ts/build/parse-memo.ts)
 * <root>/builder/stub/                          the read-only bottom layer of build steps: empty
 *                                                 mount points (proc, sys, dev, etc/hosts, ...) so
 *                                                 the runtime never creates them in a step's layer
 * <root>/builder/.stub-<pid>-<hex>/             the stub while its maker (process <pid>) builds it,
 *                                                 then renamed to stub/; the cleanup pass removes
 *                                                 those of dead processes
 * <root>/tmp/<staging>/  +  <root>/tmp/<staging>.lock
 *                                               work in progress; the lock is held by the process
 *                                               that owns it, so cleanup removes only dead ones
 * <root>/writers/<boot id>-<pid>-<start time>   one empty file per process that may be changing
 *                                               the store (./writers.ts); made last of all dirs
 * ```
 *
 * Visibility rules (what makes the store crash-safe):
 * - a layer exists iff `layerdb/sha256/<chain>` exists; its overlay2 dir is renamed into place,
 *   complete and with `committed` inside, before that entry is renamed into place;
 * - an image exists iff its config is in `imagedb/content`, written after all its layers;
 * - tags are written last, by atomically replacing `repositories.json`;
 * - deletion runs the other way round: tags, image config, layerdb entry, then the files; a layer
 *   that a live lease pins stays until the lease goes (ts/internal/gc.ts says what is in use).
 * A cleanup pass on open removes overlay2 dirs nobody references, broken layerdb entries,
 * and staging dirs whose owner died; it runs when a writer died or staging is left over
 * (./writers.ts, ../store.ts), not on every open.
 */
import path = require('node:path')

export const OVERLAY_DIR = 'overlay2'
export const LINK_DIR = 'l'
export const DIFF_DIR = 'diff'
export const WORK_DIR = 'work'
export const MERGED_DIR = 'merged'
export const LINK_FILE = 'link'
export const LOWER_FILE = 'lower'
export const COMMITTED_FILE = 'committed'
export const IMAGE_DIR = path.join('image', 'overlay2')
export const SHORT_LINK_LENGTH = 26
/** `builder/.stub-<pid>-<hex>`: the build stub in the making (the pid of its maker). */
export const STUB_TEMP_NAME = /^\.stub-(\d+)-[0-9a-f]+$/

/** The files of a `layerdb/sha256/<chain id>/` entry (Docker's names; see above). */
export const LAYER_FILE = {
  diffId: 'diff',
  size: 'size',
  cacheId: 'cache-id',
  parent: 'parent',
  tarSplit: 'tar-split.json.gz',
  compressedDigest: 'compressed-digest',
} as const

/** The files of a container's `layerdb/mounts/<container id>/` record. */
export const MOUNT_FILE = { mountId: 'mount-id', initId: 'init-id', parent: 'parent' } as const

/** The files of an image's `imagedb/metadata/sha256/<image id hex>/`. */
export const IMAGE_META_FILE = { parent: 'parent', lastUpdated: 'lastUpdated' } as const

/** Every path of a store, derived from its root. */
export class Layout {
  constructor(readonly root: string) {}

  get lockFile(): string { return path.join(this.root, 'lock') }
  get lockWaitFile(): string { return path.join(this.root, 'lock.wait') }
  get lockGenFile(): string { return path.join(this.root, 'lock.gen') }
  get overlay(): string { return path.join(this.root, OVERLAY_DIR) }
  get links(): string { return path.join(this.overlay, LINK_DIR) }
  get tmp(): string { return path.join(this.root, 'tmp') }
  get imageRoot(): string { return path.join(this.root, IMAGE_DIR) }
  get imagedbContent(): string { return path.join(this.imageRoot, 'imagedb', 'content', 'sha256') }
  get imagedbMetadata(): string { return path.join(this.imageRoot, 'imagedb', 'metadata', 'sha256') }
  get layerdb(): string { return path.join(this.imageRoot, 'layerdb', 'sha256') }
  get layerdbMounts(): string { return path.join(this.imageRoot, 'layerdb', 'mounts') }
  get layerdbTmp(): string { return path.join(this.imageRoot, 'layerdb', 'tmp') }
  get repositories(): string { return path.join(this.imageRoot, 'repositories.json') }
  get containers(): string { return path.join(this.root, 'containers') }
  get distribution(): string { return path.join(this.imageRoot, 'distribution') }
  get diffIdByDigest(): string { return path.join(this.distribution, 'diffid-by-digest', 'sha256') }
  get v2MetadataByDiffId(): string { return path.join(this.distribution, 'v2metadata-by-diffid', 'sha256') }
  get content(): string { return path.join(this.root, 'content') }
  get blobs(): string { return path.join(this.content, 'blobs', 'sha256') }
  get ingest(): string { return path.join(this.content, 'ingest') }
  get daemonConfig(): string { return path.join(this.root, 'daemon.json') }
  /** Certificate dirs searched for `<host:port>/`, in order. */
  get certsDirs(): string[] { return [path.join(this.root, 'certs.d'), '/etc/docker/certs.d'] }
  get leases(): string { return path.join(this.root, 'leases') }
  get builder(): string { return path.join(this.root, 'builder') }
  get buildCache(): string { return path.join(this.root, 'builder', 'cache') }
  get statIndex(): string { return path.join(this.root, 'builder', 'statindex') }
  get buildStub(): string { return path.join(this.root, 'builder', 'stub') }
  /** Where this process builds the stub before renaming it to `buildStub` (see STUB_TEMP_NAME). */
  buildStubTemp(hex: string): string { return path.join(this.root, 'builder', `.stub-${process.pid}-${hex}`) }
  get fromKeys(): string { return path.join(this.root, 'builder', 'fromkeys') }
  get lastCopies(): string { return path.join(this.root, 'builder', 'copies') }
  get parsedDockerfiles(): string { return path.join(this.root, 'builder', 'dockerfiles') }
  get writers(): string { return path.join(this.root, 'writers') }

  /** All directories a store needs, parents first; `writers` last, so it existing means all do. */
  get dirs(): string[] {
    return [this.root, this.overlay, this.links, this.tmp, this.imagedbContent, this.imagedbMetadata,
      this.layerdb, this.layerdbMounts, this.layerdbTmp, this.containers, this.diffIdByDigest, this.v2MetadataByDiffId,
      this.blobs, this.ingest, this.leases, this.builder, this.buildCache, this.writers]
  }

  layerDir(cacheId: string): string { return path.join(this.overlay, cacheId) }
  diffDir(cacheId: string): string { return path.join(this.overlay, cacheId, DIFF_DIR) }
  workDir(cacheId: string): string { return path.join(this.overlay, cacheId, WORK_DIR) }
  mergedDir(cacheId: string): string { return path.join(this.overlay, cacheId, MERGED_DIR) }
  shortLink(short: string): string { return path.join(this.links, short) }
  imageConfig(id: string): string { return path.join(this.imagedbContent, hex(id)) }
  imageMeta(id: string): string { return path.join(this.imagedbMetadata, hex(id)) }
  layerMeta(chainId: string): string { return path.join(this.layerdb, hex(chainId)) }
  mountMeta(containerId: string): string { return path.join(this.layerdbMounts, containerId) }
  containerDir(id: string): string { return path.join(this.containers, id) }
  blob(digest: string): string { return path.join(this.blobs, hex(digest)) }
  partialBlob(digest: string): string { return path.join(this.ingest, hex(digest)) }
}

/** `sha256:abc` → `abc`. */
export function hex(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(7) : digest
}
