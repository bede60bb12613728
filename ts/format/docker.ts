/**
 * The docker CLI's default formats and column headers (cli/command/formatter/{image,
 * container,custom}.go, cli/command/image/formatter_history.go), so that
 * `strata images`, `strata ps` and `strata history` print what docker prints.
 *
 * Use with {@link formatItems}: `formatItems(IMAGE_TABLE_FORMAT, rows, { headers: IMAGE_HEADERS })`.
 */

export const QUIET_FORMAT = '{{.ID}}'
export const JSON_FORMAT = '{{json .}}'

export const IMAGE_TABLE_FORMAT = 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}'
export const IMAGE_TABLE_FORMAT_WITH_DIGEST =
  'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}'

export const IMAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  VirtualSize: 'SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
})

export const HISTORY_TABLE_FORMAT = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}'
/** `docker history --human=false`. */
export const HISTORY_TABLE_FORMAT_NON_HUMAN = 'table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}'

export const HISTORY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ID: 'IMAGE',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  CreatedBy: 'CREATED BY',
  Size: 'SIZE',
  Comment: 'COMMENT',
})

export const CONTAINER_TABLE_FORMAT = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}'

export const CONTAINER_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ID: 'CONTAINER ID',
  Names: 'NAMES',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Size: 'SIZE',
  Labels: 'LABELS',
  Mounts: 'MOUNTS',
  LocalVolumes: 'LOCAL VOLUMES',
  Networks: 'NETWORKS',
  Platform: 'PLATFORM',
  HealthStatus: 'HEALTH STATUS',
  IPAddresses: 'IP ADDRESSES',
})

/**
 * What a command's `--format` value turns into, as `NewImageFormat` / `NewHistoryFormat` /
 * `NewContainerFormat`: `''` and `table` are the default table, `-q` is `{{.ID}}`, `json`
 * stays `json` (handled by `preFormat`), anything else is used as given.
 */
export function resolveFormat(source: string | undefined, defaultTable: string, opts: { quiet?: boolean } = {}): string {
  if (source === undefined || source === '' || source === 'table') return opts.quiet ? QUIET_FORMAT : defaultTable
  return source
}
