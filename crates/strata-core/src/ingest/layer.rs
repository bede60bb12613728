//! The layer pipeline: one streaming pass per layer, blob → extracted `diff/` + tar-split.
//!
//! ```text
//! blob file [offset, +length) ─ sha256 (compressed digest) ─ decompress (auto) ─
//!     sha256 (DiffID) ─ tar-split recorder ─ tar parser ─ safe extraction into dest/
//! ```
//!
//! The blob can sit inside an outer archive (docker-archive / OCI tar): a source is a path,
//! an offset and an optional length, so several layers of one file are read in parallel.
//! The stream is read to its very end (trailing bytes count in both digests). Expected
//! digests are verified before success is reported; on *any* error the destination and
//! the tar-split file are removed completely, so no half-extracted layer is left behind.
//!
//! It must not register layers nor write layer-db metadata (TypeScript does), and leaves
//! nothing behind when it fails.
use crate::digest::{BlobDigest, DiffId, Digest, Hasher, HashingReader};
use crate::error::ErrorCode;
use crate::ingest::compress::{Compression, Decompressor};
use crate::ingest::extract::{self, ExtractError, Paths};
use crate::ingest::stream::Fault;
use crate::ingest::tarsplit::{Recorder, TarSplitWriter};
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Progress callbacks fire at most once per this many blob bytes (and at the end).
const PROGRESS_STEP: u64 = 1 << 20;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Compress(#[from] crate::ingest::compress::CompressError),
    /// A digest did not match what the caller expected.
    #[error("{what} mismatch: expected {expected}, found {found}")]
    DigestMismatch { what: &'static str, expected: Digest, found: Digest },
    /// The blob ended before its declared length.
    #[error("blob {path} is {found} bytes, shorter than the declared {expected}")]
    ShortBlob { path: PathBuf, expected: u64, found: u64 },
    /// The destination (or tar-split file) already exists.
    #[error("{path} already exists")]
    Exists { path: PathBuf },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// Cancelled by the caller, or because another layer of the same batch failed.
    #[error("layer apply cancelled")]
    Aborted,
}

impl crate::error::Coded for LayerError {
    fn code(&self) -> ErrorCode {
        match self {
            LayerError::Extract(e) => e.code(),
            LayerError::Compress(e) => e.code(),
            LayerError::DigestMismatch { .. } => ErrorCode::DigestMismatch,
            LayerError::ShortBlob { .. } => ErrorCode::CorruptArchive,
            LayerError::Exists { .. } => ErrorCode::Conflict,
            LayerError::Io { .. } => ErrorCode::Io,
            LayerError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            LayerError::Extract(e) => e.errno(),
            LayerError::Compress(e) => e.errno(),
            LayerError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            LayerError::Extract(e) => e.path(),
            LayerError::Compress(e) => e.path(),
            LayerError::ShortBlob { path, .. } | LayerError::Exists { path } | LayerError::Io { path, .. } => {
                Some(path.display().to_string())
            }
            _ => None,
        }
    }
}

use crate::error::Coded as _;

impl From<ExtractError> for Box<LayerError> {
    fn from(e: ExtractError) -> Self {
        Box::new(LayerError::Extract(e))
    }
}

/// Where a layer blob is: `length` bytes (to end of file if `None`) at `offset` of `path`.
#[derive(Clone, Debug)]
pub struct BlobSource {
    pub path: PathBuf,
    pub offset: u64,
    pub length: Option<u64>,
}

/// One layer to apply.
#[derive(Clone, Debug)]
pub struct ApplyRequest {
    pub source: BlobSource,
    /// The layer's `diff/`; must not exist, created by the apply.
    pub dest: PathBuf,
    /// Where to write `tar-split.json.gz`; must not exist.
    pub tar_split: PathBuf,
    pub expected_diff_id: Option<DiffId>,
    /// Expected sha256 of the blob as stored (the compressed digest).
    pub expected_digest: Option<BlobDigest>,
}

/// What applying a layer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyResult {
    /// sha256 of the uncompressed tar.
    pub diff_id: DiffId,
    /// sha256 of the blob as read.
    pub digest: BlobDigest,
    pub compression: Compression,
    /// Sum of regular file sizes (Docker's layer `size`).
    pub size: u64,
    /// Length of the uncompressed tar.
    pub tar_size: u64,
    /// Blob bytes read.
    pub blob_size: u64,
    /// Tar entries.
    pub entries: u64,
}

