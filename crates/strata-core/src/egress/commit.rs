//! `commit`: a container's upper dir becomes a new read-only layer in one pass.
//!
//! The upper dir is walked into an OCI layer tar (`layertar`, whiteouts converted, hashed
//! there: the new DiffID) on one thread while, on the caller's thread, that tar streams through
//! a pipe into the layer extractor (`layer::extract_tar_stream`), which records its tar-split
//! and extracts it into the new layer's `diff/`. The tar never touches the disk. The extractor
//! (10,000 file creates for 10,000 files) is the slower side, so the hash goes to the walker's.
//!
//! It must not register the layer (the TypeScript layer store does, under the store lock) nor
//! change the container's upper dir.
use crate::digest::DiffId;
use crate::egress::layertar::{write_dir_tar, LayerTarError, TarMode};
use crate::error::ErrorCode;
use crate::ingest::layer::{extract_tar_stream, LayerError};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Errors of this module: whichever side of the pipe failed first.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Walk(#[from] LayerTarError),
    #[error(transparent)]
    Apply(#[from] LayerError),
    #[error("commit pipe: {0}")]
    Pipe(std::io::Error),
}

impl crate::error::Coded for CommitError {
    fn code(&self) -> ErrorCode {
        match self {
            CommitError::Walk(e) => e.code(),
            CommitError::Apply(e) => e.code(),
            CommitError::Pipe(_) => ErrorCode::Io,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            CommitError::Walk(e) => e.errno(),
            CommitError::Apply(e) => e.errno(),
            CommitError::Pipe(e) => e.raw_os_error(),
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            CommitError::Walk(e) => e.path(),
            CommitError::Apply(e) => e.path(),
            CommitError::Pipe(_) => None,
        }
    }
}

/// What a commit made: the new layer's DiffID and size (sum of regular file sizes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub diff_id: DiffId,
    pub size: u64,
    /// Length of the layer tar.
    pub tar_size: u64,
}

/// Turns `upper` into a new layer at `dest` (must not exist) with its tar-split at `tar_split`.
/// On failure nothing is left at `dest` or `tar_split`.
pub fn commit_layer(
    upper: &Path,
    dest: &Path,
    tar_split: &Path,
    cancel: &AtomicBool,
) -> Result<Committed, CommitError> {
    let (rd, wr) = rustix::pipe::pipe().map_err(|e| CommitError::Pipe(e.into()))?;
    // A bigger pipe means fewer context switches between the two threads.
    let _ = rustix::pipe::fcntl_setpipe_size(&wr, 1 << 20);
    let reader = File::from(rd);
    let writer = File::from(wr);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let out = BufWriter::with_capacity(1 << 20, writer);
            let r = write_dir_tar(upper, TarMode::Layer, out, &stop);
            if r.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            r
        });
        // A failing walker drops its end of the pipe: the extractor sees a short tar and cleans up.
        let applied = extract_tar_stream(reader, dest, tar_split, cancel);
        if applied.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        let walked = walker.join().unwrap_or(Err(LayerTarError::Aborted));
        match (walked, applied) {
            (Ok(walked), Ok(res)) if walked.bytes == res.tar_size => {
                Ok(Committed { diff_id: walked.diff_id, size: res.size, tar_size: res.tar_size })
            }
            // Cannot happen short of a bug: the hash would not describe what was extracted.
            (Ok(walked), Ok(res)) => {
                crate::ingest::layer::cleanup(dest, tar_split);
                Err(CommitError::Pipe(std::io::Error::other(format!(
                    "walker wrote {} bytes, extractor read {}",
                    walked.bytes, res.tar_size
                ))))
            }
            (w, a) if (w.is_err() || a.is_err()) && cancel.load(Ordering::SeqCst) => {
                crate::ingest::layer::cleanup(dest, tar_split);
                Err(LayerError::Aborted.into())
            }
            // Whichever side stopped first is the cause: a walker that only saw the extractor
            // go away (its stop flag, or EPIPE once the pipe's read end closed) reports the
            // extractor's error (say ENOSPC); an extractor that only saw the pipe close early
            // (a short tar) reports the walker's.
            (Err(w), Err(a)) if stopped_by_reader(&w) => Err(a.into()),
            (Err(w), Err(_)) => Err(w.into()),
            (Ok(_), Err(a)) => Err(a.into()),
            (Err(w), Ok(_)) => {
                crate::ingest::layer::cleanup(dest, tar_split);
                Err(w.into())
            }
        }
    })
}

/// Whether the walker failed only because the extractor had stopped reading.
fn stopped_by_reader(w: &LayerTarError) -> bool {
    match w {
        LayerTarError::Aborted => true,
        LayerTarError::Write { source } => source.kind() == std::io::ErrorKind::BrokenPipe,
        _ => false,
    }
}
