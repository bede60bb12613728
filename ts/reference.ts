/**
 * Image references, exactly as `github.com/distribution/reference` parses them, plus the
 * Docker normalisation the `docker` CLI applies (`ParseNormalizedNamed`, `TagNameOnly`,
 * `FamiliarString`).
 *
 * Grammar (reference/regexp.go):
 *
 *   reference      := name [ ":" tag ] [ "@" digest ]
 *   name           := [domain "/"] path-component ["/" path-component]*
 *   domain         := host [":" port]
 *   host           := domain-name | "[" ipv6 "]"
 *   domain-name    := component ("." component)*     component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
 *   path-component := [a-z0-9]+ (separator [a-z0-9]+)*
 *   separator      := [._] | "__" | "-"+
 *   tag            := [\w][\w.-]{0,127}
 *   digest         := algorithm ":" [0-9a-fA-F]{32,}  (then validated per algorithm: sha256 = 64 lowercase hex)
 *
 * The whole name (domain included, after normalisation) is at most 255 characters.
 * Normalisation: a first component is a domain only if it contains `.` or `:`, is
 * `localhost`, or is not lowercase; otherwise the domain is `docker.io`, and a single
 * component path on docker.io gets `library/`. `index.docker.io` becomes `docker.io`.
 */
import { StrataError } from './errors'

export const DEFAULT_DOMAIN = 'docker.io'
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io'
export const OFFICIAL_REPO_PREFIX = 'library/'
export const DEFAULT_TAG = 'latest'
export const NAME_TOTAL_LENGTH_MAX = 255

const alphaNumeric = '[a-z0-9]+'
const separator = '(?:[._]|__|[-]+)'
const pathComponent = `${alphaNumeric}(?:${separator}${alphaNumeric})*`
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]'
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`
const host = `(?:${domainName}|${ipv6address})`
const domainAndPort = `${host}(?::[0-9]+)?`
const tagPat = '[\\w][\\w.-]{0,127}'
const digestPat = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}'
const remoteName = `${pathComponent}(?:/${pathComponent})*`
const namePat = `(?:${domainAndPort}/)?${remoteName}`

const referenceRe = new RegExp(`^(${namePat})(?::(${tagPat}))?(?:@(${digestPat}))?$`)
const anchoredNameRe = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`)
const anchoredTagRe = new RegExp(`^${tagPat}$`)
const anchoredDigestRe = new RegExp(`^${digestPat}$`)
const anchoredIdentifierRe = /^[a-f0-9]{64}$/
const idPrefixRe = /^(?:sha256:)?[a-f0-9]{1,64}$/

/** Hex lengths of the digest algorithms the engine accepts (opencontainers/go-digest). */
const DIGEST_HEX_LEN: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 }

/** A parsed, normalised image reference. */
export interface Reference {
  /** Registry host (and port): `docker.io`, `localhost:5000`, `[::1]:5000`. */
  readonly domain: string
  /** Repository path on that registry: `library/busybox`, `user/x`. */
  readonly path: string
  /** `domain/path`: `docker.io/library/busybox`. */
  readonly name: string
  readonly tag?: string
  /** `algorithm:hex`, e.g. `sha256:<64 hex>`. */
  readonly digest?: string
  /** Name as docker prints it: `busybox`, `user/x`, `localhost:5000/x`. */
  readonly familiarName: string
  /** Fully qualified form: `docker.io/library/busybox:latest[@digest]`. */
  string(): string
  /** Form docker prints: `busybox:latest`, `localhost:5000/x:1`, `x@sha256:...`. */
  familiarString(): string
}

function invalid(message: string): never {
  throw new StrataError('InvalidReference', message)
}

class Ref implements Reference {
  readonly name: string
  readonly familiarName: string
  constructor(
    readonly domain: string,
    readonly path: string,
    readonly tag: string | undefined,
    readonly digest: string | undefined,
  ) {
    this.name = domain === '' ? path : `${domain}/${path}`
    this.familiarName = familiarizeName(domain, path)
  }
  private suffix(): string {
    return (this.tag !== undefined ? `:${this.tag}` : '') + (this.digest !== undefined ? `@${this.digest}` : '')
  }
  string(): string {
    return this.name + this.suffix()
  }
  familiarString(): string {
    return this.familiarName + this.suffix()
  }
  toString(): string {
    return this.string()
  }
  toJSON(): string {
    return this.string()
  }
}

function familiarizeName(domain: string, path: string): string {
  if (domain !== DEFAULT_DOMAIN) return domain === '' ? path : `${domain}/${path}`
  if (path.startsWith(OFFICIAL_REPO_PREFIX)) {
    const rest = path.slice(OFFICIAL_REPO_PREFIX.length)
    if (!rest.includes('/')) return rest
  }
  return path
}

/** go-digest `Parse`: algorithm must be known and the hex part of the right length and lowercase. */
export function validateDigest(d: string): string {
  if (!anchoredDigestRe.test(d)) invalid('invalid digest format')
  const i = d.indexOf(':')
  const alg = d.slice(0, i)
  const hex = d.slice(i + 1)
  const want = DIGEST_HEX_LEN[alg]
  if (want === undefined) invalid('unsupported digest algorithm')
  if (hex.length !== want) invalid('invalid checksum digest length')
  if (!/^[a-f0-9]+$/.test(hex)) invalid('invalid checksum digest format')
  return d
}

