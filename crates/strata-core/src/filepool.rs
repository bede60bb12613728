//! Worker threads that create the extractor's small regular files.
//!
//! Creating a file on ext4 (inode, directory entry, a 4 KiB write, owner/mode/times) costs
//! tens of microseconds of kernel time; a layer of 10,000 small files spends most of its
//! extraction there, on one thread. The extractor (`crate::extract`) keeps parsing, resolving
//! parents and deciding on its own thread, reads each small body into memory and hands the
//! create-write-finish part to these workers. It waits for them ([`FilePool::settle`]) before
//! anything whose outcome could depend on a file still in flight: a path equal to, or below,
//! a file handed out since the last wait; removing an existing node; a hard link; setting
//! directory times at the end.
//!
//! Workers stop at the first failure (kept for the extractor to return) or cancellation.
//!
//! It must not resolve paths: the extractor hands over the parent directory it resolved.
use crate::extract::{finish_open_file, ExtractError, Meta};
use crate::safefs;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

/// Bodies up to this size go to the workers; larger ones are written inline (and with
/// `O_DIRECT` from 256 KiB, see `crate::direct`).
pub(crate) const SMALL_FILE: u64 = 128 << 10;
/// Files queued at most (bounds the memory held: `QUEUE * SMALL_FILE`).
const QUEUE: usize = 256;

/// One file to create: `leaf` in the directory `parent`, which the extractor resolved.
pub(crate) struct SmallFile {
    pub parent: Arc<OwnedFd>,
    pub leaf: Vec<u8>,
    pub body: Vec<u8>,
    pub meta: Meta,
    pub shown: String,
}

/// What the workers and the extractor share.
pub(crate) struct PoolState {
    in_flight: Mutex<usize>,
    idle: Condvar,
    failed: AtomicBool,
    error: Mutex<Option<ExtractError>>,
}

impl PoolState {
    pub fn new() -> Self {
        PoolState {
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    fn fail(&self, e: ExtractError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn done_one(&self) {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        if *n == 0 {
            self.idle.notify_all();
        }
    }
}

/// The extractor's handle: hands out files and waits for them.
pub(crate) struct FilePool<'s> {
    tx: Option<SyncSender<SmallFile>>,
    state: &'s PoolState,
    /// Paths handed out since the last `settle`.
    window: HashSet<Vec<u8>>,
}

impl<'s> FilePool<'s> {
    /// Starts `workers` threads in `scope`; they end when the pool is dropped.
    pub fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        workers: usize,
        state: &'s PoolState,
        cancel: &'env AtomicBool,
    ) -> std::io::Result<Self>
    where
        's: 'scope,
    {
        let (tx, rx) = sync_channel::<SmallFile>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name("strata-extract-w".into())
                .spawn_scoped(scope, move || work(&rx, state, cancel))?;
        }
        Ok(FilePool { tx: Some(tx), state, window: HashSet::new() })
    }

    /// Whether `path` is, or lies below, a file handed out since the last `settle`.
    pub fn overlaps(&self, path: &[u8]) -> bool {
        if self.window.is_empty() {
            return false;
        }
        path.iter().enumerate().filter(|(_, &b)| b == b'/').any(|(i, _)| self.window.contains(&path[..i]))
            || self.window.contains(path)
    }

    /// Hands a file to the workers. Fails with the first worker error, if any.
    pub fn submit(&mut self, path: &[u8], job: SmallFile) -> Result<(), ExtractError> {
        self.check()?;
        *self.state.in_flight.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.window.insert(path.to_vec());
        let sent = match &self.tx {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            // Only when every worker is gone, which they never are before the pool is dropped.
            self.state.done_one();
            return Err(ExtractError::Io {
                op: "create",
                entry: path.iter().map(|&b| b as char).collect(),
                source: std::io::Error::other("extraction workers stopped"),
            });
        }
        Ok(())
    }

    /// Waits until every file handed out is written; returns the first worker error.
    pub fn settle(&mut self) -> Result<(), ExtractError> {
        let mut n = self.state.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self.state.idle.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        drop(n);
        self.window.clear();
        self.check()
    }

    fn check(&self) -> Result<(), ExtractError> {
        if self.state.failed.load(Ordering::SeqCst) {
            let e = self.state.error.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(e.unwrap_or(ExtractError::Aborted));
        }
        Ok(())
    }
}

impl Drop for FilePool<'_> {
    fn drop(&mut self) {
        // Closing the channel ends the workers once the queue is empty; the scope joins them.
        self.tx = None;
    }
}

fn work(rx: &Mutex<Receiver<SmallFile>>, state: &PoolState, cancel: &AtomicBool) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if !state.failed.load(Ordering::SeqCst) {
            if cancel.load(Ordering::Relaxed) {
                state.fail(ExtractError::Aborted);
            } else if let Err(e) = write_file(&job) {
                state.fail(e);
            }
        }
        state.done_one();
    }
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
