//! File locks for the TS store (see `strata_core::kernel::lock`).
//!
//! Nothing here ever blocks a libuv pool thread: `tryLock` is one non-blocking `flock` on the
//! calling thread, and `waitLock` blocks on a thread of its own, so a process whose pool threads
//! are all busy (or all waiting for the lock holder's I/O) can never deadlock on the store lock.
//! The TS side (`ts/lock.ts`) queues in-process callers, so at most one such thread per store
//! root waits at a time.
use crate::Failure;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::sync::Mutex;
use strata_core::error::ErrorCode;
use strata_core::kernel::lock::{FileLock, LockMode};

/// A held `flock`; `release()` (or process exit) unlocks.
#[napi]
pub struct NativeLock {
    held: Mutex<Option<FileLock>>,
}

#[napi]
impl NativeLock {
    /// Releases the lock; a second call is a no-op.
    #[napi]
    pub fn release(&self) {
        self.held.lock().map(|mut g| g.take()).ok();
    }
    #[napi(getter)]
    pub fn held(&self) -> bool {
        self.held.lock().map(|g| g.is_some()).unwrap_or(false)
    }
}

impl From<FileLock> for NativeLock {
    fn from(l: FileLock) -> Self {
        NativeLock { held: Mutex::new(Some(l)) }
    }
}

fn mode(exclusive: bool) -> LockMode {
    if exclusive {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    }
}

/// `done(err, lock)`: exactly one of the two is set; `err` is built on the JS thread with its
/// code/syscode/errno/path properties (see `crate::error`).
type LockOutcome = FnArgs<(Option<Failure>, Option<NativeLock>)>;

/// Weak: the waiting thread does not keep the event loop alive by itself; the TS side keeps it
/// alive while a caller still wants the lock, and lets the process exit once nobody does.
type LockDone = ThreadsafeFunction<LockOutcome, (), LockOutcome, Status, false, true>;

/// Waits for a lock on `path` (created if missing) on a dedicated thread — never on the libuv
/// pool — and calls `done(err, lock)` on the JS thread once it is held.
#[napi(ts_args_type = "path: string, exclusive: boolean, done: (err: Error | null, lock: NativeLock) => void")]
pub fn wait_lock(env: Env, path: String, exclusive: bool, done: LockDone) -> Result<()> {
    std::thread::Builder::new()
        .name("strata-lock-wait".into())
        .spawn(move || {
            let got = FileLock::acquire(std::path::Path::new(&path), mode(exclusive));
            // If the process is exiting, the call fails and the lock is dropped (released) with it.
            let outcome = match got {
                Ok(lock) => (None, Some(NativeLock::from(lock))),
                Err(e) => (Some(Failure::from(e)), None),
            };
            done.call(outcome.into(), ThreadsafeFunctionCallMode::NonBlocking);
        })
        .map(|_| ())
        .map_err(|e| Failure::new(ErrorCode::Io, format!("cannot start a lock-wait thread: {e}")).into_js(&env))
}

/// Takes the lock only if it is free now; `null` when another process holds it.
#[napi]
pub fn try_lock(env: Env, path: String, exclusive: bool) -> Result<Option<NativeLock>> {
    let got = FileLock::try_acquire(std::path::Path::new(&path), mode(exclusive)).map_err(crate::throw(&env))?;
    Ok(got.map(NativeLock::from))
}
