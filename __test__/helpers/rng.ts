/**
 * The seedable PRNG of the tests and the benchmarks (bench/lib requires this file through tsx):
 * mulberry32, small and good enough to pick operations and generate content. The same seed gives
 * the same sequence everywhere, so fixtures and benchmark images are the same bytes on every run.
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
