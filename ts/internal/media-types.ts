/**
 * Media types of what strata reads and writes: Docker's image manifest v2 schema 2 (and the
 * schema 1 it only recognises to refuse), the OCI image spec, and the build cache's config.
 * The one place their strings are written; archives, registries and the build cache name
 * them from here.
 */

export const MT = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerTar: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  schema1: 'application/vnd.docker.distribution.manifest.v1+json',
  schema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociNondistributableTar: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  /** The config of a build cache manifest (../build/cache-io.ts). */
  buildCache: 'application/vnd.strata.build.cache.v1+json',
} as const

/** What every OCI media type starts with (an image pulled or loaded in OCI form). */
export const OCI_PREFIX = 'application/vnd.oci.'

/** Manifest lists and indexes: documents that point at manifests, not layers. */
export const INDEX_TYPES: readonly string[] = [MT.ociIndex, MT.dockerList]

/** Layer media types a pulled manifest may name (Docker's and OCI's, foreign and nondistributable included). */
export const LAYER_TYPES: readonly string[] = [
  MT.dockerLayerGzip,
  MT.dockerForeignLayerGzip,
  MT.ociLayerTar,
  MT.ociLayerGzip,
  MT.ociLayerZstd,
  MT.ociNondistributableTar,
  MT.ociNondistributableGzip,
  MT.ociNondistributableZstd,
]
