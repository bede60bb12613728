//! Advisory file locks (`flock(2)`) that serialise processes sharing one store root.
//!
//! The lock is tied to an open file description, so it is released when the holder
//! exits for any reason, `kill -9` included: a crashed process never leaves the store locked.
//!
//! It must not be waited on from the JS thread or a libuv pool thread (the napi side gives a
//! waiting caller a thread of its own).
use crate::error::ErrorCode;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("{path} is locked by another process")]
    WouldBlock { path: PathBuf },
}

impl crate::error::Coded for LockError {
    fn code(&self) -> ErrorCode {
        match self {
            LockError::WouldBlock { .. } => ErrorCode::Locked,
            _ => ErrorCode::Io,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            LockError::Open { source, .. } | LockError::Lock { source, .. } => source.raw_os_error(),
            LockError::WouldBlock { .. } => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            LockError::Open { path, .. } | LockError::Lock { path, .. } | LockError::WouldBlock { path } => {
                Some(path.display().to_string())
            }
        }
    }
}

/// Lock mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// A held lock; dropping it unlocks.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is held in `mode`.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<Self, LockError> {
        Self::take(path, mode, true)?.ok_or_else(|| LockError::WouldBlock { path: path.into() })
    }
    /// Takes the lock if it is free right now; `Ok(None)` if another process holds it.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<Self>, LockError> {
        Self::take(path, mode, false)
    }
    fn take(path: &Path, mode: LockMode, wait: bool) -> Result<Option<Self>, LockError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| LockError::Open { path: path.into(), source })?;
        let op = match (mode, wait) {
            (LockMode::Shared, true) => FlockOperation::LockShared,
            (LockMode::Exclusive, true) => FlockOperation::LockExclusive,
            (LockMode::Shared, false) => FlockOperation::NonBlockingLockShared,
            (LockMode::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
        };
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(Some(FileLock { file, path: path.into() })),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::WOULDBLOCK) if !wait => return Ok(None),
                Err(e) => return Err(LockError::Lock { path: path.into(), source: e.into() }),
            }
        }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_releases_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = FileLock::acquire(&p, LockMode::Exclusive).unwrap();
        // flock locks belong to the open file description, so a second open conflicts.
        assert!(FileLock::try_acquire(&p, LockMode::Shared).unwrap().is_none());
        drop(held);
        let a = FileLock::try_acquire(&p, LockMode::Shared).unwrap();
        let b = FileLock::try_acquire(&p, LockMode::Shared).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(FileLock::try_acquire(&p, LockMode::Exclusive).unwrap().is_none());
    }
}
