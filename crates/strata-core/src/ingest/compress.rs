//! Compression of layer blobs: detection by magic bytes (never by name) and a
//! decompressing `Read`.
//!
//! gzip (`1f 8b`) and zstd (`28 b5 2f fd`) are decoded; anything else is taken as a plain
//! tar, except bzip2 and xz, which are recognised only to be refused with a clear error.
//! Multi-member gzip and multi-frame zstd streams are decoded to their end, and bytes
//! after the last member are an error (as Go's `compress/gzip`, which Docker uses), so
//! the compressed digest and the DiffID always cover the whole blob.
//!
//! It must not guess a format from a file name, nor stop reading before the end of the stream.
use crate::error::ErrorCode;
use crate::ingest::stream::{fault_of, Fault};
use std::io::{self, BufReader, Read};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// A compression format strata recognises but does not decode.
    #[error("unsupported compression {format}")]
    Unsupported { format: &'static str },
    /// The stream could not be decoded.
    #[error("corrupt {format} stream: {detail}")]
    Corrupt { format: &'static str, detail: String },
    /// Reading the source failed.
    #[error("reading {what}: {source}")]
    Io { what: String, source: io::Error },
    /// The caller cancelled while the stream was being read.
    #[error("reading {what} was cancelled")]
    Aborted { what: String },
}

impl crate::error::Coded for CompressError {
    fn code(&self) -> ErrorCode {
        match self {
            CompressError::Unsupported { .. } => ErrorCode::UnsupportedArchive,
            CompressError::Corrupt { .. } => ErrorCode::CorruptArchive,
            CompressError::Io { .. } => ErrorCode::Io,
            CompressError::Aborted { .. } => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            CompressError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            CompressError::Io { what, .. } | CompressError::Aborted { what } => Some(what.clone()),
            _ => None,
        }
    }
}

/// Compression of a blob, as detected from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// `"none"`, `"gzip"` or `"zstd"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Detects the compression from the first bytes of a stream (at least 6 if available).
    pub fn detect(head: &[u8]) -> Result<Compression, CompressError> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if head.starts_with(b"BZh") {
            Err(CompressError::Unsupported { format: "bzip2" })
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err(CompressError::Unsupported { format: "xz" })
        } else {
            Ok(Compression::None)
        }
    }
}

/// Number of leading bytes [`Compression::detect`] looks at.
pub const MAGIC_LEN: usize = 6;

/// A reader that replays the bytes it peeked for detection, then reads on.
pub struct Peeked<R> {
    head: [u8; MAGIC_LEN],
    pos: usize,
    len: usize,
    inner: R,
}

