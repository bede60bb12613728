//! tar-split: what it takes to reproduce a layer's tar byte for byte from its `diff/`.
//!
//! A layer is stored extracted, but `docker save` / `push` must hand out the *exact* tar
//! whose sha256 is the DiffID. Like Docker's tar-split, extraction records every byte of
//! the uncompressed stream that is not a regular file's body, and, in place of each body,
//! the path it was written to. Assembling reads the records back and splices in the bodies
//! from `diff/`.
//!
//! # Format of `tar-split.json.gz`
//!
//! A gzip stream of newline-delimited JSON objects, in stream order:
//!
//! * `{"type":2,"payload":"<base64>","position":N}` — a *segment*: raw bytes copied as-is.
//!   Segments hold every header block (including PAX `x`/`g` and GNU `L`/`K` extension
//!   headers and their data), the padding after bodies, the bodies of entries that are not
//!   written to `diff/` (whiteout markers, aufs metadata), the end-of-archive blocks and
//!   any bytes after them. Long runs are split into segments of at most 1 MiB.
//! * `{"type":1,"name":"<path>","size":N,"payload":"<base64>","position":N}` — a *file
//!   body*: `size` bytes read from `diff/<path>`. `path` is the normalised entry name (no
//!   leading `./`). When the name is not UTF-8, `name` is a lossy rendering for humans and
//!   `"name_raw"` holds the raw bytes in base64; readers use `name_raw` when present.
//!   `payload` (only when `size > 0`) is the CRC-64/ISO of the body, 8 bytes big-endian.
//!
//! `position` is the record's sequence number. Standard base64 with padding. This is the
//! record shape of Docker's tar-split (vbatts/tar-split `storage.Entry`), so Docker's own
//! `tar-split.json.gz` files assemble here and ours in Docker.
//!
//! Assembling verifies each body's file is a regular file of exactly `size` bytes with the
//! recorded CRC, reading it fd-relative below `diff/` without following symlinks; the
//! caller checks the DiffID.
//! A body whose file was later replaced by a duplicate entry of the same layer cannot be
//! reproduced (the file on disk holds the last copy); the DiffID check catches that.
//!
//! It must not trust a tar-split file: names are checked as the extractor checks them, and the
//! bodies must match their recorded sizes and CRC-64s.
use crate::digest::{DiffId, Hasher};
use crate::error::ErrorCode;
use crate::ingest::safefs::{self, RelPath};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rustix::fd::AsFd;
use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Segment records are cut at this size so recording never holds much in memory.
const MAX_SEGMENT: usize = 1 << 20;
const TYPE_FILE: u8 = 1;
const TYPE_SEGMENT: u8 = 2;

/// Running CRC-64/ISO of a file body (Go's `crc64.MakeTable(crc64.ISO)`, what tar-split
/// stores as each file's `payload`). Every file body of every layer goes through this, so it
/// uses `crc-fast`'s carry-less-multiply folding (PCLMULQDQ/VPCLMULQDQ, chosen at run time):
/// slicing-by-8 tables were still ~8 % of `load`'s CPU.
#[derive(Clone)]
struct Crc(crc_fast::Digest);

impl Default for Crc {
    fn default() -> Self {
        Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64GoIso))
    }
}

impl Crc {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn bytes(&self) -> [u8; 8] {
        self.0.finalize().to_be_bytes()
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum TarSplitError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("writing the assembled tar: {source}")]
    Write { source: io::Error },
    #[error("corrupt tar-split {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("unsafe name {entry:?} in tar-split: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("layer file {entry:?} does not match its tar-split record: {reason}")]
    Mismatch { entry: String, reason: String },
    #[error("assembling cancelled")]
    Aborted,
}

