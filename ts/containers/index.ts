/** The container layer: public types and classes. */
export { Containers } from './containers'
export type { CreateOptions, ContainerSummary, ListContainersOptions, RemoveContainerOptions } from './containers'
export { Container, EMPTY_TAR_DIFF_ID } from './container'
export type { RunOptions, RunResult, Change, CommitOptions, LogEntry } from './container'
export type { ContainerRecord, ContainerState, ContainerStatus, NetworkMode } from './record'
export type { MountPlan } from './plan'
export { containerMountPlan, lowerDirs, lowerChain, MAX_LOWER_DIRS, INIT_ENTRIES } from './plan'
export { buildSpec, processEnv, resolveUser } from './spec'