impl<R: Read> Peeked<R> {
    /// Reads up to [`MAGIC_LEN`] bytes from `inner` (fewer only at end of stream).
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut head = [0u8; MAGIC_LEN];
        let mut len = 0;
        while len < MAGIC_LEN {
            match inner.read(&mut head[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Peeked { head, pos: 0, len, inner })
    }
    /// The peeked bytes.
    pub fn head(&self) -> &[u8] {
        &self.head[..self.len]
    }
    /// The underlying reader (past the peeked bytes).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.len {
            let n = (self.len - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

enum Inner<R: Read> {
    Plain(Peeked<R>),
    Gzip(Box<flate2::read::MultiGzDecoder<Peeked<R>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<Peeked<R>>>>),
}

/// A decompressing reader over an auto-detected stream.
///
/// Decoder errors come out as `io::Error`s carrying [`Fault::Corrupt`]; errors of the
/// source reader that already carry a [`Fault`] pass through unchanged.
pub struct Decompressor<R: Read> {
    inner: Inner<R>,
    compression: Compression,
}

impl<R: Read> Decompressor<R> {
    /// Peeks at `source`, detects its compression and sets up the decoder.
    pub fn new(source: R) -> Result<Self, CompressError> {
        let peeked = Peeked::new(source).map_err(|e| stream_error(e, "source"))?;
        let compression = Compression::detect(peeked.head())?;
        let inner = match compression {
            Compression::None => Inner::Plain(peeked),
            Compression::Gzip => Inner::Gzip(Box::new(flate2::read::MultiGzDecoder::new(peeked))),
            Compression::Zstd => {
                Inner::Zstd(Box::new(zstd::stream::read::Decoder::new(peeked).map_err(|e| stream_error(e, "zstd"))?))
            }
        };
        Ok(Decompressor { inner, compression })
    }

    /// The detected compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The source reader back (after [`Decompressor::drain_source`], nothing is left in it).
    pub fn into_source(self) -> R {
        match self.inner {
            Inner::Plain(p) => p.inner,
            Inner::Gzip(d) => d.into_inner().inner,
            Inner::Zstd(d) => d.finish().into_inner().inner,
        }
    }

    /// Reads whatever is left of the *compressed* source to its end (the decoders stop
    /// at the end of the last frame; the compressed digest must cover every byte).
    pub fn drain_source(&mut self) -> io::Result<u64> {
        let src: &mut dyn Read = match &mut self.inner {
            Inner::Plain(p) => p,
            Inner::Gzip(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut(),
        };
        io::copy(src, &mut io::sink())
    }
}

impl<R: Read> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (r, format) = match &mut self.inner {
            Inner::Plain(p) => return p.read(buf),
            Inner::Gzip(d) => (d.read(buf), "gzip"),
            Inner::Zstd(d) => (d.read(buf), "zstd"),
        };
        r.map_err(|e| {
            if fault_of(&e).is_some() || e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                Fault::Corrupt { format, detail: e.to_string() }.into_io()
            }
        })
    }
}

/// Maps a read error of a compressed stream to a [`CompressError`].
pub fn stream_error(e: io::Error, what: &str) -> CompressError {
    match fault_of(&e) {
        Some(Fault::Corrupt { format, detail }) => CompressError::Corrupt { format, detail: detail.clone() },
        Some(Fault::Source(src)) => {
            CompressError::Io { what: what.into(), source: crate::ingest::stream::clone_io(src) }
        }
        Some(Fault::Aborted) => CompressError::Aborted { what: what.into() },
        None => CompressError::Io { what: what.into(), source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(data: &[u8]) -> io::Result<(Compression, Vec<u8>)> {
        let mut d = Decompressor::new(data).map_err(io::Error::other)?;
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok((d.compression(), out))
    }

    #[test]
    fn detects_by_magic_and_round_trips() {
        let payload = b"hello layer".repeat(1000);
        assert_eq!(read_all(&payload).unwrap(), (Compression::None, payload.clone()));
        assert_eq!(read_all(&gz(&payload)).unwrap(), (Compression::Gzip, payload.clone()));
        let z = zstd::encode_all(&payload[..], 3).unwrap();
        assert_eq!(read_all(&z).unwrap(), (Compression::Zstd, payload.clone()));
        assert_eq!(read_all(b"").unwrap(), (Compression::None, vec![]));
        assert_eq!(read_all(b"ab").unwrap(), (Compression::None, b"ab".to_vec()));
    }

    #[test]
    fn multi_member_gzip_is_read_to_the_end() {
        let mut two = gz(b"one ");
        two.extend(gz(b"two"));
        assert_eq!(read_all(&two).unwrap().1, b"one two");
    }

    #[test]
    fn bzip2_and_xz_are_refused() {
        assert!(matches!(
            Decompressor::new(&b"BZh91AY&SY"[..]).err(),
            Some(CompressError::Unsupported { format: "bzip2" })
        ));
        assert!(matches!(
            Decompressor::new(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0][..]).err(),
            Some(CompressError::Unsupported { format: "xz" })
        ));
    }

    /// zstd with a content checksum, as the `zstd` CLI writes it.
    fn zst(data: &[u8]) -> Vec<u8> {
        let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
        e.include_checksum(true).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn corrupt_streams_are_typed() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for mut blob in [gz(&payload), zst(&payload)] {
            let mid = blob.len() / 2;
            blob[mid] ^= 0xff;
            blob[mid + 1] ^= 0x55;
            let Err(e) = read_all(&blob) else { panic!("corrupt stream decoded") };
            assert!(matches!(fault_of(&e), Some(Fault::Corrupt { .. })), "{e}");
        }
        for blob in [gz(&payload), zst(&payload)] {
            let Err(e) = read_all(&blob[..blob.len() / 2]) else { panic!("truncated stream decoded") };
            assert!(matches!(fault_of(&e), Some(Fault::Corrupt { .. })), "truncated: {e}");
        }
        let mut trailing = gz(&payload);
        trailing.extend_from_slice(b"garbage after the gzip member");
        let Err(e) = read_all(&trailing) else { panic!("trailing garbage accepted") };
        assert!(matches!(fault_of(&e), Some(Fault::Corrupt { .. })), "{e}");
    }
}