impl crate::error::Coded for TarSplitError {
    fn code(&self) -> ErrorCode {
        match self {
            TarSplitError::Io { .. } | TarSplitError::Write { .. } => ErrorCode::Io,
            TarSplitError::Corrupt { .. } => ErrorCode::CorruptArchive,
            TarSplitError::Unsafe { .. } => ErrorCode::UnsafeLayerEntry,
            // The layer's files no longer reproduce the tar its DiffID names.
            TarSplitError::Mismatch { .. } => ErrorCode::DigestMismatch,
            TarSplitError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            TarSplitError::Io { source, .. } | TarSplitError::Write { source } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            TarSplitError::Io { path, .. } | TarSplitError::Corrupt { path, .. } => Some(path.display().to_string()),
            TarSplitError::Unsafe { entry, .. } | TarSplitError::Mismatch { entry, .. } => Some(entry.clone()),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Record {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(default)]
    position: u64,
}

/// Writes `tar-split.json.gz` records.
pub struct TarSplitWriter {
    enc: flate2::write::GzEncoder<BufWriter<File>>,
    /// Records not yet compressed: the encoder takes them in large writes (a write per record
    /// ran the compressor — and its CRC-32 — on a few hundred bytes at a time: ~5 % of a
    /// seal's CPU for 1,000 files). The compressed bytes differ from those small writes
    /// made (deflate's blocks fall elsewhere); the records do not.
    lines: Vec<u8>,
    position: u64,
    /// Whether `finish` fsyncs the file.
    sync: bool,
}

/// Records gathered before they go to the compressor.
const LINES: usize = 64 << 10;

impl TarSplitWriter {
    /// Creates `path` (which must not exist); `finish` fsyncs it.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::open(path, true)
    }
    /// Creates `path` (which must not exist) for a caller that makes it durable itself, with
    /// other files in one barrier (a build step's seal: the layer store's register fsyncs the
    /// tar-split with the rest of the layer db entry before the entry is renamed into place).
    pub fn create_unsynced(path: &Path) -> io::Result<Self> {
        Self::open(path, false)
    }
    fn open(path: &Path, sync: bool) -> io::Result<Self> {
        let f = File::options().write(true).create_new(true).open(path)?;
        let enc = flate2::write::GzEncoder::new(BufWriter::with_capacity(256 << 10, f), flate2::Compression::fast());
        Ok(TarSplitWriter { enc, lines: Vec::with_capacity(LINES * 2), position: 0, sync })
    }
    /// Hands the gathered records to the compressor once there are enough of them.
    fn flush_if_large(&mut self) -> io::Result<()> {
        if self.lines.len() >= LINES {
            self.enc.write_all(&self.lines)?;
            self.lines.clear();
        }
        Ok(())
    }
    fn segment(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        write!(self.lines, "{{\"type\":{TYPE_SEGMENT},\"payload\":\"")?;
        let at = self.lines.len();
        self.lines.resize(at + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
        let n = B64.encode_slice(bytes, &mut self.lines[at..]).map_err(io::Error::other)?;
        self.lines.truncate(at + n);
        writeln!(self.lines, "\",\"position\":{}}}", self.position)?;
        self.position += 1;
        self.flush_if_large()
    }
    fn file(&mut self, f: &PendingFile) -> io::Result<()> {
        let utf8 = std::str::from_utf8(&f.name).is_ok();
        let rec = Record {
            kind: TYPE_FILE,
            name: Some(String::from_utf8_lossy(&f.name).into_owned()),
            name_raw: if utf8 { None } else { Some(B64.encode(&f.name)) },
            size: Some(f.size),
            // As tar-split: a checksum only for non-empty bodies.
            payload: if f.size > 0 { Some(B64.encode(f.crc.bytes())) } else { None },
            position: self.position,
        };
        serde_json::to_writer(&mut self.lines, &rec)?;
        self.lines.push(b'\n');
        self.position += 1;
        self.flush_if_large()
    }
    /// Finishes the gzip stream and, unless made by `create_unsynced`, fsyncs the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.enc.write_all(&self.lines)?;
        let buf = self.enc.finish()?;
        let f = buf.into_inner().map_err(|e| e.into_error())?;
        if self.sync {
            f.sync_all()?;
        }
        Ok(())
    }
}

/// A file record whose body is still streaming past (its CRC is not known yet).
struct PendingFile {
    name: Vec<u8>,
    size: u64,
    crc: Crc,
}

struct State {
    pos: u64,
    pending: Option<PendingFile>,
    /// Bytes before this offset belong to a file body and are not captured.
    skip_to: u64,
    seg: Vec<u8>,
    out: Option<TarSplitWriter>,
}

/// Records a tar stream while it is being extracted. Cheap to clone (shared state): one
/// handle goes into the [`RecordingReader`] under the tar parser, the extractor keeps
/// another to announce file bodies.
#[derive(Clone)]
pub struct Recorder(Rc<RefCell<State>>);

impl Recorder {
    /// A recorder writing to `out`.
    pub fn new(out: TarSplitWriter) -> Self {
        Recorder(Rc::new(RefCell::new(State { pos: 0, pending: None, skip_to: 0, seg: Vec::new(), out: Some(out) })))
    }
    /// Wraps the uncompressed stream so every byte read is seen by the recorder.
    pub fn reader<R: Read>(&self, inner: R) -> RecordingReader<R> {
        RecordingReader { inner, rec: self.clone() }
    }
    /// Bytes of the stream read so far.
    pub fn position(&self) -> u64 {
        self.0.borrow().pos
    }
    /// Announces that the `size` bytes at stream offset `offset` (which must be the current
    /// position: the tar parser never reads ahead) are the body of `name` in `diff/`.
    pub fn file(&self, name: &[u8], offset: u64, size: u64) -> io::Result<()> {
        let mut st = self.0.borrow_mut();
        if st.pos != offset {
            return Err(io::Error::other(format!("tar-split out of sync: at {} but body starts at {offset}", st.pos)));
        }
        st.write_out()?;
        st.pending = Some(PendingFile { name: name.to_vec(), size, crc: Crc::default() });
        st.skip_to = offset + size;
        Ok(())
    }
    /// Writes out the pending segment if it has grown large.
    pub fn flush_if_large(&self) -> io::Result<()> {
        let mut st = self.0.borrow_mut();
        if st.seg.len() >= MAX_SEGMENT {
            st.write_out()?;
        }
        Ok(())
    }
    /// Writes the last segment, finishes and fsyncs the file; returns the stream length.
    pub fn finish(&self) -> io::Result<u64> {
        let mut st = self.0.borrow_mut();
        st.write_out()?;
        let out = st.out.take().ok_or_else(|| io::Error::other("tar-split already finished"))?;
        out.finish()?;
        Ok(st.pos)
    }
}

impl State {
    /// Writes the pending file record (once its body has streamed past), then the
    /// captured segment bytes, which all come after that body.
    fn write_out(&mut self) -> io::Result<()> {
        let out = self.out.as_mut().ok_or_else(|| io::Error::other("tar-split already finished"))?;
        if self.pending.is_some() {
            if self.pos < self.skip_to {
                return Err(io::Error::other("tar-split: file body not fully read"));
            }
            if let Some(p) = self.pending.take() {
                out.file(&p)?;
            }
        }
        out.segment(&self.seg)?;
        self.seg.clear();
        Ok(())
    }
}

/// The reader half of a [`Recorder`].
pub struct RecordingReader<R> {
    inner: R,
    rec: Recorder,
}

impl<R> RecordingReader<R> {
    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for RecordingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.rec.feed(&buf[..n]);
        Ok(n)
    }
}

