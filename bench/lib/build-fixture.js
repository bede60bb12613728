'use strict'
// The build benchmark's context: a two-stage Dockerfile of 10 instructions after its FROMs
// (RUN, COPY, ENV, WORKDIR, one COPY --from) and ~2,000 source files of ~50 MB in two trees
// (deps/ and src/, 20 dirs x 50 files each, 1-49 KiB). Deterministic (AES-CTR keystream), so
// every copy of the fixture has the same bytes.

const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')

const FIXTURE_DOCKERFILE = `FROM BASE AS gen
RUN mkdir /gen && for i in $(seq 1 50); do echo "generated $i" > /gen/g$i; done
FROM BASE
ENV APP=/app
WORKDIR /app
COPY deps/ /app/deps/
RUN cat /app/deps/d00/f000.txt > /dev/null && echo ok > /app/deps.ok
COPY src/ /app/src/
COPY --from=gen /gen /app/gen
RUN ls -R /app | wc -l > /app/count
ENV MODE=prod
CMD ["sh"]
`

function bytes(size, seed) {
  const key = crypto.createHash('sha256').update(`strata-bench-build-${seed}`).digest()
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/** Writes the fixture context into `dir` (FROM the image `base`). */
function writeFixture(dir, base) {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'Dockerfile'), FIXTURE_DOCKERFILE.replaceAll('BASE', base))
  fs.writeFileSync(path.join(dir, '.dockerignore'), '*.tmp\n')
  let total = 0
  for (const [tree, prefix] of [['deps', 'd'], ['src', 'm']]) {
    for (let d = 0; d < 20; d++) {
      const sub = path.join(dir, tree, `${prefix}${String(d).padStart(2, '0')}`)
      fs.mkdirSync(sub, { recursive: true })
      for (let f = 0; f < 50; f++) {
        const seed = `${tree}-${d}-${f}`
        const size = 1024 + (crypto.createHash('sha256').update(seed).digest().readUInt32BE(0) % (48 * 1024))
        fs.writeFileSync(path.join(sub, `f${String(f).padStart(3, '0')}.txt`), bytes(size, seed))
        total += size
      }
    }
  }
  return total
}

module.exports = { writeFixture, FIXTURE_DOCKERFILE }
