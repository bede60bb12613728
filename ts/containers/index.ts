/** The container layer: public types and classes. */
export { Containers } from './containers'
export type { CreateOptions, ContainerSummary, ListContainersOptions, RemoveContainerOptions } from './containers'
export { Container, EMPTY_TAR_DIFF_ID } from './container'
export type { RunOptions, RunResult, Change, CommitOptions, LogEntry } from './container'
export type { ContainerRecord, ContainerState, ContainerStatus, NetworkMode } from './record'
export type { MountPlan } from './plan'
export { containerMountPlan, lowerDirs, lowerChain, INIT_ENTRIES } from './plan'
import { maxLowerDirs } from './plan'
/** The kernel's limit on lower dirs in one overlay mount (`OVL_MAX_STACK`), as the native core has it. */
export const MAX_LOWER_DIRS: number = maxLowerDirs()
export { buildSpec, processEnv, resolveUser } from './spec'
