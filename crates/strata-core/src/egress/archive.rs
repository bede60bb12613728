//! Outer archives: the docker-archive (`docker save`) and OCI-layout tars that carry
//! images, as opposed to the layer tars inside them.
//!
//! * [`index`] lists an uncompressed outer tar's members without reading their bodies
//!   (headers are parsed and bodies seeked over), with the byte offset of each body, so
//!   layers can then be applied straight out of the file, several in parallel.
//! * [`decompress_file`] turns a gzip/zstd-compressed outer archive into a plain one first.
//! * [`write_archive`] writes an outer tar from in-memory members and layers assembled
//!   from `diff/` + tar-split (header first, with the size from the tar-split, then the
//!   body streamed while its DiffID is verified); [`write_layer_file`] writes one layer tar
//!   (for OCI directories). Output is deterministic: ustar headers (PAX for long or
//!   non-ASCII names and sizes ≥ 8 GiB), mtime 0, uid/gid 0, files 0644, directories 0755.
//!   Regular output files are written under a temporary name and renamed into place.
//!
//! It must not extract layers (that is `layer`/`extract`: here a layer is only read back and its
//! DiffID checked), nor choose which images, names or tags go in (TypeScript does).
use crate::digest::DiffId;
use crate::error::ErrorCode;
use crate::ingest::compress::{Compression, Decompressor};
use crate::ingest::tarsplit::{self, TarSplitError};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("corrupt archive {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Compress(#[from] crate::ingest::compress::CompressError),
    #[error(transparent)]
    TarSplit(#[from] TarSplitError),
    /// A layer assembled to something other than its DiffID.
    #[error("layer {name}: DiffID mismatch: expected {expected}, found {found}")]
    DigestMismatch { name: String, expected: DiffId, found: DiffId },
    #[error("writing the archive cancelled")]
    Aborted,
}

impl crate::error::Coded for ArchiveError {
    fn code(&self) -> ErrorCode {
        match self {
            ArchiveError::Io { .. } => ErrorCode::Io,
            ArchiveError::Corrupt { .. } => ErrorCode::CorruptArchive,
            ArchiveError::Compress(e) => e.code(),
            ArchiveError::TarSplit(TarSplitError::Aborted) | ArchiveError::Aborted => ErrorCode::Aborted,
            ArchiveError::TarSplit(e) => e.code(),
            ArchiveError::DigestMismatch { .. } => ErrorCode::DigestMismatch,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            ArchiveError::Io { source, .. } => source.raw_os_error(),
            ArchiveError::Compress(e) => e.errno(),
            ArchiveError::TarSplit(e) => e.errno(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            ArchiveError::Io { path, .. } | ArchiveError::Corrupt { path, .. } => Some(path.display().to_string()),
            ArchiveError::Compress(e) => e.path(),
            ArchiveError::TarSplit(e) => e.path(),
            ArchiveError::DigestMismatch { name, .. } => Some(name.clone()),
            ArchiveError::Aborted => None,
        }
    }
}

/// Kind of an outer archive member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Other,
}

impl MemberKind {
    /// `"file"`, `"dir"`, `"symlink"`, `"hardlink"` or `"other"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::File => "file",
            MemberKind::Dir => "dir",
            MemberKind::Symlink => "symlink",
            MemberKind::Hardlink => "hardlink",
            MemberKind::Other => "other",
        }
    }
}

/// One member of an outer archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The name as bytes, with leading `./` and trailing `/` removed.
    pub name: Vec<u8>,
    pub kind: MemberKind,
    /// Link target of symlinks and hardlinks.
    pub linkname: Option<Vec<u8>>,
    /// Byte offset of the body in the archive file.
    pub offset: u64,
    /// Body length.
    pub size: u64,
}

impl Member {
    /// The name as UTF-8, if it is.
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.name).ok()
    }
}

