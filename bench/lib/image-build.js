'use strict'
// Helpers for scripts/bench-image.sh (not a benchmark suite: lives in bench/lib/).
//
//   node bench/lib/image-build.js gen <layer> <staging-dir>
//       fills <staging-dir> with the deterministic content of layer <layer>
//       (deps | app | cleanup | config | assets); cleanup/config also read the
//       base rootfs path from $BASE_ROOTFS to pick real paths to delete.
//   node bench/lib/image-build.js write <cache-dir>
//       reads <cache-dir>/layers/*.meta.json, writes the image config, the OCI
//       image layout <cache-dir>/oci and the docker-archive staging dir
//       <cache-dir>/docker-archive.d, and <cache-dir>/image.json (what the
//       benchmarks read).
//
// Content is generated from a fixed-seed PRNG so every build yields the same
// bytes, the same digests and the same image ID.

const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')

const IMAGE_TAG = 'bench/debian:latest'
const CREATED = '2024-01-01T00:00:00Z'

// The tests' seedable PRNG (mulberry32): plenty for content.
require('tsx/cjs')
const { rng: prng } = require('../../__test__/helpers/rng')

// Incompressible bytes, deterministic: AES-CTR keystream of a fixed key.
function randomBytes(size, seed) {
  const key = crypto.createHash('sha256').update(`strata-bench-${seed}`).digest()
  const c = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  return c.update(Buffer.alloc(size))
}

const WORDS = ('lorem ipsum dolor sit amet layer overlay image digest chain diff ' +
  'export import function return const await async module require buffer stream ' +
  'config manifest blob index tag registry container commit whiteout opaque').split(' ')

// Compressible, source-code-like text (gzip ~4-6x).
function textBytes(size, rnd) {
  const parts = []
  let n = 0
  let line = 0
  while (n < size) {
    const indent = '  '.repeat(Math.floor(rnd() * 4))
    const k = 3 + Math.floor(rnd() * 9)
    const ws = []
    for (let i = 0; i < k; i++) ws.push(WORDS[Math.floor(rnd() * WORDS.length)])
    const s = `${indent}${ws.join(' ')} ${line++} ${Math.floor(rnd() * 1e6).toString(16)};\n`
    parts.push(s)
    n += s.length
  }
  return Buffer.from(parts.join('')).subarray(0, size)
}

function write(file, data, mode = 0o644) {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, data, { mode })
  fs.chmodSync(file, mode)
}

const MB = 1024 * 1024