/// Cancellation from the caller and from the rest of a parallel batch.
#[derive(Clone, Copy)]
struct Cancel<'a> {
    caller: &'a AtomicBool,
    batch: Option<&'a AtomicBool>,
}

impl Cancel<'_> {
    fn is_set(&self) -> bool {
        self.caller.load(Ordering::Relaxed) || self.batch.is_some_and(|b| b.load(Ordering::Relaxed))
    }
}

/// The raw source: hashes (compressed digest), reports progress, polls cancellation and
/// tags its own I/O errors so they are not mistaken for a corrupt stream. `run` turns the
/// hashing off once the stream proves uncompressed: its digest is then the DiffID.
struct SourceReader<'a, R> {
    inner: R,
    remaining: Option<u64>,
    hasher: Hasher,
    hashing: &'a Cell<bool>,
    read: u64,
    progress: &'a (dyn Fn(u64) + Sync),
    reported: u64,
    cancel: Cancel<'a>,
}

impl<R: Read> Read for SourceReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_set() {
            return Err(Fault::Aborted.into_io());
        }
        let want = match self.remaining {
            Some(r) => buf.len().min(usize::try_from(r).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = if want == 0 && !buf.is_empty() {
            0
        } else {
            loop {
                match self.inner.read(&mut buf[..want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r.map_err(|e| Fault::Source(e).into_io())?,
                }
            }
        };
        if let Some(r) = &mut self.remaining {
            *r -= n as u64;
        }
        if self.hashing.get() {
            self.hasher.update(&buf[..n]);
        }
        self.read += n as u64;
        let total = self.read;
        if n == 0 || total - self.reported >= PROGRESS_STEP {
            if total != self.reported {
                (self.progress)(total);
            }
            self.reported = total;
        }
        Ok(n)
    }
}

/// Removes whatever an apply created, ignoring errors (best effort on the error path).
pub(crate) fn cleanup(req_dest: &Path, tar_split: &Path) {
    if req_dest.symlink_metadata().is_ok() {
        let _ = std::fs::remove_dir_all(req_dest);
    }
    let _ = std::fs::remove_file(tar_split);
}

/// Creates the destination and the tar-split file; neither may exist.
fn create_outputs(dest: &Path, tar_split: &Path) -> Result<TarSplitWriter, LayerError> {
    if tar_split.symlink_metadata().is_ok() {
        return Err(LayerError::Exists { path: tar_split.into() });
    }
    std::fs::create_dir(dest).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            LayerError::Exists { path: dest.into() }
        } else {
            LayerError::Io { op: "mkdir", path: dest.into(), source }
        }
    })?;
    TarSplitWriter::create(tar_split).map_err(|source| {
        let _ = std::fs::remove_dir(dest);
        if source.kind() == io::ErrorKind::AlreadyExists {
            LayerError::Exists { path: tar_split.into() }
        } else {
            LayerError::Io { op: "create", path: tar_split.into(), source }
        }
    })
}

/// Whether `run` computes the DiffID: `Elsewhere` when the producer of the stream hashes it
/// (commit's walker, on another core), so the extractor's thread does not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TarHash {
    Here,
    Elsewhere,
}

/// Threads creating small files for one extraction (the extractor's file pool) when it runs alone
/// (commit); a batch of layers (`apply_layers`) already keeps the CPUs busy with one
/// extraction per layer.
const WRITERS_ALONE: usize = 2;

