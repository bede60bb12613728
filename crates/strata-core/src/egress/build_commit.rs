//! Commit by rename: a build step's overlay upper dir *becomes* the new layer's `diff/`.
//!
//! `commit` (crate::egress::commit) copies a container's upper dir into a new layer (walk → tar →
//! extract). A build step needs no copy: its container is gone once the step ends, so its
//! upper dir is renamed to be the layer's `diff/` and only has to be *described*: one walk of
//! the tree ([`crate::egress::layertar::write_sealing_tar`]) produces the layer tar's bytes — hashed
//! there into the DiffID — while, on this thread, the same bytes stream through a tar parser
//! that records the tar-split (headers and padding as segments, each regular file body as a
//! reference to its file in `diff/` with its CRC-64), skipping the bodies. No second copy of
//! the files, no temporary tar. The walk also drops overlay's bookkeeping xattrs
//! (`trusted.overlay.origin`, `impure`, ...) from copied-up entries.
//!
//! The upper dir must come from a mount with `index=off,redirect_dir=off,metacopy=off`: a
//! redirected directory or a metacopy-only file would not be a self-contained layer.
//!
//! It must not copy files nor touch the store's metadata: the caller renames the upper dir into
//! place and registers the layer.
use crate::digest::DiffId;
use crate::egress::layertar::{write_sealing_tar, LayerTarError};
use crate::error::ErrorCode;
use crate::ingest::safefs::RelPath;
use crate::ingest::tarsplit::{Recorder, TarSplitWriter};
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Walk(#[from] LayerTarError),
    #[error("recording tar-split {path}: {source}")]
    TarSplit { path: PathBuf, source: io::Error },
    #[error("seal pipe: {0}")]
    Pipe(io::Error),
    #[error("sealing the layer was cancelled")]
    Aborted,
}

impl crate::error::Coded for SealError {
    fn code(&self) -> ErrorCode {
        match self {
            SealError::Walk(e) => e.code(),
            SealError::TarSplit { .. } | SealError::Pipe(_) => ErrorCode::Io,
            SealError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            SealError::Walk(e) => e.errno(),
            SealError::TarSplit { source, .. } | SealError::Pipe(source) => source.raw_os_error(),
            SealError::Aborted => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            SealError::Walk(e) => e.path(),
            SealError::TarSplit { path, .. } => Some(path.display().to_string()),
            _ => None,
        }
    }
}

/// What sealing found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub diff_id: DiffId,
    /// Sum of regular file sizes (Docker's layer size).
    pub size: u64,
    /// Length of the layer tar.
    pub tar_size: u64,
    /// Tar entries (0: the layer is empty).
    pub entries: u64,
}

/// Describes the layer whose files are in `diff` (an upper dir, unmounted): its DiffID and
/// size, with its tar-split written to `tar_split` (which must not exist; removed on failure).
pub fn seal_layer(diff: &Path, tar_split: &Path, cancel: &AtomicBool) -> Result<Sealed, SealError> {
    let writer =
        TarSplitWriter::create(tar_split).map_err(|source| SealError::TarSplit { path: tar_split.into(), source })?;
    let r = seal_with(diff, tar_split, writer, cancel);
    if r.is_err() {
        let _ = std::fs::remove_file(tar_split);
    }
    r
}

fn seal_with(diff: &Path, tar_split: &Path, writer: TarSplitWriter, cancel: &AtomicBool) -> Result<Sealed, SealError> {
    let (rd, wr) = rustix::pipe::pipe().map_err(|e| SealError::Pipe(e.into()))?;
    let _ = rustix::pipe::fcntl_setpipe_size(&wr, 1 << 20);
    let reader = File::from(rd);
    let pipe_in = File::from(wr);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let r = write_sealing_tar(diff, BufWriter::with_capacity(1 << 20, pipe_in), cancel);
            if r.is_err() {
                stop.store(true, Ordering::SeqCst);
            }
            r
        });
        let recorded =
            record(reader, writer, &stop).map_err(|source| SealError::TarSplit { path: tar_split.into(), source });
        let walked = walker.join().unwrap_or(Err(LayerTarError::Aborted));
        if cancel.load(Ordering::SeqCst) {
            return Err(SealError::Aborted);
        }
        match (walked, recorded) {
            (Ok(w), Ok((tar_size, size))) if w.bytes == tar_size => {
                Ok(Sealed { diff_id: w.diff_id, size, tar_size, entries: w.entries })
            }
            (Ok(w), Ok((tar_size, _))) => Err(SealError::Pipe(io::Error::other(format!(
                "walker wrote {} bytes, the recorder read {tar_size}",
                w.bytes
            )))),
            (Err(e), _) => Err(e.into()),
            (Ok(_), Err(e)) => Err(e),
        }
    })
}

