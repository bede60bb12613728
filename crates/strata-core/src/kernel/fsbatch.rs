//! A list of file-system steps run in order on one thread, stopping at the first failure.
//!
//! Creating a container is some thirty small steps (dirs of two layers, their `link`/`lower`
//! files and `l/` short links, the init layer's placeholders, the container's own dir and
//! records), removing one a handful of recursive deletes. From Node each step is a round trip
//! through libuv's thread pool and each durable write its own `fsync`; here the whole list is
//! one task, and durability is one `syncfs` where the caller asks for it ([`FsOp::SyncFs`]),
//! or the `fsync` of the files and dirs that need it ([`FsOp::Fsync`]; a run of them in a row is
//! one barrier: they run concurrently, and the batch goes on once all are done, so registering a
//! layer waits for about one `fsync` per ordering point rather than one per file).
//!
//! Paths are the caller's, built from the store layout (never from layer contents), so they
//! are used as given. `Mkdir`, `Write` (with `exclusive`) and `Symlink` refuse to replace
//! anything; `RemoveAll`/`Remove` accept a path that is already gone.
//!
//! It must not take a path from layer contents or from a user.
use crate::error::ErrorCode;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One step.
#[derive(Debug, Clone)]
pub enum FsOp {
    /// `mkdir(path, mode)` (mode is subject to the umask, as with `mkdir(2)`).
    Mkdir { path: PathBuf, mode: u32 },
    /// Creates `path` with `data` (mode as above); `exclusive` refuses an existing file,
    /// otherwise it is truncated.
    Write { path: PathBuf, data: Vec<u8>, mode: u32, exclusive: bool },
    /// `symlink(target, path)`.
    Symlink { target: PathBuf, path: PathBuf },
    /// `rename(from, to)`; with `missing_ok`, nothing if `from` is gone.
    Rename { from: PathBuf, to: PathBuf, missing_ok: bool },
    /// Removes a file or symlink; nothing if it is gone.
    Remove { path: PathBuf },
    /// Removes a tree without following symlinks; nothing if it is gone.
    RemoveAll { path: PathBuf },
    /// `syncfs` of the file system holding `path`: everything written so far is durable.
    SyncFs { path: PathBuf },
    /// `fsync` of a file or dir. Consecutive `Fsync`s run concurrently and all complete before
    /// the next step starts (the first failure in their order is the batch's).
    Fsync { path: PathBuf },
}

impl FsOp {
    fn name(&self) -> &'static str {
        match self {
            FsOp::Mkdir { .. } => "mkdir",
            FsOp::Write { .. } => "write",
            FsOp::Symlink { .. } => "symlink",
            FsOp::Rename { .. } => "rename",
            FsOp::Remove { .. } => "unlink",
            FsOp::RemoveAll { .. } => "remove",
            FsOp::SyncFs { .. } => "syncfs",
            FsOp::Fsync { .. } => "fsync",
        }
    }
    fn path(&self) -> &Path {
        match self {
            FsOp::Mkdir { path, .. }
            | FsOp::Write { path, .. }
            | FsOp::Symlink { path, .. }
            | FsOp::Remove { path }
            | FsOp::RemoveAll { path }
            | FsOp::SyncFs { path }
            | FsOp::Fsync { path } => path,
            FsOp::Rename { from, .. } => from,
        }
    }
}

/// The step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct FsBatchError {
    pub op: &'static str,
    pub path: String,
    /// How many steps had completed before this one.
    pub done: usize,
    #[source]
    pub source: io::Error,
}

impl crate::error::Coded for FsBatchError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Io
    }
    fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
    fn path(&self) -> Option<String> {
        Some(self.path.clone())
    }
}

