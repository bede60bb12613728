//! ADD of a local archive: which files ADD unpacks, and the unpacking.
//!
//! Docker 20.10's builder (BuildKit 0.8's `isArchivePath`, on moby's `archive.DecompressStream`)
//! unpacks a regular file when, after decompression, it starts with a valid tar header; the
//! compressions it decodes are **gzip, bzip2 and xz** (and none). A zstd-compressed tar is *not*
//! unpacked by that engine (it is copied as a file), and neither is lzma-alone: strata does the
//! same, checked against the engine in the tests. Concatenated streams are read to their end
//! (Go's gzip and bzip2 readers do; moby runs `xz -d` for xz, which does).
//!
//! The archive is unpacked with the layer extractor (`crate::ingest::layer::apply_tar_stream`): safe
//! fd-relative extraction, owners and modes from the tar. The caller copies the result into
//! the step's rootfs.
use crate::error::{Coded, ErrorCode};
use crate::ingest::extract::ExtractError;
use crate::ingest::layer::{ApplyResult, LayerError};
use crate::ingest::stream::Fault;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("corrupt {format} archive {path}: {source}")]
    Corrupt { format: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Unpack(#[from] LayerError),
}

impl Coded for AddError {
    fn code(&self) -> ErrorCode {
        match self {
            AddError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => ErrorCode::SourceNotFound,
            AddError::Io { .. } => ErrorCode::Io,
            AddError::Corrupt { .. } => ErrorCode::CorruptArchive,
            AddError::Unpack(e) => e.code(),
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            AddError::Io { source, .. } => source.raw_os_error(),
            AddError::Corrupt { .. } => None,
            AddError::Unpack(e) => e.errno(),
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            AddError::Io { path, .. } | AddError::Corrupt { path, .. } => Some(path.display().to_string()),
            AddError::Unpack(e) => e.path(),
        }
    }
}

/// The compressions ADD decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddCompression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

impl AddCompression {
    /// moby's `DetectCompression` minus zstd (not in Docker 20.10's builder).
    pub fn detect(head: &[u8]) -> AddCompression {
        if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            AddCompression::Gzip
        } else if head.starts_with(b"BZh") {
            AddCompression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            AddCompression::Xz
        } else {
            AddCompression::None
        }
    }

    fn name(self) -> &'static str {
        match self {
            AddCompression::None => "tar",
            AddCompression::Gzip => "gzip",
            AddCompression::Bzip2 => "bzip2",
            AddCompression::Xz => "xz",
        }
    }
}

fn open(path: &Path) -> Result<(File, AddCompression), AddError> {
    let io_err = |op| move |source| AddError::Io { op, path: path.into(), source };
    let mut f = File::open(path).map_err(io_err("open"))?;
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read")(e)),
        }
    }
    let kind = AddCompression::detect(&head[..n]);
    use std::io::Seek;
    f.rewind().map_err(io_err("seek"))?;
    Ok((f, kind))
}

/// A decoder whose failures are [`Fault::Corrupt`] (a read error of the file stays an I/O error).
struct Decoded {
    inner: Box<dyn Read + Send>,
    format: &'static str,
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.raw_os_error().is_some() || e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                Fault::Corrupt { format: self.format, detail: e.to_string() }.into_io()
            }
        })
    }
}

/// The decompressed bytes of an archive ADD may unpack.
fn decoder(f: File, kind: AddCompression) -> Decoded {
    let f = BufReader::with_capacity(1 << 16, f);
    let inner: Box<dyn Read + Send> = match kind {
        AddCompression::None => Box::new(f),
        AddCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        AddCompression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(f)),
        AddCompression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(f)),
    };
    Decoded { inner, format: kind.name() }
}

/// Whether ADD unpacks the file at `path`: it decompresses (gzip, bzip2, xz or none) to
/// something starting with a valid tar header (checksum right, not the end-of-archive block).
pub fn is_archive(path: &Path) -> Result<bool, AddError> {
    let (f, kind) = open(path)?;
    let mut r = decoder(f, kind);
    let mut block = [0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(false),
        }
    }
    if block.iter().all(|&b| b == 0) {
        return Ok(false);
    }
    // The header checksum: the sum of all bytes with the checksum field read as spaces.
    let field = &block[148..156];
    let digits: Vec<u8> = field.iter().copied().filter(|b| (b'0'..=b'7').contains(b)).collect();
    let Ok(text) = std::str::from_utf8(&digits) else { return Ok(false) };
    let Ok(want) = u64::from_str_radix(text, 8) else { return Ok(false) };
    let sum: u64 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u64 }).sum();
    Ok(sum == want)
}

/// Unpacks the archive at `path` into `dest` (created; must not exist), its tar-split to
/// `tar_split`. A decoding failure is `CorruptArchive`; nothing is left on failure.
pub fn unpack(path: &Path, dest: &Path, tar_split: &Path, cancel: &AtomicBool) -> Result<ApplyResult, AddError> {
    let (f, kind) = open(path)?;
    match crate::ingest::layer::apply_tar_stream(decoder(f, kind), dest, tar_split, cancel) {
        Ok(r) => Ok(r),
        // The extractor (or the drain of the stream after the tar's end) sees a decoding
        // failure as a failed read of its source (one without an errno: the file read fine).
        Err(LayerError::Extract(ExtractError::Read { source }))
        | Err(LayerError::Compress(crate::ingest::compress::CompressError::Io { source, .. }))
            if kind != AddCompression::None && source.raw_os_error().is_none() =>
        {
            Err(AddError::Corrupt { format: kind.name(), path: path.into(), source })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_of(name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, body).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn gzip_bzip2_xz_and_plain_unpack_zstd_does_not() {
        let t = tempfile::tempdir().unwrap();
        let plain = tar_of("dir/a.txt", b"hello\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&plain).unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&plain).unwrap();
        let cases = [
            ("t.tar", plain.clone(), true),
            ("t.tar.gz", gz.finish().unwrap(), true),
            ("t.tar.bz2", bz.finish().unwrap(), true),
            ("t.tar.xz", xz.finish().unwrap(), true),
            ("t.tar.zst", zstd::encode_all(&plain[..], 3).unwrap(), false),
            ("text", b"just text, not a tar\n".to_vec(), false),
        ];
        for (name, bytes, archive) in cases {
            let p = t.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(is_archive(&p).unwrap(), archive, "{name}");
            if archive {
                let dest = t.path().join(format!("{name}.out"));
                unpack(&p, &dest, &t.path().join(format!("{name}.ts")), &AtomicBool::new(false)).unwrap();
                assert_eq!(std::fs::read(dest.join("dir/a.txt")).unwrap(), b"hello\n", "{name}");
            }
        }
    }

    #[test]
    fn a_corrupt_xz_body_is_corrupt_archive() {
        let t = tempfile::tempdir().unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&tar_of("a", &[7u8; 100_000])).unwrap();
        let mut bytes = xz.finish().unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        let p = t.path().join("bad.tar.xz");
        std::fs::write(&p, &bytes).unwrap();
        let dest = t.path().join("out");
        let e = unpack(&p, &dest, &t.path().join("ts"), &AtomicBool::new(false)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::CorruptArchive, "{e}");
        assert!(!dest.exists());
    }
}