/// Reads the tar stream to its end, recording its tar-split; returns (tar length, file bytes).
fn record(reader: File, writer: TarSplitWriter, stop: &AtomicBool) -> io::Result<(u64, u64)> {
    let rec = Recorder::new(writer);
    let mut size = 0u64;
    let mut archive = tar::Archive::new(rec.reader(reader));
    for entry in archive.entries()? {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("walker failed"));
        }
        let mut e = entry?;
        let kind = e.header().entry_type();
        if kind.is_file() || kind.is_contiguous() {
            let len = e.size();
            size += len;
            let raw = e.path_bytes().into_owned();
            let name = RelPath::parse(&raw).map_err(io::Error::other)?;
            // Whiteout markers have no file in diff/ (there they are 0/0 char devices).
            if let Some(name) = name.filter(|n| !n.leaf().starts_with(b".wh.")) {
                rec.file(name.as_bytes(), e.raw_file_position(), len)?;
            }
            io::copy(&mut e, &mut io::sink())?;
        }
        rec.flush_if_large()?;
    }
    // The end-of-archive blocks and anything after them are segments too.
    let mut rest = archive.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => rec.flush_if_large()?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let tar_size = rec.finish()?;
    Ok((tar_size, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tarsplit::assemble;

    #[test]
    fn sealed_layer_reassembles_to_its_diff_id() {
        let t = tempfile::tempdir().unwrap();
        let diff = t.path().join("diff");
        std::fs::create_dir_all(diff.join("app/sub")).unwrap();
        std::fs::write(diff.join("app/a.txt"), b"hello").unwrap();
        std::fs::write(diff.join("app/sub/big"), vec![7u8; 3 << 20]).unwrap();
        std::fs::write(diff.join("empty"), b"").unwrap();
        std::fs::hard_link(diff.join("app/a.txt"), diff.join("app/hard")).unwrap();
        std::os::unix::fs::symlink("a.txt", diff.join("app/link")).unwrap();
        let long = "x".repeat(150);
        std::fs::write(diff.join("app").join(&long), b"long name").unwrap();
        let ts = t.path().join("ts.json.gz");
        let sealed = seal_layer(&diff, &ts, &AtomicBool::new(false)).unwrap();
        assert_eq!(sealed.size, 5 + (3 << 20) + 9);
        let mut out = Vec::new();
        let (id, len) = assemble(&diff, &ts, &mut out).unwrap();
        assert_eq!((id, len), (sealed.diff_id.clone(), sealed.tar_size));
        // Exactly what the commit walker writes for the same tree.
        let mut plain = Vec::new();
        let st = crate::egress::layertar::write_dir_tar(
            &diff,
            crate::egress::layertar::TarMode::Layer,
            &mut plain,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(st.diff_id, sealed.diff_id);
        assert_eq!(plain, out);
    }

    #[test]
    fn empty_upper_dir_is_an_empty_tar() {
        let t = tempfile::tempdir().unwrap();
        let diff = t.path().join("diff");
        std::fs::create_dir(&diff).unwrap();
        let sealed = seal_layer(&diff, &t.path().join("ts"), &AtomicBool::new(false)).unwrap();
        assert_eq!(sealed.entries, 0);
        assert_eq!(
            sealed.diff_id.to_string(),
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
        );
    }
}