/// Runs `ops` in order; stops at the first failure (the steps before it stay done).
pub fn run(ops: &[FsOp]) -> Result<(), FsBatchError> {
    let fail = |done: usize, source: io::Error| FsBatchError {
        op: ops[done].name(),
        path: ops[done].path().display().to_string(),
        done,
        source,
    };
    let mut done = 0;
    while done < ops.len() {
        let syncs = ops[done..].iter().take_while(|op| matches!(op, FsOp::Fsync { .. })).count();
        if syncs > 1 {
            if let Some((i, source)) = fsync_all(&ops[done..done + syncs]) {
                return Err(fail(done + i, source));
            }
            done += syncs;
            continue;
        }
        step(&ops[done]).map_err(|source| fail(done, source))?;
        done += 1;
    }
    Ok(())
}

/// The `fsync`s of a run of [`FsOp::Fsync`] steps, one thread each: on a journalling file system
/// concurrent fsyncs share a journal commit, so the run takes about as long as one. Returns the
/// first failure in the run's order (its index in `syncs`).
fn fsync_all(syncs: &[FsOp]) -> Option<(usize, io::Error)> {
    std::thread::scope(|scope| {
        // A helper that cannot be started (no threads left) leaves its fsync to this thread.
        let helpers: Vec<_> = syncs[1..]
            .iter()
            .map(|op| {
                std::thread::Builder::new().name("strata-fsync".into()).spawn_scoped(scope, move || step(op)).ok()
            })
            .collect();
        let mut results = vec![step(&syncs[0])];
        for (h, op) in helpers.into_iter().zip(&syncs[1..]) {
            results.push(match h {
                Some(h) => h.join().unwrap_or_else(|_| Err(io::Error::other("fsync thread panicked"))),
                None => step(op),
            });
        }
        results.into_iter().enumerate().find_map(|(i, r)| r.err().map(|e| (i, e)))
    })
}

fn step(op: &FsOp) -> io::Result<()> {
    match op {
        FsOp::Mkdir { path, mode } => DirBuilder::new().mode(*mode).create(path),
        FsOp::Write { path, data, mode, exclusive } => {
            let mut o = OpenOptions::new();
            o.write(true).mode(*mode).custom_flags(libc::O_NOFOLLOW);
            if *exclusive {
                o.create_new(true);
            } else {
                o.create(true).truncate(true);
            }
            o.open(path)?.write_all(data)
        }
        FsOp::Symlink { target, path } => std::os::unix::fs::symlink(target, path),
        FsOp::Rename { from, to, missing_ok: false } => fs::rename(from, to),
        FsOp::Rename { from, to, missing_ok: true } => gone_ok(fs::rename(from, to)),
        FsOp::Remove { path } => gone_ok(fs::remove_file(path)),
        FsOp::RemoveAll { path } => match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => gone_ok(fs::remove_dir_all(path)),
            Ok(_) => gone_ok(fs::remove_file(path)),
            Err(e) => gone_ok(Err(e)),
        },
        FsOp::SyncFs { path } => {
            let f = fs::File::open(path)?;
            rustix::fs::syncfs(&f).map_err(io::Error::from)
        }
        // Read-only and without following a last symlink: a dir or a regular file of the store.
        FsOp::Fsync { path } => {
            OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path)?.sync_all()
        }
    }
}