/**
 * `reference.Parse`: the strict, non-normalising parser (no default domain, no default tag).
 * `docker.io/library/busybox` stays as is; `busybox` has domain `''`.
 */
export function parse(s: string): Reference {
  const m = referenceRe.exec(s)
  if (m === null) {
    if (s === '') invalid('repository name must have at least one component')
    if (referenceRe.test(s.toLowerCase())) invalid('repository name must be lowercase')
    invalid('invalid reference format')
  }
  const name = m[1]!
  if (name.length > NAME_TOTAL_LENGTH_MAX) invalid(`repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`)
  const nm = anchoredNameRe.exec(name)!
  const digest = m[3] !== undefined ? validateDigest(m[3]) : undefined
  return new Ref(nm[1] ?? '', nm[2]!, m[2], digest)
}

/** `splitDockerDomain`: decides which part of a familiar name is the registry. */
function splitDockerDomain(name: string): [string, string] {
  let domain: string
  let remainder: string
  const i = name.indexOf('/')
  const first = i === -1 ? '' : name.slice(0, i)
  if (i === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN
    remainder = name
  } else {
    domain = first
    remainder = name.slice(i + 1)
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder
  return [domain, remainder]
}

/**
 * `reference.ParseNormalizedNamed`: what every docker command does with a user-typed image
 * name. Does not add a default tag (see {@link parseReference}).
 */
export function parseNormalizedNamed(s: string): Reference {
  if (anchoredIdentifierRe.test(s)) {
    invalid(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`)
  }
  const [domain, remainder] = splitDockerDomain(s)
  const tagSep = remainder.indexOf(':')
  const remote = tagSep > -1 ? remainder.slice(0, tagSep) : remainder
  if (remote.toLowerCase() !== remote) {
    invalid(`invalid reference format: repository name (${remote}) must be lowercase`)
  }
  return parse(`${domain}/${remainder}`)
}

/** `TagNameOnly`: adds `:latest` when the reference has neither tag nor digest. */
export function withDefaultTag(ref: Reference): Reference {
  if (ref.tag === undefined && ref.digest === undefined) return new Ref(ref.domain, ref.path, DEFAULT_TAG, undefined)
  return ref
}

/**
 * Parses a user-typed image reference the way `docker pull/tag/run` do: normalised, and
 * `:latest` added when neither tag nor digest is given.
 */
export function parseReference(s: string): Reference {
  return withDefaultTag(parseNormalizedNamed(s))
}

/**
 * `reference.ParseDockerRef`: like {@link parseReference}, but a reference with both a tag
 * and a digest keeps only the digest (`busybox:1@sha256:...` → `busybox@sha256:...`), which
 * is what the engine resolves when pulling.
 */
export function parseDockerRef(s: string): Reference {
  const ref = parseNormalizedNamed(s)
  if (ref.tag !== undefined && ref.digest !== undefined) return new Ref(ref.domain, ref.path, undefined, ref.digest)
  return withDefaultTag(ref)
}

/** Returns `ref` with `tag` (validated), keeping any digest, as `reference.WithTag`. */
export function withTag(ref: Reference, tag: string): Reference {
  if (!anchoredTagRe.test(tag)) invalid('invalid tag format')
  return new Ref(ref.domain, ref.path, tag, ref.digest)
}

/** Returns `ref` with `digest` (validated), keeping any tag, as `reference.WithDigest`. */
export function withDigest(ref: Reference, digest: string): Reference {
  return new Ref(ref.domain, ref.path, ref.tag, validateDigest(digest))
}

/** The repository alone (no tag, no digest), as `reference.TrimNamed`. */
export function trimNamed(ref: Reference): Reference {
  return new Ref(ref.domain, ref.path, undefined, undefined)
}

/** `FamiliarString` of any string that parses: `docker.io/library/busybox:latest` → `busybox:latest`. */
export function familiarString(s: string): string {
  return parseNormalizedNamed(s).familiarString()
}

/** True for a valid tag (`[\w][\w.-]{0,127}`). */
export function isValidTag(tag: string): boolean {
  return anchoredTagRe.test(tag)
}

/**
 * True if `s` can be an image or container ID or a prefix of one: 1..64 lowercase hex,
 * optionally prefixed with `sha256:`.
 */
export function isIdPrefix(s: string): boolean {
  return idPrefixRe.test(s)
}

/** True for a full 64-hex ID, with or without `sha256:`. */
export function isFullId(s: string): boolean {
  return anchoredIdentifierRe.test(s.startsWith('sha256:') ? s.slice(7) : s)
}

/** `sha256:<hex>` form of an ID or ID prefix (the store's key format). */
export function normalizeId(s: string): string {
  if (!isIdPrefix(s)) throw new StrataError('InvalidArgument', `invalid ID: ${s}`)
  return s.startsWith('sha256:') ? s : `sha256:${s}`
}