/// Runs decompress → DiffID → record → extract over `source` into the (created) dest. With
/// `TarHash::Elsewhere` the returned `diff_id` and `digest` are those of empty input. `paths`:
/// a layer (load, pull, import) refuses a repeated path as Docker does; a plain archive
/// (build `ADD`, commit's own walk) lets the later entry win.
#[allow(clippy::too_many_arguments)]
fn run<R: Read>(
    source: SourceReader<'_, R>,
    dest: &Path,
    tar_split: &Path,
    writer: TarSplitWriter,
    cancel: Cancel<'_>,
    tar_hash: TarHash,
    writers: usize,
    paths: Paths,
) -> Result<ApplyResult, LayerError> {
    let hashing = source.hashing;
    let mut dec = Decompressor::new(BufReader::with_capacity(1 << 20, source)).map_err(LayerError::Compress)?;
    let compression = dec.compression();
    // An uncompressed blob's digest is its DiffID: one sha256 pass is enough.
    hashing.set(compression != Compression::None && tar_hash == TarHash::Here);
    let recorder = Recorder::new(writer);
    let (diff_id, tar_size, stats) = {
        let hashed =
            if tar_hash == TarHash::Here { HashingReader::new(&mut dec) } else { HashingReader::passthrough(&mut dec) };
        let mut recording = recorder.reader(hashed);
        // extract() polls the caller's flag; the batch flag is seen by the source reader.
        let stats =
            extract::extract(&mut recording, dest, Some(&recorder), cancel.caller, writers, paths).map_err(|e| match e {
                ExtractError::Aborted => LayerError::Aborted,
                e => LayerError::Extract(e),
            })?;
        let tar_size =
            recorder.finish().map_err(|source| LayerError::Io { op: "write", path: tar_split.into(), source })?;
        let (_, h) = recording.into_inner().into_parts();
        (DiffId::from_digest(h.finish()), tar_size, stats)
    };
    dec.drain_source().map_err(|e| match crate::ingest::stream::fault_of(&e) {
        Some(Fault::Aborted) => LayerError::Aborted,
        _ => LayerError::Compress(crate::ingest::compress::stream_error(e, "blob")),
    })?;
    let source = dec.into_source().into_inner();
    let blob_size = source.read;
    let digest = BlobDigest::from_digest(if compression == Compression::None {
        diff_id.digest().clone()
    } else {
        source.hasher.finish()
    });
    Ok(ApplyResult { diff_id, digest, compression, size: stats.size, tar_size, blob_size, entries: stats.entries })
}

fn verify(result: &ApplyResult, req: &ApplyRequest) -> Result<(), LayerError> {
    if let Some(length) = req.source.length {
        if result.blob_size != length {
            return Err(LayerError::ShortBlob {
                path: req.source.path.clone(),
                expected: length,
                found: result.blob_size,
            });
        }
    }
    check_digests(result, req.expected_digest.as_ref(), req.expected_diff_id.as_ref())
}

/// The blob digest, then the DiffID, against what the caller expects.
fn check_digests(
    result: &ApplyResult,
    digest: Option<&BlobDigest>,
    diff_id: Option<&DiffId>,
) -> Result<(), LayerError> {
    let pairs = [
        ("digest", digest.map(BlobDigest::digest), result.digest.digest()),
        ("diff_id", diff_id.map(DiffId::digest), result.diff_id.digest()),
    ];
    for (what, expected, found) in pairs {
        if let Some(exp) = expected {
            if exp != found {
                return Err(LayerError::DigestMismatch { what, expected: exp.clone(), found: found.clone() });
            }
        }
    }
    Ok(())
}

fn apply_one(
    req: &ApplyRequest,
    progress: &(dyn Fn(u64) + Sync),
    cancel: Cancel<'_>,
    sync: bool,
) -> Result<ApplyResult, LayerError> {
    if cancel.is_set() {
        return Err(LayerError::Aborted);
    }
    let src = &req.source;
    let mut file =
        File::open(&src.path).map_err(|source| LayerError::Io { op: "open", path: src.path.clone(), source })?;
    file.seek(SeekFrom::Start(src.offset)).map_err(|source| LayerError::Io {
        op: "seek",
        path: src.path.clone(),
        source,
    })?;
    let writer = create_outputs(&req.dest, &req.tar_split)?;
    let hashing = Cell::new(true);
    let source = SourceReader {
        inner: file,
        remaining: src.length,
        hasher: Hasher::new(),
        hashing: &hashing,
        read: 0,
        progress,
        reported: 0,
        cancel,
    };
    let r = run(source, &req.dest, &req.tar_split, writer, cancel, TarHash::Here, 0, Paths::Unique).and_then(|result| {
        verify(&result, req)?;
        if sync {
            sync_dir(&req.dest)?;
        }
        Ok(result)
    });
    if r.is_err() {
        cleanup(&req.dest, &req.tar_split);
    }
    r.map_err(|e| if cancel.is_set() && !matches!(e, LayerError::DigestMismatch { .. }) { aborted_or(e) } else { e })
}

