//! Typed faults carried through third-party readers inside `io::Error`.
//!
//! The tar crate and the decompressors only speak `io::Error`. To keep the *cause* of a
//! failure typed across them (the blob file could not be read, the gzip stream is corrupt,
//! the caller cancelled), our own readers wrap it in a [`Fault`] and whoever receives the
//! error digs it back out with [`fault_of`], however deeply the tar crate re-wrapped it.
//!
//! It must not decide what a fault means to the caller: the modules that receive it do.
use std::error::Error;
use std::io;

/// Why a read through our reader stack failed.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// The caller's cancellation flag was set.
    #[error("cancelled")]
    Aborted,
    /// The compressed stream could not be decoded.
    #[error("corrupt {format} stream: {detail}")]
    Corrupt { format: &'static str, detail: String },
    /// Reading the underlying source (blob file, pipe) failed.
    #[error("reading the source: {0}")]
    Source(#[source] io::Error),
}

impl Fault {
    /// Wraps the fault into an `io::Error` so it can travel through `Read` impls.
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// Finds a [`Fault`] anywhere in the chain of `e` (through `io::Error` payloads and sources).
pub fn fault_of(e: &io::Error) -> Option<&Fault> {
    let mut cur: Option<&(dyn Error + 'static)> = e.get_ref().map(|x| x as &(dyn Error + 'static));
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<Fault>() {
            return Some(f);
        }
        // io::Error::source() skips its own payload, so descend into the payload explicitly.
        if let Some(inner) = err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            cur = Some(inner as &(dyn Error + 'static));
            continue;
        }
        cur = err.source();
    }
    None
}

/// Rebuilds an owned `io::Error` with the same errno/kind as `e` (used to lift a
/// [`Fault::Source`] out of a borrowed chain).
pub fn clone_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_survives_rewrapping() {
        let e = Fault::Aborted.into_io();
        let wrapped = io::Error::other(Wrap(e));
        assert!(matches!(fault_of(&wrapped), Some(Fault::Aborted)));
        assert!(fault_of(&io::Error::other("plain")).is_none());
    }

    #[derive(Debug)]
    struct Wrap(io::Error);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "wrap: {}", self.0)
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
}
