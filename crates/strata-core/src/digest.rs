//! Content digests and the three layer identities that must never be confused.
//!
//! * [`DiffId`]     — sha256 of a layer's *uncompressed* tar stream (what `rootfs.diff_ids` lists).
//! * [`BlobDigest`] — sha256 of the blob as stored/transferred (gzip/zstd bytes): a manifest's
//!   layer digest. For an uncompressed blob it has the DiffID's value, still not its meaning.
//! * [`ChainId`]    — identity of a layer *stack*: `ChainID(L0) = DiffID(L0)`,
//!   `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`. The layer store is keyed by it.
//!
//! Each is a newtype over [`Digest`], so the compiler refuses one where another is meant; a
//! value changes kind only by saying so ([`DiffId::from_digest`], [`chain_ids`]). This module
//! owns the ChainID rule; it must not know where identities are stored.
//!
//! ```compile_fail
//! use strata_core::digest::{ChainId, DiffId};
//! let bottom: ChainId = DiffId::of(b""); // equal in value, but a DiffID is no ChainID
//! ```
use crate::error::ErrorCode;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {found:?}: expected sha256:<64 lowercase hex>")]
    Invalid { found: String },
}

impl crate::error::Coded for DigestError {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidDigest
    }
}

/// A `sha256:<hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| DigestError::Invalid { found: s.into() })?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(DigestError::Invalid { found: s.into() });
        }
        Ok(Digest(s.to_owned()))
    }
    /// Digest of a byte slice.
    pub fn of(data: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(data))))
    }
    /// The 64 hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a layer identity: a [`Digest`] that only converts to another kind explicitly.
macro_rules! layer_identity {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Digest);

        impl $name {
            /// Parses and validates `sha256:<64 lowercase hex>`.
            pub fn parse(s: &str) -> Result<Self, DigestError> {
                Digest::parse(s).map(Self)
            }
            /// Names `d` as this identity: the caller knows what was hashed.
            pub fn from_digest(d: Digest) -> Self {
                Self(d)
            }
            pub fn digest(&self) -> &Digest {
                &self.0
            }
            /// The 64 hex characters after `sha256:`.
            pub fn hex(&self) -> &str {
                self.0.hex()
            }
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

layer_identity!(
    /// sha256 of an uncompressed layer tar.
    DiffId
);
layer_identity!(
    /// Identity of a stack of layers, see the module docs.
    ChainId
);
layer_identity!(
    /// sha256 of a layer blob as stored or sent (compressed or not).
    BlobDigest
);

impl DiffId {
    /// The DiffID of the uncompressed layer tar `tar`.
    pub fn of(tar: &[u8]) -> Self {
        Self(Digest::of(tar))
    }
}

impl BlobDigest {
    /// The digest of the blob `blob`.
    pub fn of(blob: &[u8]) -> Self {
        Self(Digest::of(blob))
    }
}

/// ChainIDs of each prefix of `diff_ids` (bottom layer first).
pub fn chain_ids(diff_ids: &[DiffId]) -> Vec<ChainId> {
    let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => ChainId(d.0.clone()),
            Some(parent) => ChainId(Digest::of(format!("{parent} {d}").as_bytes())),
        };
        out.push(next);
    }
    out
}

/// Incremental sha256 that also counts bytes.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.inner.finalize())))
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    pub hasher: Hasher,
    enabled: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Hasher::new(), enabled: true }
    }
    /// A reader that passes bytes through without hashing (its hasher stays empty).
    pub fn passthrough(inner: R) -> Self {
        Self { inner, hasher: Hasher::new(), enabled: false }
    }
    pub fn into_parts(self) -> (R, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.enabled {
            self.hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    pub hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Hasher::new() }
    }
    pub fn into_parts(self) -> (W, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 of a whole file, read in large blocks.
pub fn sha256_file(path: &std::path::Path) -> io::Result<Digest> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = DiffId::from_digest(Digest::of(b"a"));
        let b = DiffId::from_digest(Digest::of(b"b"));
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0].digest(), a.digest());
        assert_eq!(ids[1].digest(), &Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn parse_rejects_bad_digests() {
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("md5:{}", "a".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
    }

    #[test]
    fn empty_sha256_is_well_known() {
        assert_eq!(Digest::of(b"").hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
