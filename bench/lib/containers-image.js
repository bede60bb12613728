'use strict'
// Images for bench/containers.js, built from scratch (no registry): a busybox image from the
// host's /bin/busybox (busybox-static), as __test__/helpers/image.ts builds it, and deep images
// (the busybox layer under N-1 tiny layers). Written as docker-archives in the Docker >= 25
// layout (blobs/sha256, index.json, oci-layout, manifest.json) with uncompressed layers, which
// both `docker load` and strata's `Store.load` read. Deterministic: fixed mtimes and contents,
// so the same bytes and image IDs on every build; cached under bench/.cache/containers/.

const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')

const MTIME = 1704067200 // 2024-01-01T00:00:00Z
const CREATED = '2024-01-01T00:00:00Z'

// What the benchmark's commands need (sh -c loops with printf/head/dd/rm), plus a few more.
const APPLETS = ['sh', 'true', 'false', 'echo', 'printf', 'cat', 'ls', 'mkdir', 'rm', 'touch', 'head', 'dd', 'seq',
  'sleep', 'id', 'env', 'test', 'cp', 'mv', 'ln', 'find', 'sync', 'tr', 'wc', 'stat', 'base64', 'xargs']

const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`

// The tests' tar writer and busybox rootfs, so both build the same layer from the same recipe.
require('tsx/cjs')
const { tar: tarOf } = require('../../__test__/helpers/tar')
const { busyboxEntries } = require('../../__test__/helpers/image')

/** A tar of `entries`, every one with the fixed mtime (the same bytes on every build). */
function tar(entries) {
  return tarOf(entries.map((e) => ({ ...e, mtime: MTIME })))
}

/** Bytes from a fixed-key AES-CTR keystream: incompressible, the same on every build. */
function detBytes(size, seed) {
  const key = crypto.createHash('sha256').update(`strata-bench-containers-${seed}`).digest()
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/**
 * The busybox rootfs layer. /srv/old holds 64 files of 4 KiB in 8 subdirs: the directory the
 * commit benchmark deletes (so the committed layer carries a whiteout).
 */
function busyboxLayer() {
  const entries = [...busyboxEntries(APPLETS), { name: 'srv/', type: 'dir' }, { name: 'srv/old/', type: 'dir' }]
  for (let d = 0; d < 8; d++) {
    entries.push({ name: `srv/old/d${d}/`, type: 'dir' })
    for (let f = 0; f < 8; f++) entries.push({ name: `srv/old/d${d}/f${f}`, data: detBytes(4096, `old-${d}-${f}`) })
  }
  return tar(entries)
}

/** Tiny layer i of a deep image: one 16-byte file (and its dir). */
function tinyLayer(i) {
  return tar([
    { name: 'deep/', type: 'dir' },
    { name: `deep/l${String(i).padStart(4, '0')}`, data: `layer ${String(i).padStart(8, '0')}\n` },
  ])
}

function buildImage(layers, tag) {
  const diffIds = layers.map(sha256)
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: CREATED,
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created: CREATED, created_by: `/bin/sh -c #(nop) ADD layer${i} in /` })),
  }))
  return { tag, layers, config, id: sha256(config), diffIds }
}

/** Docker >= 25 docker-archive (also an OCI layout tar), uncompressed layers. */
function writeArchive(file, img) {
  const files = []
  const seen = new Set()
  const add = (name, data) => { if (!seen.has(name)) { seen.add(name); files.push({ name, data }) } }
  add('blobs/', null)
  add('blobs/sha256/', null)
  add(`blobs/sha256/${img.id.slice(7)}`, img.config)
  const layers = img.layers.map((l, i) => {
    add(`blobs/sha256/${img.diffIds[i].slice(7)}`, l)
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: img.diffIds[i], size: l.length }
  })
  const m = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img.id, size: img.config.length }, layers,
  }))
  add(`blobs/sha256/${sha256(m).slice(7)}`, m)
  const full = img.tag.includes('/') ? img.tag : `docker.io/library/${img.tag}`
  add('index.json', Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(m), size: m.length,
      annotations: { 'io.containerd.image.name': full, 'org.opencontainers.image.ref.name': img.tag.split(':').pop() } }],
  })))
  add('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'))
  add('manifest.json', Buffer.from(JSON.stringify([{ Config: `blobs/sha256/${img.id.slice(7)}`, RepoTags: [img.tag],
    Layers: img.diffIds.map((d) => `blobs/sha256/${d.slice(7)}`) }])))
  const tmp = `${file}.tmp-${process.pid}`
  fs.writeFileSync(tmp, tar(files.map((f) => (f.data === null ? { name: f.name, type: 'dir' } : { name: f.name, data: f.data }))))
  fs.renameSync(tmp, file)
}

/**
 * The images the suite uses, written (once) under `dir`:
 * { busybox, deep: { [layers]: img } }, each img { tag, id, layerCount, archive }.
 */
function ensureImages(dir, deepCounts) {
  fs.mkdirSync(dir, { recursive: true })
  const bb = busyboxLayer()
  const out = { deep: {} }
  const make = (tag, layers, name) => {
    const img = buildImage(layers, tag)
    const archive = path.join(dir, `${name}.docker.tar`)
    const stamp = `${archive}.id`
    if (!fs.existsSync(archive) || !fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== img.id) {
      writeArchive(archive, img)
      fs.writeFileSync(stamp, img.id)
    }
    return { tag, id: img.id, layerCount: layers.length, archive, bytes: layers.reduce((a, l) => a + l.length, 0) }
  }
  out.busybox = make('strata-bench/busybox:latest', [bb], 'busybox')
  for (const n of deepCounts) {
    const layers = [bb]
    for (let i = 1; i < n; i++) layers.push(tinyLayer(i))
    out.deep[n] = make(`strata-bench/deep${n}:latest`, layers, `deep${n}`)
  }
  return out
}

module.exports = { ensureImages, APPLETS, tar, detBytes, busyboxLayer, buildImage, writeArchive }