fn normalise_member_name(raw: &[u8]) -> Vec<u8> {
    let mut n = raw;
    while let Some(rest) = n.strip_prefix(b"./") {
        n = rest;
    }
    while let Some(rest) = n.strip_suffix(b"/") {
        n = rest;
    }
    if n == b"." {
        n = b"";
    }
    n.to_vec()
}

/// Lists the members of an uncompressed outer tar without reading their bodies. The root
/// entry (`./`) is left out.
pub fn index(path: &Path) -> Result<Vec<Member>, ArchiveError> {
    let f = File::open(path).map_err(|source| ArchiveError::Io { op: "open", path: path.into(), source })?;
    let corrupt = |e: io::Error| match e.raw_os_error() {
        Some(_) => ArchiveError::Io { op: "read", path: path.into(), source: e },
        None => ArchiveError::Corrupt { path: path.into(), reason: e.to_string() },
    };
    let mut ar = tar::Archive::new(BufReader::with_capacity(64 << 10, f));
    let mut out = Vec::new();
    for entry in ar.entries_with_seek().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let name = normalise_member_name(&entry.path_bytes());
        let t = entry.header().entry_type();
        let kind = match t {
            tar::EntryType::Regular | tar::EntryType::Continuous => MemberKind::File,
            tar::EntryType::Directory => MemberKind::Dir,
            tar::EntryType::Symlink => MemberKind::Symlink,
            tar::EntryType::Link => MemberKind::Hardlink,
            _ => MemberKind::Other,
        };
        if name.is_empty() && kind == MemberKind::Dir {
            continue;
        }
        let linkname = match kind {
            MemberKind::Symlink | MemberKind::Hardlink => entry.link_name_bytes().map(|l| l.into_owned()),
            _ => None,
        };
        out.push(Member { name, kind, linkname, offset: entry.raw_file_position(), size: entry.size() });
    }
    Ok(out)
}

/// Decompresses a gzip/zstd-compressed outer archive `src` into `dst` (created or
/// truncated); a plain `src` is copied. Returns the detected compression. `cancel` is polled
/// between 1 MiB chunks; a cancelled run removes `dst`.
pub fn decompress_file(src: &Path, dst: &Path, cancel: &AtomicBool) -> Result<Compression, ArchiveError> {
    let f = File::open(src).map_err(|source| ArchiveError::Io { op: "open", path: src.into(), source })?;
    let mut dec = Decompressor::new(BufReader::with_capacity(1 << 20, f))?;
    let out = File::create(dst).map_err(|source| ArchiveError::Io { op: "create", path: dst.into(), source })?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut buf = vec![0u8; 1 << 20];
    let r = (|| loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(ArchiveError::Aborted);
        }
        let n = match dec.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ArchiveError::Compress(crate::ingest::compress::stream_error(
                    e,
                    &src.display().to_string(),
                )))
            }
        };
        w.write_all(&buf[..n]).map_err(|source| ArchiveError::Io { op: "write", path: dst.into(), source })?;
    })()
    .and_then(|()| w.flush().map_err(|source| ArchiveError::Io { op: "write", path: dst.into(), source }));
    if r.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    r.map(|()| dec.compression())
}

/// What an output member holds.
#[derive(Clone, Debug)]
pub enum MemberData {
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A directory.
    Dir,
    /// A layer tar assembled from `diff_dir` + `tar_split`, verified against `diff_id`.
    Layer { diff_dir: PathBuf, tar_split: PathBuf, diff_id: DiffId },
}

/// One member to write.
#[derive(Clone, Debug)]
pub struct OutMember {
    pub name: String,
    pub data: MemberData,
}

const BLOCK: u64 = 512;
/// Largest size a 12-byte octal ustar field holds.
const MAX_OCTAL_SIZE: u64 = 0o77777777777;

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

fn ustar_block(name: &[u8], typeflag: u8, mode: u32, size: u64) -> [u8; 512] {
    let mut b = [0u8; 512];
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    octal(&mut b[100..108], u64::from(mode));
    octal(&mut b[108..116], 0);
    octal(&mut b[116..124], 0);
    octal(&mut b[124..136], if size > MAX_OCTAL_SIZE { 0 } else { size });
    octal(&mut b[136..148], 0);
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    octal(&mut b[329..337], 0);
    octal(&mut b[337..345], 0);
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (BLOCK - len % BLOCK) % BLOCK;
    w.write_all(&[0u8; 512][..rem as usize])
}