impl Recorder {
    /// Takes the next bytes of the stream (what [`RecordingReader`] does with each read, for a
    /// writer that produces the stream itself and announces its file bodies with [`Recorder::file`]).
    pub fn feed(&self, data: &[u8]) {
        let mut st = self.0.borrow_mut();
        let start = st.pos;
        let end = start + data.len() as u64;
        let keep_from = (st.skip_to.clamp(start, end) - start) as usize;
        if keep_from > 0 {
            if let Some(p) = st.pending.as_mut() {
                p.crc.update(&data[..keep_from]);
            }
        }
        st.seg.extend_from_slice(&data[keep_from..]);
        st.pos = end;
    }
}

/// Reads records back from a `tar-split.json.gz`.
struct RecordReader<'p> {
    r: BufReader<flate2::read::GzDecoder<File>>,
    line: Vec<u8>,
    path: &'p Path,
}

/// What a record asks the assembler to emit.
enum Item {
    Segment(Vec<u8>),
    File { name: Vec<u8>, size: u64, crc: Option<[u8; 8]> },
}

impl<'p> RecordReader<'p> {
    fn open(path: &'p Path) -> Result<Self, TarSplitError> {
        let f = File::open(path).map_err(|source| TarSplitError::Io { op: "open", path: path.into(), source })?;
        Ok(RecordReader {
            r: BufReader::with_capacity(256 << 10, flate2::read::GzDecoder::new(f)),
            line: Vec::new(),
            path,
        })
    }
    fn corrupt(&self, reason: impl Into<String>) -> TarSplitError {
        TarSplitError::Corrupt { path: self.path.into(), reason: reason.into() }
    }
    fn next(&mut self) -> Result<Option<Item>, TarSplitError> {
        loop {
            self.line.clear();
            let n = self.r.read_until(b'\n', &mut self.line).map_err(|e| self.corrupt(e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let rec: Record = serde_json::from_slice(&self.line).map_err(|e| self.corrupt(e.to_string()))?;
            return match rec.kind {
                TYPE_SEGMENT => {
                    let payload = rec.payload.unwrap_or_default();
                    let bytes = B64.decode(payload.as_bytes()).map_err(|e| self.corrupt(format!("payload: {e}")))?;
                    Ok(Some(Item::Segment(bytes)))
                }
                TYPE_FILE => {
                    let name = match (rec.name_raw, rec.name) {
                        (Some(raw), _) => {
                            B64.decode(raw.as_bytes()).map_err(|e| self.corrupt(format!("name_raw: {e}")))?
                        }
                        (None, Some(n)) => n.into_bytes(),
                        (None, None) => return Err(self.corrupt("file record without a name")),
                    };
                    let crc = match rec.payload {
                        None => None,
                        Some(p) => {
                            let b = B64.decode(p.as_bytes()).map_err(|e| self.corrupt(format!("payload: {e}")))?;
                            let b: [u8; 8] = b.try_into().map_err(|_| self.corrupt("file payload is not a CRC-64"))?;
                            Some(b)
                        }
                    };
                    Ok(Some(Item::File { name, size: rec.size.unwrap_or(0), crc }))
                }
                k => Err(self.corrupt(format!("unknown record type {k}"))),
            };
        }
    }
}

/// Total length of the tar that [`assemble`] will produce, from the tar-split alone
/// (needed to write an outer archive header before streaming the layer).
pub fn assembled_size(tar_split: &Path) -> Result<u64, TarSplitError> {
    let mut rr = RecordReader::open(tar_split)?;
    let mut total = 0u64;
    while let Some(item) = rr.next()? {
        total += match item {
            Item::Segment(b) => b.len() as u64,
            Item::File { size, .. } => size,
        };
    }
    Ok(total)
}

/// Rebuilds the layer tar from `diff_dir` and its tar-split into `out`; returns the
/// DiffID of what was written and its length.
pub fn assemble(diff_dir: &Path, tar_split: &Path, out: impl Write) -> Result<(DiffId, u64), TarSplitError> {
    assemble_cancellable(diff_dir, tar_split, out, None)
}

/// [`assemble`], polling `cancel` between records and body chunks.
pub fn assemble_cancellable(
    diff_dir: &Path,
    tar_split: &Path,
    mut out: impl Write,
    cancel: Option<&AtomicBool>,
) -> Result<(DiffId, u64), TarSplitError> {
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    let root = safefs::open_root(diff_dir).map_err(|source| TarSplitError::Io {
        op: "open",
        path: diff_dir.into(),
        source,
    })?;
    let mut rr = RecordReader::open(tar_split)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    while let Some(item) = rr.next()? {
        if cancelled() {
            return Err(TarSplitError::Aborted);
        }
        match item {
            Item::Segment(b) => {
                out.write_all(&b).map_err(|source| TarSplitError::Write { source })?;
                h.update(&b);
            }
            Item::File { size: 0, .. } => {}
            Item::File { name, size, crc: want } => {
                let shown = String::from_utf8_lossy(&name).into_owned();
                let rel = match RelPath::parse(&name) {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        return Err(TarSplitError::Unsafe { entry: shown, reason: "names the layer root".into() })
                    }
                    Err(reason) => return Err(TarSplitError::Unsafe { entry: shown, reason: reason.into() }),
                };
                let fd = safefs::open_in_root(root.as_fd(), rel.as_bytes(), OFlags::RDONLY).map_err(|e| {
                    if safefs::is_symlink_refusal(&e) {
                        TarSplitError::Unsafe { entry: shown.clone(), reason: "path goes through a symlink".into() }
                    } else {
                        TarSplitError::Mismatch { entry: shown.clone(), reason: format!("cannot open: {e}") }
                    }
                })?;
                let st = rustix::fs::fstat(&fd).map_err(|e| TarSplitError::Io {
                    op: "stat",
                    path: shown.clone().into(),
                    source: e.into(),
                })?;
                if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
                    return Err(TarSplitError::Mismatch { entry: shown, reason: "not a regular file".into() });
                }
                if st.st_size as u64 != size {
                    return Err(TarSplitError::Mismatch {
                        entry: shown,
                        reason: format!("size is {} but the record says {size}", st.st_size),
                    });
                }
                let mut f = File::from(fd);
                let mut crc = Crc::default();
                let mut left = size;
                while left > 0 {
                    if cancelled() {
                        return Err(TarSplitError::Aborted);
                    }
                    let want = left.min(buf.len() as u64) as usize;
                    let n = match f.read(&mut buf[..want]) {
                        Ok(0) => {
                            return Err(TarSplitError::Mismatch {
                                entry: shown,
                                reason: "file shrank while reading".into(),
                            })
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(source) => return Err(TarSplitError::Io { op: "read", path: shown.into(), source }),
                    };
                    out.write_all(&buf[..n]).map_err(|source| TarSplitError::Write { source })?;
                    h.update(&buf[..n]);
                    crc.update(&buf[..n]);
                    left -= n as u64;
                }
                if want.is_some_and(|w| w != crc.bytes()) {
                    return Err(TarSplitError::Mismatch { entry: shown, reason: "content differs (CRC-64)".into() });
                }
            }
        }
    }
    out.flush().map_err(|source| TarSplitError::Write { source })?;
    let len = h.len();
    Ok((DiffId::from_digest(h.finish()), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `crc64.Update` with the ISO table, a byte at a time: the reference.
    fn crc64_iso_bytewise(data: &[u8]) -> u64 {
        let mut table = [0u64; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ 0xD800_0000_0000_0000 } else { c >> 1 };
            }
            *t = c;
        }
        let mut c = !0u64;
        for &b in data {
            c = table[usize::from((c as u8) ^ b)] ^ (c >> 8);
        }
        !c
    }

    #[test]
    fn crc64_matches_bytewise_at_every_split_and_length() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for len in [0, 1, 7, 8, 15, 16, 17, 63, 64, 127, 128, 129, 255, 256, 1000, 4096, 5000] {
            let want = crc64_iso_bytewise(&data[..len]);
            for split in [0, 1, 7, 8, 9, 63, len / 2, len.saturating_sub(1), len] {
                let split = split.min(len);
                let mut c = Crc::default();
                c.update(&data[..split]);
                c.update(&data[split..len]);
                assert_eq!(c.bytes(), want.to_be_bytes(), "len {len} split at {split}");
            }
        }
    }

