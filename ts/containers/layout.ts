/**
 * Where a container lives on disk (Docker's overlay2 + daemon layout):
 *
 * ```
 * <root>/overlay2/<mount-id>-init/                 the init layer (read-only once created):
 *     diff/                                          Docker's init files: /etc/{hosts,hostname,resolv.conf}
 *                                                    (empty placeholders), /dev/console, /.dockerenv,
 *                                                    /proc, /sys, /dev/pts, /dev/shm, /etc/mtab -> /proc/mounts
 *     link, lower (= the image's lower chain: l/<top short>:...), work/
 * <root>/overlay2/<mount-id>/                      the writable layer:
 *     diff/ (UpperDir), work/ (WorkDir), merged/ (MergedDir, mount point)
 *     link, lower (= l/<init short>:<image lower chain>, top first)
 * <root>/image/overlay2/layerdb/mounts/<id>/       mount-id, init-id (= <mount-id>-init), parent
 *                                                  (ChainID of the image's top layer; absent for an
 *                                                  image with no layers)
 * <root>/containers/<id>/
 *     config.v2.json       the container record (ID, Name, Image, Config, State, ...), replaced atomically
 *     hostconfig.json      NetworkMode, AutoRemove, Runtime, LogConfig
 *     hostname, hosts, resolv.conf     bind-mounted over the init layer's placeholders
 *     <id>-json.log        json-file log driver lines: {"log":..,"stream":..,"time":..}
 *     mount.json           mount references: [{kind:'user'} | {kind:'process',pid}]; checked
 *                          against /proc/self/mountinfo, so a new process knows the truth
 *     mounts/              (Docker's secrets/shm mounts; empty: no volumes here)
 *     bundle/config.json   the OCI runtime bundle; root.path = MergedDir
 * <root>/runc/                                      runc --root (runtime state, one dir per running container)
 * ```
 *
 * Creation fills in a skeleton staged under tmp/ (./skeleton.ts) and renames it into place under
 * the store lock: the layerdb/mounts record first, then the overlay2 dirs and l/ links, a syncfs,
 * then containers/<id>/ (the moment the container exists, config.v2.json already in it).
 * Removal goes the other way, each tree renamed into tmp/ and deleted in the background:
 * containers/<id>/, the mounts record, the l/ links, the overlay2 dirs. The repair pass on store
 * open removes anything a crash left half-built and fixes stale mounts and states.
 */
import path = require('node:path')
import { Layout } from '../internal/layout'

/** What the init layer's overlay2 dir adds to the container's mount id. */
export const INIT_SUFFIX = '-init'

/** Paths of one container: the one place its file names (the layout above) are written. */
export class ContainerPaths {
  /** `staged`: where the container's dir is while it is not yet in its place (a skeleton's). */
  constructor(readonly layout: Layout, readonly id: string, private readonly staged?: string) {}

  get dir(): string { return this.staged ?? this.layout.containerDir(this.id) }
  get config(): string { return path.join(this.dir, 'config.v2.json') }
  get hostConfig(): string { return path.join(this.dir, 'hostconfig.json') }
  get hostname(): string { return path.join(this.dir, 'hostname') }
  get hosts(): string { return path.join(this.dir, 'hosts') }
  get resolvConf(): string { return path.join(this.dir, 'resolv.conf') }
  get log(): string { return path.join(this.dir, `${this.id}-json.log`) }
  get mountRefs(): string { return path.join(this.dir, 'mount.json') }
  get mounts(): string { return path.join(this.dir, 'mounts') }
  get bundle(): string { return path.join(this.dir, 'bundle') }
  get pidFile(): string { return path.join(this.bundle, 'pid') }
  get mountMeta(): string { return this.layout.mountMeta(this.id) }
}

export function runcRoot(layout: Layout): string {
  return path.join(layout.root, 'runc')
}
