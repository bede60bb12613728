//! File locks for the TS store (see `strata_core::lock`): acquired off the JS thread.
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Mutex;
use strata_core::lock::{FileLock, LockMode};

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

fn mode(exclusive: bool) -> LockMode {
    if exclusive {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    }
}

pub struct AcquireLock {
    path: String,
    exclusive: bool,
}

impl crate::NativeTask for AcquireLock {
    type Output = FileLock;
    type JsValue = NativeLock;
    fn compute(&mut self) -> std::result::Result<FileLock, crate::Failure> {
        Ok(FileLock::acquire(std::path::Path::new(&self.path), mode(self.exclusive))?)
    }
    fn resolve(&mut self, _: Env, out: FileLock) -> Result<NativeLock> {
        Ok(NativeLock { held: Mutex::new(Some(out)) })
    }
}

/// Waits (off the JS thread) for a lock on `path`, created if missing.
#[napi(ts_return_type = "Promise<NativeLock>")]
pub fn acquire_lock(path: String, exclusive: bool) -> AsyncTask<crate::error::Job<AcquireLock>> {
    crate::job(AcquireLock { path, exclusive })
}

/// Takes the lock only if it is free now; `null` when another process holds it.
#[napi]
pub fn try_lock(env: Env, path: String, exclusive: bool) -> Result<Option<NativeLock>> {
    let got = FileLock::try_acquire(std::path::Path::new(&path), mode(exclusive)).map_err(crate::throw(&env))?;
    Ok(got.map(|l| NativeLock { held: Mutex::new(Some(l)) }))
}