/// A failure caused by cancellation shows up as `Aborted` whatever layer noticed it.
fn aborted_or(e: LayerError) -> LayerError {
    match e.code() {
        ErrorCode::Aborted | ErrorCode::Io | ErrorCode::CorruptArchive => LayerError::Aborted,
        _ => e,
    }
}

/// How many layers [`apply_layers`] works on at once: three per CPU, at least four.
pub fn max_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_mul(3).max(4)
}

/// One `syncfs` per file system holding any of `dirs`.
pub fn sync_filesystems<'a>(dirs: impl Iterator<Item = &'a Path>) -> Result<(), LayerError> {
    let mut done = Vec::new();
    for d in dirs {
        let dev = std::fs::metadata(d).map_err(|source| LayerError::Io { op: "stat", path: d.into(), source })?.dev();
        if !done.contains(&dev) {
            sync_dir(d)?;
            done.push(dev);
        }
    }
    Ok(())
}

/// syncfs on the new layer: one call makes all its files durable before it is committed.
fn sync_dir(dest: &Path) -> Result<(), LayerError> {
    let f = File::open(dest).map_err(|source| LayerError::Io { op: "open", path: dest.into(), source })?;
    rustix::fs::syncfs(&f).map_err(|e| LayerError::Io { op: "syncfs", path: dest.into(), source: e.into() })
}

/// Applies one layer blob (see the module docs). `progress` gets the blob bytes read so
/// far (cumulative, at most once per MiB and at the end); `cancel` aborts with `Aborted`.
pub fn apply_layer(
    req: &ApplyRequest,
    progress: &(dyn Fn(u64) + Sync),
    cancel: &AtomicBool,
) -> Result<ApplyResult, LayerError> {
    apply_one(req, progress, Cancel { caller: cancel, batch: None }, true)
}