const layers = {
  // ~110 MB in 24 medium files (1.5-8 MB): shared libraries (random) and data (text).
  deps(dir) {
    const rnd = prng(1)
    for (let i = 0; i < 24; i++) {
      const size = Math.floor((1.5 + rnd() * 6.5) * MB)
      if (i % 2 === 0) write(`${dir}/opt/app/lib/libbench${i}.so.1`, randomBytes(size, `lib${i}`), 0o755)
      else write(`${dir}/opt/app/data/table${i}.csv`, textBytes(size, rnd))
    }
    fs.symlinkSync('libbench0.so.1', `${dir}/opt/app/lib/libbench.so`)
  },
  // ~2000 small files (200 B - 16 KB) in a source tree, symlinks, hardlinks, empty dirs,
  // and /opt/app/config (50 files) that the `config` layer replaces as an opaque dir.
  app(dir) {
    const rnd = prng(2)
    let count = 0
    for (let p = 0; p < 20; p++) {
      for (let m = 0; m < 10; m++) {
        for (let f = 0; f < 10; f++) {
          const size = 200 + Math.floor(rnd() * rnd() * 16 * 1024)
          write(`${dir}/opt/app/src/pkg${String(p).padStart(2, '0')}/mod${m}/file${f}.js`, textBytes(size, rnd))
          count++
        }
      }
    }
    for (let i = 0; i < 50; i++) write(`${dir}/opt/app/config/conf${i}.yaml`, textBytes(100 + Math.floor(rnd() * 2000), rnd))
    for (let i = 0; i < 20; i++) {
      fs.mkdirSync(`${dir}/opt/app/bin`, { recursive: true })
      fs.symlinkSync(`../src/pkg${String(i).padStart(2, '0')}/mod0/file0.js`, `${dir}/opt/app/bin/tool${i}`)
    }
    for (let i = 0; i < 10; i++) {
      fs.mkdirSync(`${dir}/opt/app/shared`, { recursive: true })
      fs.linkSync(`${dir}/opt/app/src/pkg00/mod${i}/file1.js`, `${dir}/opt/app/shared/link${i}.js`)
    }
    for (let i = 0; i < 10; i++) fs.mkdirSync(`${dir}/opt/app/var/empty${i}`, { recursive: true })
    fs.mkdirSync(`${dir}/tmp`, { recursive: true })
    fs.chmodSync(`${dir}/tmp`, 0o1777)
    write(`${dir}/etc/app.env`, 'APP_HOME=/opt/app\n')
    return count
  },
  // Whiteouts only: every /usr/share/doc/<pkg> of the base, /usr/share/man, one source
  // package dir of `app`, and a few single files of `deps`.
  cleanup(dir) {
    const base = process.env.BASE_ROOTFS
    if (!base) throw new Error('BASE_ROOTFS not set')
    const docs = fs.readdirSync(`${base}/usr/share/doc`).sort()
    for (const d of docs) write(`${dir}/usr/share/doc/.wh.${d}`, '')
    write(`${dir}/usr/share/.wh.man`, '')
    write(`${dir}/opt/app/src/.wh.pkg19`, '')
    for (const i of [1, 3, 5]) write(`${dir}/opt/app/data/.wh.table${i}.csv`, '')
    // a file replaced in place, to have a plain modification too
    write(`${dir}/etc/motd`, 'strata benchmark image\n')
  },
  // Opaque directory: /opt/app/config is replaced wholesale by 20 new files.
  config(dir) {
    const rnd = prng(4)
    write(`${dir}/opt/app/config/.wh..wh..opq`, '')
    for (let i = 0; i < 20; i++) write(`${dir}/opt/app/config/v2-conf${i}.yaml`, textBytes(200 + Math.floor(rnd() * 3000), rnd))
  },
  // ~115 MB: two large blobs (random and text) plus 200 small icons.
  assets(dir) {
    const rnd = prng(5)
    write(`${dir}/opt/app/assets/model.bin`, randomBytes(48 * MB, 'model'))
    write(`${dir}/opt/app/assets/corpus.txt`, textBytes(64 * MB, rnd))
    for (let i = 0; i < 200; i++) write(`${dir}/opt/app/assets/icons/icon${i}.png`, randomBytes(1000 + Math.floor(rnd() * 12000), `icon${i}`))
  },
}

function sha256hex(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex')
}

