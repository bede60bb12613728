//! A layer strata made itself (commit, import) becomes a gzip blob in one pass, for push:
//! tar-split reassembly (diff dir + `tar-split.json.gz`) → gzip → sha256 → the caller's
//! writer (the HTTP body, and the file that remembers the result for the next push).
//!
//! Compression is the slow step, so it runs on several threads: the assembled tar is cut into
//! blocks of [`BLOCK_SIZE`], each block is compressed as its own gzip member by a worker, and
//! the members are written in order. Concatenated members are one valid gzip stream (RFC 1952
//! §2.2; Go's `compress/gzip`, which Docker and containerd read with, and every other reader
//! here decode to the end), and a layer smaller than a block is a single ordinary member.
//! The output depends only on the tar and the level, never on timing or thread count, so the
//! same layer always gets the same compressed digest.
//!
//! The DiffID of the assembled tar is checked against the layer's: a layer whose files changed
//! since they were recorded never leaves as a blob under a digest that lies.
use crate::digest::{DiffId, Digest, Hasher};
use crate::ingest::tarsplit::{self, TarSplitError};
use flate2::write::GzEncoder;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Uncompressed bytes per gzip member.
pub const BLOCK_SIZE: usize = 4 << 20;
/// gzip level: zlib's default, what Docker's push uses (Go's `gzip.DefaultCompression`).
pub const LEVEL: u32 = 6;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum GzLayerError {
    #[error(transparent)]
    Assemble(#[from] TarSplitError),
    #[error("layer {expected}: its files assemble to {found}")]
    DiffIdMismatch { expected: String, found: String },
    #[error("writing the compressed layer: {source}")]
    Write { source: io::Error },
    #[error("compressing cancelled")]
    Aborted,
}

impl crate::error::Coded for GzLayerError {
    fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            GzLayerError::Assemble(e) => e.code(),
            GzLayerError::DiffIdMismatch { .. } => ErrorCode::DigestMismatch,
            GzLayerError::Write { .. } => ErrorCode::Io,
            GzLayerError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            GzLayerError::Assemble(e) => e.errno(),
            GzLayerError::Write { source } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            GzLayerError::Assemble(e) => e.path(),
            _ => None,
        }
    }
}

/// What one compression pass produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzBlob {
    /// sha256 of the gzip bytes: the blob's digest in a manifest.
    pub digest: Digest,
    /// Length of the gzip bytes.
    pub size: u64,
    /// Length of the uncompressed tar.
    pub tar_size: u64,
}

/// Cuts the assembled tar into blocks and hands them to the workers, numbered.
struct Blocks<'a> {
    buf: Vec<u8>,
    seq: u64,
    tx: &'a mpsc::SyncSender<(u64, Vec<u8>)>,
    /// Set when the output failed: assembling stops at the next block.
    stop: &'a AtomicBool,
}

impl Blocks<'_> {
    fn send(&mut self) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "compression stopped"));
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK_SIZE));
        self.tx
            .send((self.seq, block))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "compression stopped"))?;
        self.seq += 1;
        Ok(())
    }
}

impl Write for Blocks<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK_SIZE {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gzip_member(block: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(block.len() / 3 + 64), flate2::Compression::new(level));
    enc.write_all(block)?;
    enc.finish()
}

