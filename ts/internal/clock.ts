/**
 * `performance.now()` without the `performance` global, whose first use loads perf_hooks (and
 * the stream modules under it): several ms of a CLI build's start-up, for a clock. Milliseconds,
 * fractional, monotonic, counted from the process's start as `performance.now()` counts them
 * (to within the difference between Node's two start-up marks).
 */
const origin = Number(process.hrtime.bigint()) / 1e6 - process.uptime() * 1000

/** Milliseconds since the process started (monotonic). */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6 - origin
}