/// Writes the header block(s) of one member: PAX `x` first when the name does not fit
/// ustar (longer than 100 bytes or not ASCII) or the size does not fit 11 octal digits.
pub fn write_header(w: &mut impl Write, name: &[u8], typeflag: u8, size: u64) -> io::Result<()> {
    let mode = if typeflag == b'5' { 0o755 } else { 0o644 };
    let long_name = name.len() > 100 || !name.is_ascii();
    let big = size > MAX_OCTAL_SIZE;
    if long_name || big {
        let mut data = Vec::new();
        if long_name {
            data.extend(pax_record("path", name));
        }
        if big {
            data.extend(pax_record("size", size.to_string().as_bytes()));
        }
        w.write_all(&ustar_block(b"././@PaxHeader", b'x', 0o644, data.len() as u64))?;
        w.write_all(&data)?;
        pad(w, data.len() as u64)?;
    }
    let short: Vec<u8> = if long_name {
        name.iter().take(100).map(|&c| if c.is_ascii() { c } else { b'_' }).collect()
    } else {
        name.to_vec()
    };
    w.write_all(&ustar_block(&short, typeflag, mode, size))
}

/// A writer that counts bytes.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams one layer (assembled) into `w`, checking length and DiffID.
fn stream_layer(
    w: &mut impl Write,
    name: &str,
    diff_dir: &Path,
    tar_split: &Path,
    expected: &DiffId,
    size: u64,
    cancel: Option<&AtomicBool>,
) -> Result<(), ArchiveError> {
    let (found, n) = tarsplit::assemble_cancellable(diff_dir, tar_split, &mut *w, cancel)?;
    if n != size {
        return Err(ArchiveError::Corrupt {
            path: tar_split.into(),
            reason: format!("assembled {n} bytes, the tar-split announced {size}"),
        });
    }
    if &found != expected {
        return Err(ArchiveError::DigestMismatch { name: name.into(), expected: expected.clone(), found });
    }
    Ok(())
}

/// An output file: regular files are written under a temporary name in the same
/// directory and renamed into place on success; anything else (a fifo, `/dev/stdout`) is
/// written directly.
struct Output {
    file: BufWriter<File>,
    tmp: Option<PathBuf>,
    path: PathBuf,
}

