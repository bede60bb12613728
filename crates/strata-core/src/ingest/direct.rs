//! Writing large file bodies past the page cache (`O_DIRECT`).
//!
//! On the machines we measure on, a buffered write into ext4 costs about 3 ms of system
//! time per MiB (copying into freshly allocated page-cache folios), while an `O_DIRECT`
//! write of the same bytes costs a tenth of that and leaves nothing for `syncfs` to write
//! back later. A layer's bodies are written once and read rarely, so they need no cache.
//!
//! [`BodyWriter`] switches a freshly created file to `O_DIRECT` (with `fcntl`, so a file
//! system without direct I/O just stays buffered) when its body is at least
//! [`DIRECT_MIN`] bytes. Direct writes need an aligned buffer, offset and length: callers
//! fill an [`AlignedBuf`] completely before each write, so only the final chunk can be
//! unaligned; its aligned prefix still goes direct and the tail is written buffered after
//! clearing `O_DIRECT`. Any `EINVAL` from a direct write (an alignment the device does not
//! accept) drops to buffered writes for the rest of the file. Durability is unchanged:
//! the layer's `syncfs` still follows, and covers both kinds of write.
//!
//! It must not make a write fail that a buffered write would have done: where direct I/O is
//! refused, the file simply stays buffered.
use rustix::fd::AsFd;
use rustix::fs::OFlags;
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Write};
use std::ops::{Deref, DerefMut};

/// Bodies at least this large are written with `O_DIRECT`. Below it the synchronous
/// device round trip costs more than the page-cache copy it saves.
pub const DIRECT_MIN: u64 = 256 * 1024;
/// Alignment of buffer, offsets and lengths for direct writes: a page, which satisfies
/// every logical block size up to 4 KiB.
pub const ALIGN: usize = 4096;

/// A zeroed heap buffer whose start is [`ALIGN`]-aligned; its length is a multiple of it.
///
/// A plain `Vec` one [`ALIGN`] longer than needed, used from its first aligned byte: no
/// allocator calls of our own, and the block never moves (the `Vec` is never resized).
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` bytes rounded up to a multiple of [`ALIGN`].
    pub fn new(len: usize) -> Self {
        let len = len.max(1).div_ceil(ALIGN) * ALIGN;
        let storage = vec![0u8; len + ALIGN];
        let addr = storage.as_ptr() as usize;
        let start = addr.next_multiple_of(ALIGN) - addr;
        AlignedBuf { storage, start, len }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// Writes one file body, sequentially from offset 0, direct where it can.
pub struct BodyWriter<'f> {
    file: &'f File,
    direct: bool,
}

impl<'f> BodyWriter<'f> {
    /// Starts writing a body of `size` bytes into the new, empty `file`.
    pub fn new(file: &'f File, size: u64) -> Self {
        let direct = size >= DIRECT_MIN && set_direct(file, true).is_ok();
        BodyWriter { file, direct }
    }

    /// Whether the next write goes direct (for tests).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes the next chunk. Every chunk but the last must be a multiple of [`ALIGN`] long
    /// and come from an [`AlignedBuf`] (its start), or the rest of the file goes buffered.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let mut rest = chunk;
        if self.direct {
            let aligned = if chunk.as_ptr().align_offset(ALIGN) == 0 { chunk.len() / ALIGN * ALIGN } else { 0 };
            let mut done = 0;
            while done < aligned {
                match rustix::io::write(self.file, &chunk[done..aligned]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) if n % ALIGN == 0 => done += n,
                    Ok(n) => {
                        // A short, unaligned write: later direct writes would be refused.
                        done += n;
                        break;
                    }
                    Err(Errno::INTR) => {}
                    Err(Errno::INVAL) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            rest = &chunk[done..];
            if !rest.is_empty() {
                set_direct(self.file, false)?;
                self.direct = false;
            }
        }
        let mut f = self.file;
        f.write_all(rest)
    }
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file.as_fd())?;
    let flags = if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT };
    rustix::fs::fcntl_setfl(file.as_fd(), flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect()
    }

    /// Writes `data` in chunks of `chunk` bytes through an AlignedBuf, as the extractor does.
    fn write_in_chunks(dir: &Path, data: &[u8], chunk: usize) -> (Vec<u8>, bool) {
        let p = dir.join(format!("f{}-{chunk}", data.len()));
        let f = File::create(&p).unwrap();
        let mut w = BodyWriter::new(&f, data.len() as u64);
        let started_direct = w.is_direct();
        let mut buf = AlignedBuf::new(chunk);
        for part in data.chunks(chunk) {
            buf[..part.len()].copy_from_slice(part);
            w.write(&buf[..part.len()]).unwrap();
        }
        drop(f);
        (std::fs::read(&p).unwrap(), started_direct)
    }

    use std::path::Path;

    #[test]
    fn bodies_round_trip_at_every_awkward_size() {
        // The system temp dir: ext4 on these machines; tmpfs takes O_DIRECT too (Linux >= 6.6).
        let t = tempfile::tempdir().unwrap();
        let big = DIRECT_MIN as usize;
        for len in [0, 1, 4095, 4096, 4097, big - 1, big, big + 1, big + 4096, 3 * big + 123, (1 << 20) + 7] {
            let data = pattern(len);
            for chunk in [1 << 20, 64 * 1024] {
                let (back, direct) = write_in_chunks(t.path(), &data, chunk);
                assert_eq!(back.len(), data.len(), "len {len} chunk {chunk}");
                assert!(back == data, "len {len} chunk {chunk}: contents differ");
                assert_eq!(direct, len as u64 >= DIRECT_MIN, "len {len}: direct mode");
            }
        }
    }

    #[test]
    fn an_unaligned_chunk_drops_to_buffered_and_keeps_the_bytes() {
        let t = tempfile::tempdir().unwrap();
        let data = pattern(DIRECT_MIN as usize * 2);
        let f = File::create(t.path().join("f")).unwrap();
        let mut w = BodyWriter::new(&f, data.len() as u64);
        assert!(w.is_direct());
        // Not from an aligned buffer start: written buffered, and so is everything after.
        w.write(&data[..1000]).unwrap();
        assert!(!w.is_direct());
        w.write(&data[1000..]).unwrap();
        drop(f);
        assert!(std::fs::read(t.path().join("f")).unwrap() == data);
    }

    #[test]
    fn aligned_buffers_are_aligned_and_rounded_up() {
        let b = AlignedBuf::new(5000);
        assert_eq!(b.as_ptr().align_offset(ALIGN), 0);
        assert_eq!(b.len(), 8192);
        assert!(b.iter().all(|&x| x == 0));
    }
}