fn gone_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn steps_run_in_order_and_make_what_they_say() {
        let t = tempfile::tempdir().unwrap();
        let p = |s: &str| t.path().join(s);
        run(&[
            FsOp::Mkdir { path: p("a"), mode: 0o710 },
            FsOp::Mkdir { path: p("a/diff"), mode: 0o755 },
            FsOp::Write { path: p("a/link"), data: b"ABC".to_vec(), mode: 0o644, exclusive: true },
            FsOp::Symlink { target: "../a/diff".into(), path: p("short") },
            FsOp::Write { path: p("rec.tmp"), data: b"{}".to_vec(), mode: 0o600, exclusive: false },
            FsOp::Rename { from: p("rec.tmp"), to: p("rec"), missing_ok: false },
            FsOp::Rename { from: p("gone"), to: p("never"), missing_ok: true },
            FsOp::SyncFs { path: t.path().into() },
        ])
        .unwrap();
        assert_eq!(fs::read(p("a/link")).unwrap(), b"ABC");
        assert_eq!(fs::read_link(p("short")).unwrap(), Path::new("../a/diff"));
        assert_eq!(fs::read(p("rec")).unwrap(), b"{}");
        assert!(!p("rec.tmp").exists() && !p("never").exists());
        let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        rustix::process::umask(umask);
        let umask = umask.as_raw_mode();
        assert_eq!(fs::metadata(p("a")).unwrap().permissions().mode() & 0o777, 0o710 & !umask);
    }

    #[test]
    fn the_first_failure_stops_the_batch_and_names_its_step() {
        let t = tempfile::tempdir().unwrap();
        let p = |s: &str| t.path().join(s);
        fs::write(p("taken"), b"keep").unwrap();
        let e = run(&[
            FsOp::Mkdir { path: p("one"), mode: 0o755 },
            FsOp::Write { path: p("taken"), data: b"x".to_vec(), mode: 0o644, exclusive: true },
            FsOp::Mkdir { path: p("never"), mode: 0o755 },
        ])
        .unwrap_err();
        assert_eq!((e.op, e.done), ("write", 1));
        assert_eq!(e.source.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.path.ends_with("/taken"));
        assert_eq!(fs::read(p("taken")).unwrap(), b"keep");
        assert!(p("one").is_dir() && !p("never").exists());
    }

    #[test]
    fn a_run_of_fsyncs_is_one_barrier_and_its_first_failure_in_order_is_the_batchs() {
        let t = tempfile::tempdir().unwrap();
        let p = |s: &str| t.path().join(s);
        run(&[
            FsOp::Write { path: p("a"), data: b"A".to_vec(), mode: 0o644, exclusive: true },
            FsOp::Write { path: p("b"), data: b"B".to_vec(), mode: 0o644, exclusive: true },
            FsOp::Fsync { path: p("a") },
            FsOp::Fsync { path: p("b") },
            FsOp::Fsync { path: t.path().into() },
            FsOp::Rename { from: p("a"), to: p("c"), missing_ok: false },
            FsOp::Fsync { path: t.path().into() },
        ])
        .unwrap();
        assert_eq!(fs::read(p("c")).unwrap(), b"A");
        let e = run(&[
            FsOp::Fsync { path: p("b") },
            FsOp::Fsync { path: p("gone-1") },
            FsOp::Fsync { path: p("gone-2") },
            FsOp::Mkdir { path: p("never"), mode: 0o755 },
        ])
        .unwrap_err();
        assert_eq!((e.op, e.done), ("fsync", 1));
        assert!(e.path.ends_with("/gone-1"), "{}", e.path);
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        assert!(!p("never").exists());
        // Not through a symlink.
        std::os::unix::fs::symlink(p("b"), p("sym")).unwrap();
        let e = run(&[FsOp::Fsync { path: p("sym") }]).unwrap_err();
        assert_eq!((e.op, e.done), ("fsync", 0));
    }

    #[test]
    fn removal_takes_trees_and_tolerates_what_is_gone_but_not_follows_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let p = |s: &str| t.path().join(s);
        fs::create_dir_all(p("tree/a/b")).unwrap();
        fs::write(p("tree/a/b/f"), b"x").unwrap();
        fs::create_dir(p("outside")).unwrap();
        fs::write(p("outside/keep"), b"k").unwrap();
        std::os::unix::fs::symlink(p("outside"), p("tree/link")).unwrap();
        std::os::unix::fs::symlink(p("outside"), p("toplink")).unwrap();
        run(&[
            FsOp::RemoveAll { path: p("tree") },
            FsOp::RemoveAll { path: p("toplink") },
            FsOp::RemoveAll { path: p("missing") },
            FsOp::Remove { path: p("missing-file") },
        ])
        .unwrap();
        assert!(!p("tree").exists() && p("toplink").symlink_metadata().is_err());
        assert_eq!(fs::read(p("outside/keep")).unwrap(), b"k");
    }
}
