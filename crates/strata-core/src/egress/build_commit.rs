//! Commit by rename: a build step's overlay upper dir *becomes* the new layer's `diff/`.
//!
//! `commit` (crate::egress::commit) copies a container's upper dir into a new layer (walk → tar →
//! extract). A build step needs no copy: its container is gone once the step ends, so its
//! upper dir is renamed to be the layer's `diff/` and only has to be *described*: one walk of
//! the tree ([`crate::egress::layertar::write_sealing_tar`]) produces the layer tar's bytes; its
//! helper threads hash them into the DiffID and record the tar-split from them (headers and
//! padding as segments, each regular file body as a reference to its file in `diff/` with its
//! CRC-64), the walker announcing where each body starts, so the stream is never parsed back.
//! No second copy of the files, no temporary tar, no pipe. The walk also drops overlay's bookkeeping xattrs
//! (`trusted.overlay.origin`, `impure`, ...) from copied-up entries.
//!
//! The upper dir must come from a mount with `index=off,redirect_dir=off,metacopy=off`: a
//! redirected directory or a metacopy-only file would not be a self-contained layer.
//!
//! It must not copy files nor touch the store's metadata: the caller renames the upper dir into
//! place and registers the layer.
use crate::digest::DiffId;
use crate::egress::layertar::{write_sealing_tar, LayerTarError, TarSink};
use crate::error::ErrorCode;
use crate::ingest::safefs::RelPath;
use crate::ingest::tarsplit::{Recorder, TarSplitWriter};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Walk(#[from] LayerTarError),
    #[error("recording tar-split {path}: {source}")]
    TarSplit { path: PathBuf, source: io::Error },
    #[error("sealing the layer was cancelled")]
    Aborted,
}

