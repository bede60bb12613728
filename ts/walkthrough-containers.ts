/** The container part of the walkthrough (seed 004's container layer and `docker commit`); filled in with the container layer. */
import { Store } from './store'

export const walkContainers = {
  async cleanupBefore(_store: Store): Promise<void> {},
  async run(
    _store: Store,
    _strata: (...args: string[]) => Promise<number>,
    _sh: (cmd: string) => void,
    _say: (text: string) => void,
  ): Promise<void> {},
}
