/**
 * Test images built from scratch: a busybox rootfs layer from the host's `/bin/busybox`
 * (busybox-static), crafted layers, and the archive forms `load` reads (legacy docker-archive,
 * Docker ≥25 docker-archive, OCI layout dir and tar).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { tar, TarEntry } from './tar'

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

const APPLETS = ['sh', 'ls', 'cat', 'echo', 'mkdir', 'rm', 'touch', 'true', 'false', 'sleep', 'id', 'stat', 'env', 'pwd', 'hostname', 'cp', 'mv', 'ln', 'chmod', 'readlink', 'wc', 'find', 'sync']

/**
 * A busybox rootfs: the host's `/bin/busybox` with a hard link per applet, the mount points and
 * a minimal /etc (also the base of bench/lib/containers-image.js, with its own applets).
 */
export function busyboxEntries(applets: string[] = APPLETS): TarEntry[] {
  const bin = fs.readFileSync('/bin/busybox')
  return [
    { name: 'bin/', type: 'dir' },
    { name: 'bin/busybox', data: bin, mode: 0o755 },
    // A hardlink header carries the inode's mode too (Docker applies it): keep it executable.
    ...applets.map((a): TarEntry => ({ name: `bin/${a}`, type: 'hardlink', linkname: 'bin/busybox', mode: 0o755 })),
    { name: 'dev/', type: 'dir' }, { name: 'proc/', type: 'dir' }, { name: 'sys/', type: 'dir' },
    { name: 'etc/', type: 'dir' },
    { name: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
    { name: 'etc/group', data: 'root:x:0:\nnogroup:x:65534:\n' },
    { name: 'root/', type: 'dir', mode: 0o700 },
    { name: 'tmp/', type: 'dir', mode: 0o1777 },
  ]
}

export function busyboxLayer(): Buffer {
  return tar(busyboxEntries())
}

export type Compression = 'none' | 'gzip' | 'zstd'

export function compress(data: Buffer, how: Compression): Buffer {
  if (how === 'gzip') return zlib.gzipSync(data)
  if (how === 'zstd') return execFileSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 1 << 30 })
  return data
}

export interface ImageSpec {
  /** Uncompressed layer tars, bottom first. */
  layers: Buffer[]
  /** How each layer blob is stored (default none). */
  compression?: Compression[]
  tags?: string[]
  config?: Record<string, unknown>
  /** created_by of each layer's history entry. */
  createdBy?: string[]
  created?: string
}

export interface BuiltImage {
  spec: ImageSpec
  config: Buffer
  id: string
  diffIds: string[]
  blobs: Buffer[]
}

export function buildImage(spec: ImageSpec): BuiltImage {
  const diffIds = spec.layers.map((l) => sha256(l))
  const created = spec.created ?? '2024-01-02T03:04:05.123456789Z'
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created,
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], ...(spec.config ?? {}) },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: spec.layers.map((_, i) => ({ created, created_by: spec.createdBy?.[i] ?? `/bin/sh -c #(nop) ADD layer${i} in /` })),
  }))
  const blobs = spec.layers.map((l, i) => compress(l, spec.compression?.[i] ?? 'none'))
  return { spec, config, id: sha256(config), diffIds, blobs }
}

export type ArchiveForm = 'legacy' | 'docker25' | 'oci-tar' | 'oci-dir'

/** Writes images in one of the archive forms `docker load` / OCI tools produce. */
export function writeArchive(out: string, images: BuiltImage[], form: ArchiveForm): void {
  const files = new Map<string, Buffer>()
  const manifest: unknown[] = []
  const index: unknown[] = []
  for (const img of images) {
    if (form === 'legacy') {
      const layerNames = img.blobs.map((b, i) => {
        const dir = sha256(Buffer.concat([Buffer.from(String(i)), Buffer.from(img.diffIds[i])])).slice(7)
        files.set(`${dir}/layer.tar`, b)
        files.set(`${dir}/VERSION`, Buffer.from('1.0'))
        return `${dir}/layer.tar`
      })
      files.set(`${img.id.slice(7)}.json`, img.config)
      manifest.push({ Config: `${img.id.slice(7)}.json`, RepoTags: img.spec.tags ?? null, Layers: layerNames })
      continue
    }
    files.set(`blobs/sha256/${img.id.slice(7)}`, img.config)
    const layers = img.blobs.map((b, i) => {
      const d = sha256(b)
      files.set(`blobs/sha256/${d.slice(7)}`, b)
      const c = img.spec.compression?.[i] ?? 'none'
      return { mediaType: `application/vnd.oci.image.layer.v1.tar${c === 'gzip' ? '+gzip' : c === 'zstd' ? '+zstd' : ''}`, digest: d, size: b.length }
    })
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img.id, size: img.config.length }, layers }))
    files.set(`blobs/sha256/${sha256(m).slice(7)}`, m)
    const tags = img.spec.tags ?? []
    if (tags.length === 0) index.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(m), size: m.length })
    for (const t of tags) {
      const full = t.includes('/') ? t : `docker.io/library/${t}`
      index.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(m), size: m.length, annotations: { 'io.containerd.image.name': full, 'org.opencontainers.image.ref.name': t.split(':').pop() } })
    }
    manifest.push({ Config: `blobs/sha256/${img.id.slice(7)}`, RepoTags: tags.length ? tags : null, Layers: layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`) })
  }
  if (form !== 'legacy') {
    files.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index })))
    files.set('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'))
  }
  if (form === 'legacy' || form === 'docker25') files.set('manifest.json', Buffer.from(JSON.stringify(manifest)))
  if (form === 'oci-dir') {
    for (const [name, data] of files) {
      fs.mkdirSync(path.dirname(path.join(out, name)), { recursive: true })
      fs.writeFileSync(path.join(out, name), data)
    }
    return
  }
  fs.writeFileSync(out, tar([...files].map(([name, data]) => ({ name, data }))))
}