impl crate::error::Coded for SealError {
    fn code(&self) -> ErrorCode {
        match self {
            SealError::Walk(e) => e.code(),
            SealError::TarSplit { .. } => ErrorCode::Io,
            SealError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            SealError::Walk(e) => e.errno(),
            SealError::TarSplit { source, .. } => source.raw_os_error(),
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
/// The tar-split is not fsynced here: registering the layer fsyncs it, with the layer db
/// entry's other files, before the entry is renamed into place (one barrier for all of them).
pub fn seal_layer(diff: &Path, tar_split: &Path, cancel: &AtomicBool) -> Result<Sealed, SealError> {
    let writer = TarSplitWriter::create_unsynced(tar_split)
        .map_err(|source| SealError::TarSplit { path: tar_split.into(), source })?;
    let r = seal_with(diff, tar_split, writer, cancel);
    if r.is_err() {
        let _ = std::fs::remove_file(tar_split);
    }
    r
}

fn seal_with(diff: &Path, tar_split: &Path, writer: TarSplitWriter, cancel: &AtomicBool) -> Result<Sealed, SealError> {
    let made = write_sealing_tar(diff, move || SealSink::new(writer), cancel);
    if cancel.load(Ordering::SeqCst) {
        return Err(SealError::Aborted);
    }
    match made {
        Ok((w, (tar_size, size))) if w.bytes == tar_size => {
            Ok(Sealed { diff_id: w.diff_id, size, tar_size, entries: w.entries })
        }
        Ok((w, (tar_size, _))) => Err(SealError::TarSplit {
            path: tar_split.into(),
            source: io::Error::other(format!("walker wrote {} bytes, the recorder saw {tar_size}", w.bytes)),
        }),
        // The sink only writes the tar-split: a write error is the tar-split's.
        Err(LayerTarError::Write { source }) => Err(SealError::TarSplit { path: tar_split.into(), source }),
        Err(e) => Err(e.into()),
    }
}

/// Records the tar-split of the stream the walk produces, on the walk's sink thread: every
/// byte goes to the [`Recorder`], and each regular file body the walker announces becomes a
/// file record (a whiteout marker's, which has no file in `diff/`, stays in the segments).
struct SealSink {
    rec: Recorder,
    /// Announced bodies whose first byte has not arrived yet: (name, offset, size).
    ahead: VecDeque<(Vec<u8>, u64, u64)>,
    /// Sum of regular file sizes.
    size: u64,
}

/// Bytes fed to the recorder between checks of its segment size.
const FEED: usize = 64 << 10;

impl SealSink {
    fn new(writer: TarSplitWriter) -> Self {
        SealSink { rec: Recorder::new(writer), ahead: VecDeque::new(), size: 0 }
    }
    /// Starts the file records whose bodies begin at the current position.
    fn start_due(&mut self) -> io::Result<()> {
        while let Some((_, offset, _)) = self.ahead.front() {
            if *offset > self.rec.position() {
                break;
            }
            let (name, offset, size) = self.ahead.pop_front().unwrap_or_default();
            self.rec.file(&name, offset, size)?;
        }
        Ok(())
    }
}

impl TarSink for SealSink {
    type Done = (u64, u64);
    fn data(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        loop {
            self.start_due()?;
            if bytes.is_empty() {
                return Ok(());
            }
            let pos = self.rec.position();
            let until = self.ahead.front().map_or(u64::MAX, |(_, offset, _)| offset - pos);
            let k = bytes.len().min(FEED).min(usize::try_from(until).unwrap_or(usize::MAX));
            self.rec.feed(&bytes[..k]);
            self.rec.flush_if_large()?;
            bytes = &bytes[k..];
        }
    }
    fn file(&mut self, name: Vec<u8>, offset: u64, size: u64) -> io::Result<()> {
        self.size += size;
        let name = RelPath::parse(&name).map_err(io::Error::other)?;
        // Whiteout markers have no file in diff/ (there they are 0/0 char devices).
        if let Some(name) = name.filter(|n| !n.leaf().starts_with(b".wh.")) {
            self.ahead.push_back((name.as_bytes().to_vec(), offset, size));
            self.start_due()?;
        }
        Ok(())
    }
    fn finish(mut self) -> io::Result<(u64, u64)> {
        self.start_due()?;
        if !self.ahead.is_empty() {
            return Err(io::Error::other("tar-split: a file body announced past the end of the stream"));
        }
        Ok((self.rec.finish()?, self.size))
    }
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
        reassembles_as_the_commit_walker_writes(&diff, &ts, &sealed);
    }

    /// An overlay whiteout (a 0/0 character device) at `path`.
    fn whiteout(path: &Path) {
        let (cwd, chr) = (rustix::fs::CWD, rustix::fs::FileType::CharacterDevice);
        rustix::fs::mknodat(cwd, path, chr, rustix::fs::Mode::from_raw_mode(0o600), 0).unwrap();
    }

    /// The tar-split reassembles to the sealed DiffID, exactly the tar the commit walker
    /// writes for the same tree.
    fn reassembles_as_the_commit_walker_writes(diff: &Path, ts: &Path, sealed: &Sealed) {
        let mut out = Vec::new();
        let (id, len) = assemble(diff, ts, &mut out).unwrap();
        assert_eq!((id, len), (sealed.diff_id.clone(), sealed.tar_size));
        let mut plain = Vec::new();
        let st = crate::egress::layertar::write_dir_tar(
            diff,
            crate::egress::layertar::TarMode::Layer,
            &mut plain,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(st.diff_id, sealed.diff_id);
        assert_eq!(plain, out);
    }

    /// Hundreds of bodies of varied sizes, so headers and bodies straddle the walker's 256 KiB
    /// buffers at every kind of offset; whiteouts (a 0/0 device, an opaque dir, a regular file
    /// named like a marker) and empty files among them. Every regular file body is a file
    /// record (not segment bytes), and the tar-split reassembles to the DiffID.
    #[test]
    fn announced_bodies_at_every_buffer_offset_are_recorded_as_files() {
        use std::io::BufRead;
        let t = tempfile::tempdir().unwrap();
        let diff = t.path().join("diff");
        std::fs::create_dir_all(diff.join("gone")).unwrap();
        let mut want_files = 0;
        let mut want_size = 0u64;
        let mut seed = 7u64;
        for d in 0..6 {
            let dir = diff.join(format!("d{d}"));
            std::fs::create_dir(&dir).unwrap();
            for f in 0..80 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let len = if f % 17 == 0 { 0 } else { (seed >> 33) as usize % 40_000 };
                std::fs::write(dir.join(format!("f{f}")), vec![(f % 251) as u8; len]).unwrap();
                want_files += 1;
                want_size += len as u64;
            }
        }
        whiteout(&diff.join("d0/deleted"));
        rustix::fs::setxattr(diff.join("gone"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())
            .unwrap();
        std::fs::write(diff.join("d1/.wh.odd"), b"a body kept in the segments").unwrap();
        want_size += 27;
        let ts = t.path().join("ts.json.gz");
        let sealed = seal_layer(&diff, &ts, &AtomicBool::new(false)).unwrap();
        assert_eq!(sealed.size, want_size);
        let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(&ts).unwrap()));
        let files = lines.lines().filter(|l| l.as_ref().unwrap().contains("\"type\":1")).count();
        assert_eq!(files, want_files);
        reassembles_as_the_commit_walker_writes(&diff, &ts, &sealed);
    }

    /// A fixed tree (contents, modes, owners, times, xattrs, links, whiteouts, long names) seals
    /// to the DiffID and tar-split records it sealed to before the walker's buffers and the
    /// tar-split's batching changed: what sealing writes is part of every image ID.
    #[test]
    fn a_fixed_tree_seals_to_the_same_diff_id_and_records_as_before() {
        use rustix::fs::{Timespec, Timestamps};
        use std::io::Read;
        let t = tempfile::tempdir().unwrap();
        let diff = t.path().join("diff");
        std::fs::create_dir(&diff).unwrap();
        let mut dirs = vec![diff.clone()];
        let mut seed = 11u64;
        for d in 0..5 {
            let dir = diff.join(format!("m{d}"));
            std::fs::create_dir(&dir).unwrap();
            dirs.push(dir.clone());
            for f in 0..60 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let len = match f % 13 {
                    0 => 0,
                    1 => 511 + (f % 3),
                    2 => (256 << 10) + f - 30,
                    _ => (seed >> 35) as usize % 70_000,
                };
                let body: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + seed % 251) as u8).collect();
                std::fs::write(dir.join(format!("f{f:02}.txt")), body).unwrap();
            }
        }
        let long_dir = diff.join("d".repeat(120));
        std::fs::create_dir(&long_dir).unwrap();
        dirs.push(long_dir.clone());
        std::fs::write(long_dir.join("e".repeat(90)), b"split into prefix and name").unwrap();
        std::fs::write(long_dir.join("p".repeat(200)), b"a PAX path").unwrap();
        std::os::unix::fs::symlink("m0/f05.txt", diff.join("link")).unwrap();
        std::os::unix::fs::symlink("z".repeat(150), diff.join("longlink")).unwrap();
        std::fs::hard_link(diff.join("m1/f07.txt"), diff.join("hard")).unwrap();
        std::fs::write(diff.join("x.txt"), b"with xattrs").unwrap();
        rustix::fs::setxattr(diff.join("x.txt"), "user.b", &[b'v'; 300], rustix::fs::XattrFlags::empty()).unwrap();
        rustix::fs::setxattr(diff.join("x.txt"), "user.a", b"1", rustix::fs::XattrFlags::empty()).unwrap();
        rustix::fs::setxattr(diff.join("x.txt"), "trusted.overlay.origin", b"o", rustix::fs::XattrFlags::empty())
            .unwrap();
        whiteout(&diff.join("m2/gone"));
        std::fs::create_dir(diff.join("opq")).unwrap();
        dirs.push(diff.join("opq"));
        rustix::fs::setxattr(diff.join("opq"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())
            .unwrap();
        std::fs::write(diff.join("opq/.wh.odd"), b"a body kept in the segments").unwrap();
        std::os::unix::fs::chown(diff.join("m3/f01.txt"), Some(3_000_000), Some(1234)).unwrap();
        std::os::unix::fs::chown(diff.join("link"), Some(7), Some(8)).unwrap();
        let when = |sec: i64| Timestamps {
            last_access: Timespec { tv_sec: sec, tv_nsec: 0 },
            last_modification: Timespec { tv_sec: sec, tv_nsec: 500 },
        };
        let mut k = 0;
        let mut stamp = |p: &Path, flags| {
            k += 1;
            rustix::fs::utimensat(rustix::fs::CWD, p, &when(1_700_000_000 + k * 7), flags).unwrap();
        };
        for e in ["link", "longlink", "m2/gone", "x.txt", "hard"] {
            stamp(&diff.join(e), rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
        }
        for d in &dirs[1..] {
            for e in std::fs::read_dir(d).unwrap() {
                stamp(&e.unwrap().path(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
            }
        }
        for d in dirs.iter().rev() {
            stamp(d, rustix::fs::AtFlags::empty());
        }
        std::fs::set_permissions(diff.join("m4"), std::os::unix::fs::PermissionsExt::from_mode(0o2751)).unwrap();
        for d in [&diff, &diff.join("m4")] {
            stamp(d, rustix::fs::AtFlags::empty());
        }
        let ts = t.path().join("ts.json.gz");
        let sealed = seal_layer(&diff, &ts, &AtomicBool::new(false)).unwrap();
        let mut records = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&ts).unwrap()).read_to_end(&mut records).unwrap();
        let records = crate::digest::Digest::of(&records);
        assert_eq!(
            (sealed.diff_id.to_string(), sealed.tar_size, sealed.entries, records.to_string()),
            (
                "sha256:38891759408ce241b766fbeb9a5627dbcc209bb8505bb8489cd848ddc3a01508".to_string(),
                14422016,
                316,
                "sha256:de9061172dde735b812bb121ec1bf698675ec868e284e0d01aa5af52d2c60499".to_string()
            )
        );
        reassembles_as_the_commit_walker_writes(&diff, &ts, &sealed);
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
