//! The extractor's small regular files, created by worker threads ([`crate::workpool`]).
//!
//! The extractor (`crate::ingest::extract`) reads each small body into memory and hands the
//! create-write-finish part to the pool; it waits for the workers before anything whose
//! outcome could depend on a file still in flight: a path equal to, or below, a file handed
//! out since the last wait; removing an existing node; a hard link; directory times at the end.
//!
//! It must not resolve paths: the extractor hands over the parent directory it resolved.
use super::{finish_open_file, ExtractError, Meta};
use crate::ingest::safefs;
use crate::workpool::{PoolError, PoolState as State, WorkPool};
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use std::fs::File;
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Bodies up to this size go to the workers; larger ones are written inline (and with
/// `O_DIRECT` from 256 KiB, see `crate::ingest::direct`).
pub(crate) const SMALL_FILE: u64 = 128 << 10;

/// One file to create: `leaf` in the directory `parent`, which the extractor resolved.
pub(crate) struct SmallFile {
    pub parent: Arc<OwnedFd>,
    pub leaf: Vec<u8>,
    pub body: Vec<u8>,
    pub meta: Meta,
    pub shown: String,
}

impl PoolError for ExtractError {
    fn aborted() -> Self {
        ExtractError::Aborted
    }
    fn stopped(path: &[u8]) -> Self {
        ExtractError::Io {
            op: "create",
            entry: path.iter().map(|&b| b as char).collect(),
            source: std::io::Error::other("extraction workers stopped"),
        }
    }
}

/// What the workers and the extractor share.
pub(crate) type PoolState = State<ExtractError>;
/// The extractor's handle on its workers.
pub(crate) type FilePool<'s> = WorkPool<'s, SmallFile, ExtractError>;

/// Starts `workers` threads creating small files in `scope`.
pub(crate) fn start<'s, 'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    workers: usize,
    state: &'s PoolState,
    cancel: &'env AtomicBool,
) -> std::io::Result<FilePool<'s>>
where
    's: 'scope,
{
    WorkPool::start(scope, workers, "strata-extract-w", state, cancel, &|job: &SmallFile, _: &mut Vec<u8>| {
        write_file(job)
    })
}

fn write_file(job: &SmallFile) -> Result<(), ExtractError> {
    let io = |op: &'static str| move |source: std::io::Error| ExtractError::Io { op, entry: job.shown.clone(), source };
    let fd = rustix::fs::openat(
        &*job.parent,
        safefs::os(&job.leaf),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(job.meta.mode & 0o777),
    )
    .map_err(|e| io("create")(e.into()))?;
    let mut f = File::from(fd);
    f.write_all(&job.body).map_err(io("write"))?;
    finish_open_file(&f, &job.meta, &job.shown)
}