function writeImage(cache) {
  const order = JSON.parse(fs.readFileSync(`${cache}/layers/order.json`, 'utf8'))
  const metas = order.map((name) => JSON.parse(fs.readFileSync(`${cache}/layers/${name}.meta.json`, 'utf8')))
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'APP_HOME=/opt/app'],
      Cmd: ['/bin/bash'],
      WorkingDir: '/opt/app',
      Labels: { 'org.opencontainers.image.title': 'strata benchmark image' },
    },
    created: CREATED,
    history: [
      ...metas.map((m) => ({ created: CREATED, created_by: m.createdBy })),
      { created: CREATED, created_by: 'CMD ["/bin/bash"]', empty_layer: true },
    ],
    rootfs: { type: 'layers', diff_ids: metas.map((m) => m.diffId) },
  }
  const configBytes = Buffer.from(JSON.stringify(config))
  const configHex = sha256hex(configBytes)
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configHex}`, size: configBytes.length },
    layers: metas.map((m) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: m.digest, size: m.size })),
  }
  const manifestBytes = Buffer.from(JSON.stringify(manifest))
  const manifestHex = sha256hex(manifestBytes)
  const ociLayout = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }))

  const putBlobs = (root) => {
    fs.rmSync(root, { recursive: true, force: true })
    fs.mkdirSync(`${root}/blobs/sha256`, { recursive: true })
    for (const m of metas) fs.linkSync(m.gzPath, `${root}/blobs/sha256/${m.digest.slice(7)}`)
    fs.writeFileSync(`${root}/blobs/sha256/${configHex}`, configBytes)
    fs.writeFileSync(`${root}/blobs/sha256/${manifestHex}`, manifestBytes)
    fs.writeFileSync(`${root}/oci-layout`, ociLayout)
  }
  const manifestDesc = (annotations) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${manifestHex}`,
    size: manifestBytes.length,
    annotations,
  })

  // OCI image layout (for umoci / skopeo oci:): ref name "latest".
  const oci = `${cache}/oci`
  putBlobs(oci)
  fs.writeFileSync(`${oci}/index.json`, JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [manifestDesc({ 'org.opencontainers.image.ref.name': 'latest' })],
  }))

  // docker-archive as Docker >= 25 writes it: an OCI layout plus manifest.json.
  const da = `${cache}/docker-archive.d`
  putBlobs(da)
  fs.writeFileSync(`${da}/index.json`, JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [manifestDesc({
      'io.containerd.image.name': `docker.io/${IMAGE_TAG}`,
      'org.opencontainers.image.ref.name': IMAGE_TAG.split(':')[1],
    })],
  }))
  fs.writeFileSync(`${da}/manifest.json`, JSON.stringify([{
    Config: `blobs/sha256/${configHex}`,
    RepoTags: [IMAGE_TAG],
    Layers: metas.map((m) => `blobs/sha256/${m.digest.slice(7)}`),
  }]))

  // ChainIDs, for whoever wants to check a store's layerdb.
  const chainIds = []
  for (const m of metas) {
    const prev = chainIds[chainIds.length - 1]
    chainIds.push(prev ? `sha256:${sha256hex(`${prev} ${m.diffId}`)}` : m.diffId)
  }
  const summary = {
    tag: IMAGE_TAG,
    imageId: `sha256:${configHex}`,
    manifestDigest: `sha256:${manifestHex}`,
    dockerArchive: `${cache}/image.docker.tar`,
    ociLayout: oci,
    ociRef: 'latest',
    layers: metas.map((m, i) => ({
      name: m.name,
      digest: m.digest,
      diffId: m.diffId,
      chainId: chainIds[i],
      size: m.size,
      uncompressedSize: m.uncompressedSize,
      entries: m.entries,
      path: `${oci}/blobs/sha256/${m.digest.slice(7)}`,
    })),
    totalCompressed: metas.reduce((a, m) => a + m.size, 0),
    totalUncompressed: metas.reduce((a, m) => a + m.uncompressedSize, 0),
    totalEntries: metas.reduce((a, m) => a + m.entries, 0),
  }
  fs.writeFileSync(`${cache}/image.json`, JSON.stringify(summary, null, 2) + '\n')
  return summary
}

function main() {
  const [cmd, a, b] = process.argv.slice(2)
  if (cmd === 'gen') {
    if (!layers[a]) throw new Error(`unknown layer ${a}`)
    fs.mkdirSync(b, { recursive: true })
    layers[a](b)
  } else if (cmd === 'write') {
    const s = writeImage(path.resolve(a))
    console.log(`${s.tag} ${s.imageId}: ${s.layers.length} layers, ` +
      `${(s.totalUncompressed / MB).toFixed(1)} MiB uncompressed, ${(s.totalCompressed / MB).toFixed(1)} MiB gzip, ${s.totalEntries} tar entries`)
  } else {
    console.error('usage: image-build.js gen <layer> <dir> | write <cache-dir>')
    process.exit(2)
  }
}

if (require.main === module) main()
module.exports = { layers, writeImage, IMAGE_TAG }