/// Compresses the layer (`diff_dir` + `tar_split`, which must assemble to `diff_id`) into
/// `out` with `workers` compressing threads (at least 1); polls `cancel`. `out` sees the
/// gzip bytes in order, each written once; nothing is written after an error.
pub fn compress_layer(
    diff_dir: &Path,
    tar_split: &Path,
    diff_id: &DiffId,
    out: &mut dyn Write,
    workers: usize,
    cancel: &AtomicBool,
) -> Result<GzBlob, GzLayerError> {
    let workers = workers.max(1);
    // Blocks in flight are bounded: memory stays at a few blocks per worker, whatever the layer's size.
    let (block_tx, block_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(workers);
    let block_rx = std::sync::Mutex::new(block_rx);
    let (member_tx, member_rx) = mpsc::sync_channel::<(u64, io::Result<Vec<u8>>)>(workers * 2);
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut blocks = Blocks { buf: Vec::with_capacity(BLOCK_SIZE), seq: 0, tx: &block_tx, stop: &stop };
            let r = tarsplit::assemble_cancellable(diff_dir, tar_split, &mut blocks, Some(cancel));
            let r = match r {
                Ok(v) if !blocks.buf.is_empty() || blocks.seq == 0 => {
                    blocks.send().map(|()| v).map_err(|source| TarSplitError::Write { source })
                }
                other => other,
            };
            drop(blocks);
            drop(block_tx);
            r
        });
        for _ in 0..workers {
            let member_tx = member_tx.clone();
            let block_rx = &block_rx;
            let stop = &stop;
            s.spawn(move || loop {
                let next = block_rx.lock().map(|rx| rx.recv());
                let Ok(Ok((seq, block))) = next else { return };
                if stop.load(Ordering::Relaxed) {
                    continue; // drain, so the producer never blocks on a full channel
                }
                if member_tx.send((seq, gzip_member(&block, LEVEL))).is_err() {
                    return;
                }
            });
        }
        drop(member_tx);

        // Members arrive out of order; write them in order.
        let mut hasher = Hasher::new();
        let mut pending: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut next = 0u64;
        let mut failure: Option<GzLayerError> = None;
        for (seq, member) in member_rx.iter() {
            if failure.is_some() {
                continue;
            }
            if cancel.load(Ordering::Relaxed) {
                failure = Some(GzLayerError::Aborted);
                stop.store(true, Ordering::Relaxed);
                continue;
            }
            match member {
                Ok(m) => {
                    pending.insert(seq, m);
                }
                Err(source) => {
                    failure = Some(GzLayerError::Write { source });
                    stop.store(true, Ordering::Relaxed);
                    continue;
                }
            }
            while let Some(m) = pending.remove(&next) {
                if let Err(source) = out.write_all(&m) {
                    failure = Some(GzLayerError::Write { source });
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                hasher.update(&m);
                next += 1;
            }
        }
        let assembled = producer
            .join()
            .unwrap_or_else(|_| Err(TarSplitError::Write { source: io::Error::other("assembler panicked") }));
        // The assembler's own failure explains a stop better than a broken channel does.
        let (found, tar_size) = match (assembled, failure) {
            (Err(TarSplitError::Aborted), _) => return Err(GzLayerError::Aborted),
            (_, Some(f)) => return Err(f),
            (Err(e), None) => return Err(e.into()),
            (Ok(v), None) => v,
        };
        if &found != diff_id {
            return Err(GzLayerError::DiffIdMismatch { expected: diff_id.to_string(), found: found.to_string() });
        }
        out.flush().map_err(|source| GzLayerError::Write { source })?;
        let size = hasher.len();
        Ok(GzBlob { digest: hasher.finish(), size, tar_size })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::layer::{apply_layer, ApplyRequest, BlobSource};
    use std::io::Read;

    /// Builds a layer (diff dir + tar-split) from a tar made with the `tar` crate.
    fn layer_of(
        files: &[(&str, Vec<u8>)],
    ) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, DiffId, Vec<u8>) {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let diff = dir.path().join("diff");
        let ts = dir.path().join("tar-split.json.gz");
        let blob = dir.path().join("layer.tar");
        std::fs::write(&blob, &tar).unwrap();
        let req = ApplyRequest {
            source: BlobSource { path: blob, offset: 0, length: None },
            dest: diff.clone(),
            tar_split: ts.clone(),
            expected_diff_id: None,
            expected_digest: None,
        };
        let applied = apply_layer(&req, &|_| {}, &AtomicBool::new(false)).unwrap();
        (dir, diff, ts, applied.diff_id, tar)
    }

    fn gunzip_all(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn big_layers_become_ordered_members_that_decode_to_the_tar() {
        let big: Vec<u8> = (0..(BLOCK_SIZE * 2 + 12345)).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect();
        let (_d, diff, ts, diff_id, tar) = layer_of(&[("a", big), ("b", b"hello".to_vec())]);
        let none = AtomicBool::new(false);
        let mut one = Vec::new();
        let r1 = compress_layer(&diff, &ts, &diff_id, &mut one, 1, &none).unwrap();
        let mut three = Vec::new();
        let r3 = compress_layer(&diff, &ts, &diff_id, &mut three, 3, &none).unwrap();
        assert_eq!(one, three, "the output does not depend on the number of workers");
        assert_eq!(r1, r3);
        assert_eq!(r1.digest, Digest::of(&one));
        assert_eq!(r1.size, one.len() as u64);
        assert_eq!(r1.tar_size, tar.len() as u64);
        assert_eq!(gunzip_all(&one), tar);
    }

    #[test]
    fn small_layers_are_one_plain_member() {
        let (_d, diff, ts, diff_id, tar) = layer_of(&[("x", b"1".to_vec())]);
        let mut out = Vec::new();
        compress_layer(&diff, &ts, &diff_id, &mut out, 2, &AtomicBool::new(false)).unwrap();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, tar);
    }

    #[test]
    fn a_changed_file_is_a_digest_mismatch_and_cancel_aborts() {
        let (_d, diff, ts, diff_id, _) = layer_of(&[("x", b"abc".to_vec())]);
        std::fs::write(diff.join("x"), b"abd").unwrap();
        let mut out = Vec::new();
        let e = compress_layer(&diff, &ts, &diff_id, &mut out, 2, &AtomicBool::new(false)).unwrap_err();
        // The tar-split's CRC of the file catches it before the DiffID would.
        assert_eq!(crate::error::Coded::code(&e), crate::error::ErrorCode::DigestMismatch, "{e}");
        std::fs::write(diff.join("x"), b"abc").unwrap();
        let other = DiffId::of(b"another layer");
        let e = compress_layer(&diff, &ts, &other, &mut Vec::new(), 2, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(e, GzLayerError::DiffIdMismatch { .. }), "{e}");
        let e = compress_layer(&diff, &ts, &diff_id, &mut out, 2, &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(e, GzLayerError::Aborted), "{e}");
    }

    #[test]
    fn a_failing_writer_stops_everything() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer went away"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let big: Vec<u8> = (0..BLOCK_SIZE * 3).map(|i| (i * 7 % 253) as u8).collect();
        let (_d, diff, ts, diff_id, _) = layer_of(&[("a", big)]);
        let e = compress_layer(&diff, &ts, &diff_id, &mut Broken, 2, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(e, GzLayerError::Write { .. }), "{e}");
    }
}