    #[test]
    fn crc64_matches_go_iso() {
        // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ISO)) == 0xb90956c775a41001
        let mut c = Crc::default();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.bytes(), 0xb909_56c7_75a4_1001u64.to_be_bytes());
    }

    #[test]
    fn recorder_cuts_bodies_out_and_assemble_splices_them_back() {
        let t = tempfile::tempdir().unwrap();
        let diff = t.path().join("diff");
        std::fs::create_dir(&diff).unwrap();
        std::fs::write(diff.join("f"), b"BODY").unwrap();
        let ts = t.path().join("ts.json.gz");
        let rec = Recorder::new(TarSplitWriter::create(&ts).unwrap());
        let stream = b"HEADER..BODYpad-TRAILER".to_vec();
        let mut r = rec.reader(&stream[..]);
        let mut b = [0u8; 8];
        r.read_exact(&mut b).unwrap();
        rec.file(b"f", 8, 4).unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rec.finish().unwrap(), stream.len() as u64);
        assert_eq!(assembled_size(&ts).unwrap(), stream.len() as u64);
        let mut out = Vec::new();
        let (id, n) = assemble(&diff, &ts, &mut out).unwrap();
        assert_eq!(out, stream);
        assert_eq!((id.digest(), n), (&crate::digest::Digest::of(&stream), stream.len() as u64));
        std::fs::write(diff.join("f"), b"BOD").unwrap();
        assert!(matches!(assemble(&diff, &ts, io::sink()), Err(TarSplitError::Mismatch { .. })));
    }

    fn write_gz(path: &Path, text: &str) {
        let mut e = flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
    }

    #[test]
    fn hostile_or_broken_tar_splits_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let diff = t.path().join("diff");
        std::fs::create_dir(&diff).unwrap();
        std::fs::write(t.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(t.path(), diff.join("up")).unwrap();
        let ts = t.path().join("ts.json.gz");
        for (name, code) in
            [("../secret", "UnsafeLayerEntry"), ("/etc/passwd", "UnsafeLayerEntry"), ("up/secret", "UnsafeLayerEntry")]
        {
            write_gz(&ts, &format!("{{\"type\":1,\"name\":\"{name}\",\"size\":7,\"position\":0}}\n"));
            let e = assemble(&diff, &ts, io::sink()).unwrap_err();
            assert_eq!(crate::error::Coded::code(&e), code, "{name}: {e}");
        }
        // Docker's name_raw (base64) wins over name.
        write_gz(
            &ts,
            &format!("{{\"type\":1,\"name\":\"ok\",\"name_raw\":\"{}\",\"size\":7}}\n", B64.encode("../secret")),
        );
        assert!(matches!(assemble(&diff, &ts, io::sink()), Err(TarSplitError::Unsafe { .. })));
        for broken in ["not json\n", "{\"type\":9}\n", "{\"type\":2,\"payload\":\"!!\"}\n"] {
            write_gz(&ts, broken);
            let e = assemble(&diff, &ts, io::sink()).unwrap_err();
            assert_eq!(crate::error::Coded::code(&e), "CorruptArchive", "{broken}");
        }
    }
}
