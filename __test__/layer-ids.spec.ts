// Layer identities: the ChainID rule, and brands that keep DiffIDs, ChainIDs and blob digests
// apart (the `@ts-expect-error` lines are checked by `tsc -p tsconfig.test.json` in `npm test`).
import test from 'ava'
import { createHash } from 'node:crypto'
import { asBlobDigest, asDiffId, chainIdOf, chainIdsOf, type ChainId, type DiffId } from '../ts/chain'

const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`

test('ChainIDs follow the image spec: the bottom one is its DiffID, the next hashes "parent diffid"', (t) => {
  const [a, b, c] = ['a', 'b', 'c'].map((s) => asDiffId(sha(s)))
  const chain = chainIdsOf([a, b, c])
  t.deepEqual(chain, [a, sha(`${a} ${b}`), sha(`${sha(`${a} ${b}`)} ${c}`)])
  t.is(chainIdOf(chain[1], c), chain[2])
  t.is(chainIdOf(undefined, a), chain[0])
})

test('the three identities are plain strings at run time but not interchangeable in types', (t) => {
  const diffId: DiffId = asDiffId(sha('layer'))
  const blob = asBlobDigest(sha('blob'))
  // @ts-expect-error a DiffID is no ChainID, even where the values are equal (the bottom layer)
  const asChain: ChainId = diffId
  // @ts-expect-error a compressed blob's digest is no DiffID
  chainIdsOf([blob])
  // @ts-expect-error a plain string must be named first
  chainIdOf(undefined, sha('x'))
  const s: string = diffId // every identity is still a string to the caller
  t.is(typeof asChain, 'string')
  t.is(s, diffId)
})
