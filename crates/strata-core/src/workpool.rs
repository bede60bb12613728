//! Worker threads that take jobs in order from one producer and report the first failure.
//!
//! Creating a file (inode, directory entry, body, owner/mode/times) costs tens of
//! microseconds of kernel time; a layer or a COPY of thousands of small files spends most of
//! its time there, on one thread. The producer (the extractor, `crate::ingest::extract`; the COPY of
//! a build, `crate::build_ctx`) keeps parsing, resolving parents and deciding on its own
//! thread and hands the create-and-write part to these workers. It waits for them
//! ([`WorkPool::settle`]) before anything whose outcome could depend on a job still in
//! flight: a path equal to, or below, one handed out since the last wait ([`WorkPool::overlaps`]),
//! a hard link, directory times, the end.
//!
//! Workers stop at the first failure (kept for the producer to return) or cancellation.
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

/// Jobs queued at most (bounds the memory a producer can hand out ahead of the workers).
const QUEUE: usize = 256;

/// The errors a pool itself makes.
pub(crate) trait PoolError: Send {
    /// The operation was cancelled.
    fn aborted() -> Self;
    /// The workers are gone (never before the pool is dropped).
    fn stopped(path: &[u8]) -> Self;
}

/// What the workers and the producer share.
pub(crate) struct PoolState<E> {
    in_flight: Mutex<usize>,
    idle: Condvar,
    failed: AtomicBool,
    error: Mutex<Option<E>>,
}

impl<E: PoolError> PoolState<E> {
    pub fn new() -> Self {
        PoolState {
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    fn fail(&self, e: E) {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
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

/// The producer's handle: hands out jobs and waits for them.
pub(crate) struct WorkPool<'s, J, E> {
    tx: Option<SyncSender<J>>,
    state: &'s PoolState<E>,
    /// Paths handed out since the last `settle`.
    window: HashSet<Vec<u8>>,
}

impl<'s, J: Send, E: PoolError> WorkPool<'s, J, E> {
    /// Starts `workers` threads named `name` in `scope`, each running `run(job, scratch)` on
    /// the jobs (with a scratch buffer of its own); they end when the pool is dropped.
    pub fn start<'scope, 'env, F>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        workers: usize,
        name: &str,
        state: &'s PoolState<E>,
        cancel: &'env AtomicBool,
        run: &'scope F,
    ) -> std::io::Result<Self>
    where
        's: 'scope,
        J: 'scope,
        E: Sync,
        F: Fn(&J, &mut Vec<u8>) -> Result<(), E> + Sync,
    {
        let (tx, rx) = sync_channel::<J>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new().name(name.into()).spawn_scoped(scope, move || work(&rx, state, cancel, run))?;
        }
        Ok(WorkPool { tx: Some(tx), state, window: HashSet::new() })
    }

    /// Whether `path` is, or lies below, a path handed out since the last `settle`.
    pub fn overlaps(&self, path: &[u8]) -> bool {
        if self.window.is_empty() {
            return false;
        }
        path.iter().enumerate().filter(|(_, &b)| b == b'/').any(|(i, _)| self.window.contains(&path[..i]))
            || self.window.contains(path)
    }

    /// Hands a job writing `path` to the workers. Fails with the first worker error, if any.
    pub fn submit(&mut self, path: &[u8], job: J) -> Result<(), E> {
        self.check()?;
        *self.state.in_flight.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.window.insert(path.to_vec());
        if self.tx.as_ref().is_none_or(|tx| tx.send(job).is_err()) {
            self.state.done_one();
            return Err(E::stopped(path));
        }
        Ok(())
    }

    /// Waits until every job handed out is done; returns the first worker error.
    pub fn settle(&mut self) -> Result<(), E> {
        let mut n = self.state.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self.state.idle.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        drop(n);
        self.window.clear();
        self.check()
    }

    fn check(&self) -> Result<(), E> {
        if self.state.failed.load(Ordering::SeqCst) {
            return Err(self.state.error.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(E::aborted));
        }
        Ok(())
    }
}

impl<J, E> Drop for WorkPool<'_, J, E> {
    fn drop(&mut self) {
        // Closing the channel ends the workers once the queue is empty; the scope joins them.
        self.tx = None;
    }
}

fn work<J, E: PoolError, F: Fn(&J, &mut Vec<u8>) -> Result<(), E>>(
    rx: &Mutex<Receiver<J>>,
    state: &PoolState<E>,
    cancel: &AtomicBool,
    run: &F,
) {
    let mut scratch = Vec::new();
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if !state.failed.load(Ordering::SeqCst) {
            if cancel.load(Ordering::Relaxed) {
                state.fail(E::aborted());
            } else if let Err(e) = run(&job, &mut scratch) {
                state.fail(e);
            }
        }
        state.done_one();
    }
}