/// Applies several layers in parallel. The first failure cancels the others; on any
/// failure every destination and tar-split of the batch is removed and the first real
/// (non-`Aborted`) error is returned. `progress(index, bytes)` as in [`apply_layer`].
///
/// Each layer runs on a thread of its own (up to [`max_workers`] at once, largest blob
/// first), not on a pool sized to the CPUs: a layer thread blocks in direct writes and the
/// file system, and another layer's decompression fills that time. One `syncfs` per file
/// system at the end makes the whole batch durable before success is returned.
pub fn apply_layers(
    reqs: &[ApplyRequest],
    progress: &(dyn Fn(usize, u64) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<ApplyResult>, LayerError> {
    let batch = AtomicBool::new(false);
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(reqs[i].source.length.unwrap_or(u64::MAX)));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<ApplyResult, LayerError>>>> = reqs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..max_workers().min(reqs.len()) {
            scope.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let p = |bytes: u64| progress(i, bytes);
                    let r = apply_one(&reqs[i], &p, Cancel { caller: cancel, batch: Some(&batch) }, false);
                    if r.is_err() {
                        batch.store(true, Ordering::SeqCst);
                    }
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    let results: Vec<Result<ApplyResult, LayerError>> = slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).unwrap_or(Err(LayerError::Aborted)))
        .collect();
    if results.iter().all(Result::is_ok) {
        return match sync_filesystems(reqs.iter().map(|r| r.dest.as_path())) {
            Ok(()) => Ok(results.into_iter().map(Result::unwrap).collect()),
            Err(e) => {
                for req in reqs {
                    cleanup(&req.dest, &req.tar_split);
                }
                Err(e)
            }
        };
    }
    for (req, r) in reqs.iter().zip(&results) {
        if r.is_ok() {
            cleanup(&req.dest, &req.tar_split);
        }
    }
    let mut first_abort = None;
    for r in results {
        match r {
            Err(LayerError::Aborted) => first_abort = first_abort.or(Some(LayerError::Aborted)),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(first_abort.unwrap_or(LayerError::Aborted))
}

/// Applies an uncompressed (or auto-detected compressed) tar read from `r`. `digest` of the
/// result is the sha256 of the bytes as read. An archive, not an image layer: a path named
/// twice is taken from its later entry ([`Paths::Repeatable`], as Docker's untar for `ADD`).
pub fn apply_tar_stream<R: Read>(
    r: R,
    dest: &Path,
    tar_split: &Path,
    cancel: &AtomicBool,
) -> Result<ApplyResult, LayerError> {
    apply_stream(r, dest, tar_split, cancel, TarHash::Here)
}

/// A layer blob read from any reader (a registry's response body, ...), as [`apply_layer`]
/// does it for a file: one pass, digests checked (`expected_digest` against the bytes as read,
/// `expected_diff_id` against the tar), `progress` every MiB, everything removed on failure.
/// With `sync: false` the caller makes the batch durable ([`sync_filesystems`]). `writers`
/// threads create the layer's small files ([`crate::ingest::extract::filepool`]) while this
/// one decompresses, hashes and parses: a layer of many small files is the critical path of a
/// pull, and its thread would otherwise wait in the file system for every one of them.
#[allow(clippy::too_many_arguments)]
pub fn apply_reader<R: Read>(
    r: R,
    dest: &Path,
    tar_split: &Path,
    expected_digest: Option<&BlobDigest>,
    expected_diff_id: Option<&DiffId>,
    progress: &(dyn Fn(u64) + Sync),
    cancel: &AtomicBool,
    sync: bool,
    writers: usize,
) -> Result<ApplyResult, LayerError> {
    let writer = create_outputs(dest, tar_split)?;
    let c = Cancel { caller: cancel, batch: None };
    let hashing = Cell::new(true);
    let source = SourceReader {
        inner: r,
        remaining: None,
        hasher: Hasher::new(),
        hashing: &hashing,
        read: 0,
        progress,
        reported: 0,
        cancel: c,
    };
    let res = run(source, dest, tar_split, writer, c, TarHash::Here, writers, Paths::Unique).and_then(|result| {
        check_digests(&result, expected_digest, expected_diff_id)?;
        if sync {
            sync_dir(dest)?;
        }
        Ok(result)
    });
    if res.is_err() {
        cleanup(dest, tar_split);
    }
    res
}

/// What [`extract_tar_stream`] found: [`ApplyResult`] without the hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractedTar {
    /// Sum of regular file sizes (Docker's layer `size`).
    pub size: u64,
    /// Length of the tar.
    pub tar_size: u64,
    /// Tar entries.
    pub entries: u64,
}

/// [`apply_tar_stream`] for a plain tar whose producer hashes it itself (commit's walker, on
/// another core): records and extracts without computing the DiffID on this thread.
pub fn extract_tar_stream<R: Read>(
    r: R,
    dest: &Path,
    tar_split: &Path,
    cancel: &AtomicBool,
) -> Result<ExtractedTar, LayerError> {
    let r = apply_stream(r, dest, tar_split, cancel, TarHash::Elsewhere)?;
    Ok(ExtractedTar { size: r.size, tar_size: r.tar_size, entries: r.entries })
}

fn apply_stream<R: Read>(
    r: R,
    dest: &Path,
    tar_split: &Path,
    cancel: &AtomicBool,
    tar_hash: TarHash,
) -> Result<ApplyResult, LayerError> {
    let writer = create_outputs(dest, tar_split)?;
    let c = Cancel { caller: cancel, batch: None };
    let hashing = Cell::new(tar_hash == TarHash::Here);
    let source = SourceReader {
        inner: r,
        remaining: None,
        hasher: Hasher::new(),
        hashing: &hashing,
        read: 0,
        progress: &|_| {},
        reported: 0,
        cancel: c,
    };
    let res = run(source, dest, tar_split, writer, c, tar_hash, WRITERS_ALONE, Paths::Repeatable).and_then(|r| {
        sync_dir(dest)?;
        Ok(r)
    });
    if res.is_err() {
        cleanup(dest, tar_split);
    }
    res
}
