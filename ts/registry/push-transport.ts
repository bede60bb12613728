/**
 * Push's registry operations over the transport (ts/registry/client.ts): HEADs, mounts and the
 * manifest as single requests, blobs through the native `pushBlobs` (uploads in Rust: a kept
 * blob streamed from disk, or a layer compressed while it uploads, see
 * crates/strata-registry/src/push.rs). Every request of a push asks for the same scope
 * (`repository:NAME:pull,push`, plus `repository:FROM:pull` for a mount), so a push fetches one
 * token per scope set.
 */
import { call, StrataError } from '../errors'
import { RegistryClient, cancelWhile, pushScope, pullScope } from './client'
import { BlobToSend, PushTransport, SentBlob } from './push'

function withQuery(target: string, params: Record<string, string>): string {
  const q = new URLSearchParams(params).toString()
  return `${target}${target.includes('?') ? '&' : '?'}${q}`
}

export function pushTransport(client: RegistryClient, repo: string, signal?: AbortSignal): PushTransport {
  const scope = pushScope(repo)
  const head = async (digest: string): Promise<number | null> => {
    const r = await client.request({ method: 'HEAD', target: `/v2/${repo}/blobs/${digest}`, scopes: [scope], accept: [200, 404], signal })
    if (r.status === 404) return null
    const len = Number(r.header('content-length'))
    if (!Number.isSafeInteger(len) || len < 0) throw new StrataError('RegistryError', `HEAD of blob ${digest} in ${repo} answered without a size`)
    return len
  }
  return {
    exists: (digests) => Promise.all(digests.map(head)),

    async mount(digest, from) {
      const r = await client.request({
        method: 'POST',
        target: withQuery(`/v2/${repo}/blobs/uploads/`, { mount: digest, from }),
        scopes: [scope, pullScope(from)],
        // A registry that cannot mount opens an upload session (202) or refuses (4xx): upload then.
        accept: [201, 202, 400, 401, 403, 404],
        signal,
      })
      if (r.status === 201) return head(digest)
      const loc = r.header('location')
      if (r.status === 202 && loc) {
        // Close the session the registry opened instead (best effort; it expires anyway).
        await client.request({ method: 'DELETE', target: loc, scopes: [scope], accept: Array.from({ length: 500 }, (_, i) => i + 100), signal }).catch(() => undefined)
      }
      return null
    },

    async upload(blobs: BlobToSend[], onProgress) {
      const { cancel, done } = cancelWhile(signal)
      try {
        const out = await call(() => client.native.pushBlobs(repo, blobs.map((b) => {
          switch (b.kind) {
            case 'file': return { file: b.path, digest: b.digest, size: b.size }
            case 'bytes': return { bytes: b.data, digest: b.digest }
            case 'layer': return { diffDir: b.diffDir, tarSplit: b.tarSplit, diffId: b.diffId, keep: b.keep, ...(b.uncompressed ? { uncompressed: true } : {}) }
          }
        }), (i: number, n: number, fin: boolean) => onProgress(i, n, fin), cancel))
        return out.map((u: { digest: string; size: number }): SentBlob => ({ digest: u.digest, size: u.size }))
      } finally {
        done()
      }
    },

    async putManifest(reference, mediaType, body) {
      const r = await client.request({ method: 'PUT', target: `/v2/${repo}/manifests/${reference}`, scopes: [scope], headers: { 'Content-Type': mediaType }, body, accept: [200, 201, 202], signal })
      const ours = r.sentDigest
      const theirs = r.header('docker-content-digest')
      if (theirs && ours && theirs !== ours) throw new StrataError('DigestMismatch', `the registry recorded manifest ${ours} as ${theirs}`)
      if (!ours) throw new StrataError('RegistryError', 'the manifest was not sent')
      return ours
    },
  }
}