impl Output {
    fn create(path: &Path) -> Result<Output, ArchiveError> {
        let io_err = |op| move |source| ArchiveError::Io { op, path: path.into(), source };
        let special = std::fs::metadata(path).map(|m| !m.is_file()).unwrap_or(false);
        if special {
            let f = File::options().write(true).open(path).map_err(io_err("open"))?;
            return Ok(Output { file: BufWriter::with_capacity(1 << 20, f), tmp: None, path: path.into() });
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let tmp = dir.join(format!(".{base}.tmp-{}-{nanos}", std::process::id()));
        let f = File::options().write(true).create_new(true).open(&tmp).map_err(io_err("create"))?;
        Ok(Output { file: BufWriter::with_capacity(1 << 20, f), tmp: Some(tmp), path: path.into() })
    }
    fn commit(self) -> Result<(), ArchiveError> {
        let path = &self.path;
        let io_err = |op| move |source| ArchiveError::Io { op, path: path.clone(), source };
        let f = match self.file.into_inner() {
            Ok(f) => f,
            Err(e) => {
                if let Some(tmp) = &self.tmp {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(io_err("write")(e.into_error()));
            }
        };
        if let Some(tmp) = &self.tmp {
            let r = f
                .sync_all()
                .map_err(io_err("fsync"))
                .and_then(|()| std::fs::rename(tmp, &self.path).map_err(io_err("rename")));
            if r.is_err() {
                let _ = std::fs::remove_file(tmp);
            }
            r?;
        }
        Ok(())
    }
    fn abandon(self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Writes an outer archive of `members` to `out`; returns its length.
pub fn write_archive(members: &[OutMember], out: &Path, cancel: &AtomicBool) -> Result<u64, ArchiveError> {
    let mut o = Output::create(out)?;
    let r = write_members(&mut o.file, members, out, cancel);
    match r {
        Ok(n) => o.commit().map(|()| n),
        Err(e) => {
            o.abandon();
            Err(e)
        }
    }
}

fn write_members(
    w: &mut impl Write,
    members: &[OutMember],
    out: &Path,
    cancel: &AtomicBool,
) -> Result<u64, ArchiveError> {
    let mut w = Counting { inner: w, n: 0 };
    let werr = |source| ArchiveError::Io { op: "write", path: out.into(), source };
    for m in members {
        if cancel.load(Ordering::Relaxed) {
            return Err(ArchiveError::Aborted);
        }
        match &m.data {
            MemberData::Bytes(b) => {
                write_header(&mut w, m.name.as_bytes(), b'0', b.len() as u64).map_err(werr)?;
                w.write_all(b).map_err(werr)?;
                pad(&mut w, b.len() as u64).map_err(werr)?;
            }
            MemberData::Dir => {
                let mut name = m.name.clone();
                if !name.ends_with('/') {
                    name.push('/');
                }
                write_header(&mut w, name.as_bytes(), b'5', 0).map_err(werr)?;
            }
            MemberData::Layer { diff_dir, tar_split, diff_id } => {
                let size = tarsplit::assembled_size(tar_split)?;
                write_header(&mut w, m.name.as_bytes(), b'0', size).map_err(werr)?;
                stream_layer(&mut w, &m.name, diff_dir, tar_split, diff_id, size, Some(cancel))?;
                pad(&mut w, size).map_err(werr)?;
            }
        }
    }
    w.write_all(&[0u8; 1024]).map_err(werr)?;
    w.flush().map_err(werr)?;
    Ok(w.n)
}

/// Writes one layer tar (e.g. an OCI blob) assembled from `diff_dir` + `tar_split` to
/// `out`, verifying `expected_diff_id`; returns its length.
pub fn write_layer_file(
    diff_dir: &Path,
    tar_split: &Path,
    out: &Path,
    expected_diff_id: &DiffId,
    cancel: &AtomicBool,
) -> Result<u64, ArchiveError> {
    let size = tarsplit::assembled_size(tar_split)?;
    let mut o = Output::create(out)?;
    let name = out.display().to_string();
    match stream_layer(&mut o.file, &name, diff_dir, tar_split, expected_diff_id, size, Some(cancel)) {
        Ok(()) => o.commit().map(|()| size),
        Err(e) => {
            o.abandon();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_back_with_the_tar_crate() {
        let mut buf = Vec::new();
        let long = format!("{}/é/{}", "a".repeat(90), "b".repeat(90));
        write_header(&mut buf, long.as_bytes(), b'0', 3).unwrap();
        buf.extend_from_slice(b"xyz");
        pad(&mut buf, 3).unwrap();
        write_header(&mut buf, b"dir/", b'5', 0).unwrap();
        buf.extend_from_slice(&[0u8; 1024]);
        let mut ar = tar::Archive::new(&buf[..]);
        let names: Vec<(Vec<u8>, u32, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path_bytes().into_owned(), e.header().mode().unwrap(), e.header().mtime().unwrap())
            })
            .collect();
        assert_eq!(names, vec![(long.into_bytes(), 0o644, 0), (b"dir/".to_vec(), 0o755, 0)]);
    }

    #[test]
    fn member_names_are_normalised() {
        assert_eq!(normalise_member_name(b"./manifest.json"), b"manifest.json");
        assert_eq!(normalise_member_name(b"blobs/sha256/"), b"blobs/sha256");
        assert_eq!(normalise_member_name(b"./"), b"");
    }
}
