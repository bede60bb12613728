/** The container record (`config.v2.json`, Docker's field names) and its atomic read/write. */
import { ContainerConfig } from '../internal/imagedb'
import { readIfExists, readBytesIfExists, writeAtomic } from '../internal/fsx'
import { ContainerPaths } from './layout'

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead'

/** Docker's `State` object. */
export interface ContainerState {
  Status: ContainerStatus
  Running: boolean
  Paused: boolean
  Restarting: boolean
  OOMKilled: boolean
  Dead: boolean
  Pid: number
  ExitCode: number
  Error: string
  StartedAt: string
  FinishedAt: string
}

export type NetworkMode = 'none' | 'host'

export interface HostConfig {
  NetworkMode: NetworkMode
  AutoRemove: boolean
  Runtime: string
  LogConfig: { Type: 'json-file'; Config: Record<string, string> }
  /** `--security-opt` as Docker stores it: `seccomp=unconfined`, or `seccomp=` and a profile's JSON. */
  SecurityOpt?: string[]
}

export interface ContainerRecord {
  ID: string
  Created: string
  /** The process: Path + Args (entrypoint and cmd joined as Docker does). */
  Path: string
  Args: string[]
  Config: ContainerConfig
  /** Image ID (`sha256:...`). */
  Image: string
  /** `/name`. */
  Name: string
  Driver: 'overlay2'
  State: ContainerState
  HostnamePath: string
  HostsPath: string
  ResolvConfPath: string
  LogPath: string
  RestartCount: number
  /** strata: pid of the process supervising the runtime while running (the CLI or the shim). */
  Supervisor?: number
  /**
   * strata: pid of a `commit` that has paused the container (runc pause) and its start time
   * (`/proc/<pid>/stat` field 22, so a reused pid is not taken for it): if that process dies
   * before resuming it, the next operation on the container, from any process, resumes it.
   */
  PausedBy?: number
  PausedByStart?: string
  /** strata: the stdin the process was started with. */
  OpenStdin?: boolean
}

export const ZERO_TIME = '0001-01-01T00:00:00Z'

export function initialState(): ContainerState {
  return {
    Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
    Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME,
  }
}

export async function readRecord(p: ContainerPaths): Promise<ContainerRecord | undefined> {
  return parseRecord(await readBytesIfExists(p.config))
}

/** A record's bytes as a record; `undefined` for none or a torn one (a crash while it was written). */
export function parseRecord(raw: Buffer | undefined): ContainerRecord | undefined {
  if (raw === undefined) return undefined
  try {
    return JSON.parse(raw.toString('utf8')) as ContainerRecord
  } catch (e) {
    if (e instanceof SyntaxError) return undefined
    throw e
  }
}

export async function writeRecord(p: ContainerPaths, rec: ContainerRecord): Promise<void> {
  await writeAtomic(p.config, JSON.stringify(rec))
}

export async function readHostConfig(p: ContainerPaths): Promise<HostConfig> {
  const defaults: HostConfig = { NetworkMode: 'none', AutoRemove: false, Runtime: 'runc', LogConfig: { Type: 'json-file', Config: {} } }
  try {
    const raw = await readIfExists(p.hostConfig)
    return raw === undefined ? defaults : (JSON.parse(raw) as HostConfig)
  } catch {
    return defaults
  }
}

export async function writeHostConfig(p: ContainerPaths, hc: HostConfig): Promise<void> {
  await writeAtomic(p.hostConfig, JSON.stringify(hc))
}
