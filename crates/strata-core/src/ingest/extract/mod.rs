//! Safe extraction of a layer tar stream into a new, empty directory (a layer's `diff/`).
//!
//! The tar crate parses (headers, PAX, GNU long names); every write is ours, fd-relative
//! below the root (see [`crate::ingest::safefs`]):
//!
//! * Names: leading `./` stripped; absolute names, `..` components, empty names and NUL
//!   bytes are refused with `UnsafeLayerEntry`. Missing parents are created `0755`. A parent
//!   that is a symlink (or not a directory) is refused: `openat2` with
//!   `RESOLVE_NO_SYMLINKS` never walks through one, so a symlink planted by an earlier
//!   entry (including a directory swapped for a symlink) cannot redirect a later write.
//! * Hard links: the target is resolved the same way inside the root, must exist and not
//!   be a directory, and is linked with `linkat` without following. Then, as Docker's
//!   extractor does, the link header's metadata goes to the shared inode: owner (which also
//!   clears setuid/setgid and `security.capability`), its xattrs, and — unless the target is
//!   a symlink — its mode and times. (A tar whose link entry says 0644 for a 4755 target
//!   leaves a 0644 file, in Docker and here.)
//! * Symlinks are created verbatim (absolute targets stay absolute) and never followed.
//! * Whiteouts become overlay whiteouts: `.wh.NAME` → char device 0/0 `NAME` (mode 0, the
//!   header's owner, the time it was made: Docker's overlay converter sets no times on it),
//!   `.wh..wh..opq` → `trusted.overlay.opaque=y` on its directory; other `.wh..wh.*` (aufs
//!   metadata) and everything under them are skipped.
//! * A layer that names a path twice is refused ([`Paths::Unique`], what load, pull and import
//!   ask for), as Docker 20.10 refuses it: its tar-split packer keeps every header's name,
//!   Go-`path.Clean`ed (`a`, `./a` and `d/../a` are one name; directories and the root `./`
//!   count too), and fails with "duplicates of file paths not supported". Where repeats are
//!   allowed ([`Paths::Repeatable`]: `ADD` of a local archive in a build, as Docker's untar
//!   allows them), a path that already exists is removed (recursively, never following
//!   symlinks) and created anew, except directory over directory, which only takes the new
//!   metadata.
//! * Metadata: uid/gid, then mode (chown clears setuid/setgid, so chmod comes after), then
//!   xattrs from PAX `SCHILY.xattr.*` (after chown, which drops `security.capability`),
//!   then times. Directory times are set at the end, deepest first, since creating
//!   children changes them.
//! * `trusted.overlay.*` and `user.overlay.*` xattrs from a layer are dropped, deliberately
//!   (Docker 20.10 applies them; `__test__/extract-docker.spec.ts` pins the difference). A
//!   layer dir becomes an overlay lower dir, and the kernel acts on these names there: a
//!   `redirect` makes a merged directory show another path's lower contents, `metacopy` makes a
//!   file take its data from a lower file, `opaque` hides what lies below, `origin`/`upper`
//!   feed the index's inode identity. A pulled layer is untrusted input, so it must not steer
//!   the mount beyond the one channel the layer format has for it: `.wh.` entries, which
//!   become whiteouts and `opaque=y` here. (`layertar` never writes them into a layer either.)
//! * GNU sparse files in PAX form (0.0, 0.1, 1.0; see [`crate::ingest::sparse`]) are written as Go's
//!   reader expands them — Docker's file, same name, size and bytes — with the holes left as
//!   holes (Docker 20.10 writes the zeros out: same bytes, more disk). Their bodies stay in the
//!   tar-split as raw bytes (the file on disk is not the body), so `save`/`push` reproduce the
//!   layer (Docker 20.10 cannot: its tar-split records the expanded file and the layer fails
//!   its DiffID check).
//! * Unsupported entry types (old GNU sparse `S`, volume headers, ...) are `UnsupportedArchive`;
//!   a broken header, a truncated stream or a PAX size that disagrees with the header is
//!   `CorruptArchive`. Data after a single end-of-archive block is `CorruptArchive` too
//!   (Go's `archive/tar`, which Docker uses, rejects it as well).
//!
//! The stream is read to its very end, so trailing bytes reach the caller's hashers and
//! the tar-split recorder.
//!
//! It must not follow a symlink, build a host path from an entry's name, or write outside
//! `dest`; removing a failed layer is the pipeline's job (`crate::ingest::layer`).
use crate::error::ErrorCode;
use crate::ingest::direct::{AlignedBuf, BodyWriter};
use crate::ingest::safefs::{self, RelPath};
use crate::ingest::sparse::{self, Sparse, SparseRecords};
use crate::ingest::stream::{clone_io, fault_of, Fault};
use crate::ingest::tarsplit::Recorder;
use filepool::{FilePool, PoolState, SmallFile, SMALL_FILE};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tar::EntryType;

mod filepool;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
const COPY_BUF: usize = 1 << 20;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The entry would write outside the layer root or through a symlink, or is malformed
    /// in a way only a hostile layer would be.
    #[error("unsafe layer entry {entry:?}: {reason}")]
    Unsafe { entry: String, reason: String },
    /// The tar stream is broken.
    #[error("corrupt layer archive{}: {reason}", entry.as_ref().map(|e| format!(" at {e:?}")).unwrap_or_default())]
    Corrupt { entry: Option<String>, reason: String },
    /// A tar feature strata does not implement.
    #[error("unsupported layer archive entry {entry:?}: {what}")]
    Unsupported { entry: String, what: String },
    /// A filesystem operation failed.
    #[error("{op} {entry:?}: {source}")]
    Io { op: &'static str, entry: String, source: io::Error },
    /// Reading the source stream failed.
    #[error("reading the layer stream: {source}")]
    Read { source: io::Error },
    /// Writing the tar-split failed.
    #[error("writing the tar-split: {source}")]
    TarSplit { source: io::Error },
    /// The cancellation flag was set.
    #[error("extraction cancelled")]
    Aborted,
}

impl crate::error::Coded for ExtractError {
    fn code(&self) -> ErrorCode {
        match self {
            ExtractError::Unsafe { .. } => ErrorCode::UnsafeLayerEntry,
            ExtractError::Corrupt { .. } => ErrorCode::CorruptArchive,
            ExtractError::Unsupported { .. } => ErrorCode::UnsupportedArchive,
            ExtractError::Io { .. } | ExtractError::Read { .. } | ExtractError::TarSplit { .. } => ErrorCode::Io,
            ExtractError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            ExtractError::Io { source, .. } | ExtractError::Read { source } | ExtractError::TarSplit { source } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            ExtractError::Unsafe { entry, .. }
            | ExtractError::Unsupported { entry, .. }
            | ExtractError::Io { entry, .. } => Some(entry.clone()),
            ExtractError::Corrupt { entry, .. } => entry.clone(),
            _ => None,
        }
    }
}

impl ExtractError {
    /// Maps an error that came out of the tar parser / reader stack.
    pub fn from_stream(e: io::Error, entry: Option<&str>) -> ExtractError {
        match fault_of(&e) {
            Some(Fault::Aborted) => ExtractError::Aborted,
            Some(Fault::Corrupt { format, detail }) => {
                ExtractError::Corrupt { entry: None, reason: format!("{format} stream: {detail}") }
            }
            Some(Fault::Source(src)) => ExtractError::Read { source: clone_io(src) },
            None => ExtractError::Corrupt { entry: entry.map(Into::into), reason: e.to_string() },
        }
    }
}

/// What an extraction produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Tar entries seen (extension headers not counted).
    pub entries: u64,
    /// Sum of the sizes of regular files written and of symlink targets (Docker's layer size:
    /// overlay2 reports `pkg/directory.Size` of the extracted tree).
    pub size: u64,
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> ExtractError {
    ExtractError::Unsafe { entry: entry.into(), reason: reason.into() }
}

fn corrupt(entry: &str, reason: impl Into<String>) -> ExtractError {
    ExtractError::Corrupt { entry: Some(entry.into()), reason: reason.into() }
}

fn io_at<'a>(op: &'static str, entry: &'a str) -> impl FnOnce(Errno) -> ExtractError + 'a {
    move |e| ExtractError::Io { op, entry: entry.into(), source: e.into() }
}

fn cancelled(cancel: &AtomicBool) -> Result<(), ExtractError> {
    if cancel.load(Ordering::Relaxed) {
        Err(ExtractError::Aborted)
    } else {
        Ok(())
    }
}

/// Whether a tar may name a path more than once (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paths {
    /// An image layer: a repeated path is refused, as Docker refuses it.
    Unique,
    /// A plain archive (build `ADD`): the later entry replaces the earlier one.
    Repeatable,
}

/// Go's `path.Clean`, lexically: the key under which Docker's tar-split notices a repeated
/// path (`a`, `./a`, `a/`, `x/../a` are one; `""` is `.`).
fn go_clean(p: &[u8]) -> Vec<u8> {
    let rooted = p.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in p.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." if parts.last().is_some_and(|s| *s != b"..") => {
                parts.pop();
            }
            b".." if rooted => {}
            s => parts.push(s),
        }
    }
    let mut out = if rooted { b"/".to_vec() } else { Vec::new() };
    out.extend(parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Extracts the tar stream `reader` into the existing, empty directory `root_dir`.
///
/// With a `recorder`, `reader` must be (or sit above) that recorder's
/// [`RecordingReader`](crate::ingest::tarsplit::RecordingReader): file bodies are announced to it
/// and everything else lands in tar-split segments. `cancel` is polled between entries and
/// between body chunks. With `writers` > 0, that many threads create the small files
/// ([`filepool`]) while this one goes on parsing.
pub fn extract<R: Read>(
    reader: R,
    root_dir: &Path,
    recorder: Option<&Recorder>,
    cancel: &AtomicBool,
    writers: usize,
    paths: Paths,
) -> Result<ExtractStats, ExtractError> {
    let root = safefs::open_root(root_dir).map_err(|source| ExtractError::Io {
        op: "open",
        entry: root_dir.display().to_string(),
        source,
    })?;
    let state = PoolState::new();
    std::thread::scope(|scope| {
        let pool = match writers {
            0 => None,
            n => Some(filepool::start(scope, n, &state, cancel).map_err(|source| ExtractError::Io {
                op: "spawn",
                entry: root_dir.display().to_string(),
                source,
            })?),
        };
        let mut x = Extractor {
            root: Arc::new(root),
            cache: None,
            dir_times: HashMap::new(),
            recorder,
            stats: ExtractStats::default(),
            buf: AlignedBuf::new(COPY_BUF),
            pool,
            seen: (paths == Paths::Unique).then(HashSet::new),
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(|e| ExtractError::from_stream(e, None))? {
            cancelled(cancel)?;
            let mut entry = entry.map_err(|e| ExtractError::from_stream(e, None))?;
            x.entry(&mut entry, cancel)?;
            x.flush_recorder()?;
        }
        let mut rest = archive.into_inner();
        x.drain_end(&mut rest, cancel)?;
        x.settle()?;
        x.finish_dirs()?;
        Ok(x.stats)
    })
}

/// Fills `buf` from an entry's body, of which `left` bytes (`buf.len()` or more) remain.
fn read_body<R: Read>(
    e: &mut tar::Entry<'_, R>,
    buf: &mut [u8],
    left: u64,
    shown: &str,
    cancel: &AtomicBool,
) -> Result<(), ExtractError> {
    let mut got = 0;
    while got < buf.len() {
        cancelled(cancel)?;
        match e.read(&mut buf[got..]) {
            Ok(0) => {
                let missing = left - got as u64;
                let size = e.size();
                return Err(corrupt(shown, format!("truncated: {missing} of {size} data bytes missing")));
            }
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(ExtractError::from_stream(err, Some(shown))),
        }
    }
    Ok(())
}

/// Owner, then mode, of a node we just created; each only when it differs from what the
/// node already has (one fstat instead of two inode updates per file: a layer of small
/// files created by root mostly needs neither).
fn set_owner_mode(fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<(), ExtractError> {
    crate::fsutil::set_owner_mode(fd, meta.uid, meta.gid, meta.mode).map_err(|(op, source)| ExtractError::Io {
        op,
        entry: shown.into(),
        source,
    })
}

/// Applies xattrs to an open fd, or (for `O_PATH` fds of symlinks and device nodes)
/// through `/proc/self/fd`. ENOTSUP/EPERM are ignored, as Docker does (e.g. `user.*`
/// cannot be set on a symlink).
fn set_xattrs(fd: BorrowedFd<'_>, opath: bool, meta: &Meta, shown: &str) -> Result<(), ExtractError> {
    for (k, v) in &meta.xattrs {
        let r = if opath {
            safefs::set_xattr_opath(fd, k, v)
        } else {
            rustix::fs::fsetxattr(fd, safefs::os(k), v, rustix::fs::XattrFlags::empty()).map_err(Into::into)
        };
        match r {
            Ok(()) => {}
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {}
            Err(source) => return Err(ExtractError::Io { op: "setxattr", entry: shown.into(), source }),
        }
    }
    Ok(())
}

/// Creates a regular file for an entry (never following or replacing anything), with the final
/// permission bits (less the umask) right away, so `set_owner_mode` can usually skip its chmod;
/// special bits come only after the owner is set.
fn create_file(parent: BorrowedFd<'_>, path: &RelPath, meta: &Meta, shown: &str) -> Result<File, ExtractError> {
    let fd = rustix::fs::openat(
        parent,
        safefs::os(path.leaf()),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(meta.mode & 0o777),
    )
    .map_err(io_at("create", shown))?;
    Ok(File::from(fd))
}

/// Owner, mode, xattrs and times of a regular file just created and written.
pub(crate) fn finish_open_file(f: &File, meta: &Meta, shown: &str) -> Result<(), ExtractError> {
    set_owner_mode(f.as_fd(), meta, shown)?;
    set_xattrs(f.as_fd(), false, meta, shown)?;
    rustix::fs::futimens(f, &meta.times).map_err(io_at("utimens", shown))
}

/// Metadata of one entry, from its header and PAX records.
#[derive(Clone)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub times: Timestamps,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// PAX records of interest.
#[derive(Default)]
struct Pax {
    mtime: Option<Timespec>,
    atime: Option<Timespec>,
    /// Owners too large for the header's octal fields (Go writes them as PAX records).
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: SparseRecords,
}

/// Parses a PAX time `[-]secs[.frac]` into a timespec.
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    Some(if !neg {
        Timespec { tv_sec: secs, tv_nsec: nanos }
    } else if nanos == 0 {
        Timespec { tv_sec: -secs, tv_nsec: 0 }
    } else {
        Timespec { tv_sec: -secs - 1, tv_nsec: 1_000_000_000 - nanos }
    })
}

fn is_header_only(kind: EntryType) -> bool {
    matches!(
        kind,
        EntryType::Link
            | EntryType::Symlink
            | EntryType::Char
            | EntryType::Block
            | EntryType::Directory
            | EntryType::Fifo
    )
}

/// How a (safe) name is treated with respect to whiteouts.
enum Role<'a> {
    Normal,
    /// `.wh.NAME`: NAME was deleted.
    Whiteout(&'a [u8]),
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// aufs metadata (`.wh..wh.*` other than the opaque marker), or below it.
    AufsMeta,
}

fn role(path: &RelPath) -> Role<'_> {
    let leaf = path.leaf();
    let parent_meta = path.parent().split(|&b| b == b'/').any(|c| c.starts_with(WHITEOUT_META_PREFIX));
    if parent_meta {
        Role::AufsMeta
    } else if leaf == WHITEOUT_OPAQUE {
        Role::Opaque
    } else if leaf.starts_with(WHITEOUT_META_PREFIX) {
        Role::AufsMeta
    } else if let Some(name) = leaf.strip_prefix(WHITEOUT_PREFIX) {
        Role::Whiteout(name)
    } else {
        Role::Normal
    }
}

struct Extractor<'r, 'p> {
    root: Arc<OwnedFd>,
    /// Last resolved parent directory (entries come grouped by directory); dropped on any
    /// removal, the only thing that can change what a path resolves to.
    cache: Option<(Vec<u8>, Arc<OwnedFd>)>,
    dir_times: HashMap<RelPath, Timestamps>,
    recorder: Option<&'r Recorder>,
    stats: ExtractStats,
    buf: AlignedBuf,
    /// Workers for small files, when asked for.
    pool: Option<FilePool<'p>>,
    /// Cleaned names of the entries so far, when a repeated path is refused ([`Paths::Unique`]).
    seen: Option<HashSet<Vec<u8>>>,
}

impl Extractor<'_, '_> {
    /// Waits for every file handed to the workers (see `filepool`).
    fn settle(&mut self) -> Result<(), ExtractError> {
        match &mut self.pool {
            Some(p) => p.settle(),
            None => Ok(()),
        }
    }

    /// Waits for the workers if `path` is, or lies below, a file still in flight.
    fn settle_if_overlaps(&mut self, path: &RelPath) -> Result<(), ExtractError> {
        match &mut self.pool {
            Some(p) if p.overlaps(path.as_bytes()) => p.settle(),
            _ => Ok(()),
        }
    }

    /// Refuses a name seen before, as Docker's tar-split packer does (every header counts,
    /// global PAX headers and the root included).
    fn first_time(&mut self, name: &[u8], shown: &str) -> Result<(), ExtractError> {
        let Some(seen) = &mut self.seen else { return Ok(()) };
        if seen.insert(go_clean(name)) {
            return Ok(());
        }
        Err(ExtractError::Unsupported {
            entry: shown.into(),
            what: "duplicates of file paths not supported (the layer names this path twice)".into(),
        })
    }

    fn flush_recorder(&self) -> Result<(), ExtractError> {
        if let Some(r) = self.recorder {
            r.flush_if_large().map_err(|source| ExtractError::TarSplit { source })?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, cancel: &AtomicBool) -> Result<(), ExtractError> {
        self.stats.entries += 1;
        let header_name = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&header_name).into_owned();
        let mut kind = e.header().entry_type();
        // Old (v7) tars mark directories as type '\0' with a trailing slash; Go's
        // archive/tar reads those as directories, and so do we.
        if e.header().as_bytes()[156] == 0 && header_name.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        if kind.is_pax_global_extensions() {
            // Docker ignores global PAX headers; the bytes still go to the tar-split.
            self.first_time(&header_name, &shown)?;
            return self.skip_data(e, &shown, cancel);
        }
        if kind.is_gnu_sparse() {
            // Go reads it, but Docker's extractor then fails: "unhandled tar header type 83".
            return Err(ExtractError::Unsupported { entry: shown, what: "GNU sparse file (type S)".into() });
        }
        let pax = self.pax(e, &shown)?;
        let sparse = pax.sparse.resolve().map_err(|reason| corrupt(&shown, reason))?;
        if sparse.is_some() && is_header_only(kind) {
            return Err(corrupt(&shown, format!("sparse records on a {kind:?} entry")));
        }
        // A sparse file's real name is in its records (the header holds a placeholder).
        let (raw_name, shown) = match sparse.as_ref().and_then(|s| s.name.clone()) {
            Some(n) => {
                let shown = String::from_utf8_lossy(&n).into_owned();
                (n, shown)
            }
            None => (header_name, shown),
        };
        self.first_time(&raw_name, &shown)?;
        let size = e.size();
        if let Some(psize) = pax.size {
            // A PAX size overrides the header's; a non-zero header size that disagrees is a
            // parser-differential trick, not something a real tar writer produces.
            let hsize = e.header().entry_size().map_err(|err| corrupt(&shown, err.to_string()))?;
            if hsize != 0 && hsize != psize {
                return Err(corrupt(&shown, format!("PAX size {psize} disagrees with header size {hsize}")));
            }
        }
        if is_header_only(kind) && size != 0 {
            return Err(corrupt(&shown, format!("{kind:?} entry carries {size} data bytes")));
        }
        let path = match RelPath::parse(&raw_name) {
            Err(reason) => return Err(unsafe_entry(&shown, reason)),
            Ok(None) if kind == EntryType::Directory => return Ok(()), // `./`: the root itself
            Ok(None) => return Err(unsafe_entry(&shown, "names the layer root")),
            Ok(Some(p)) => p,
        };
        match role(&path) {
            Role::AufsMeta => return self.skip_data(e, &shown, cancel),
            Role::Opaque => {
                self.settle_if_overlaps(&path)?;
                self.opaque(&path, &shown)?;
                return self.skip_data(e, &shown, cancel);
            }
            Role::Whiteout(name) => {
                if name.is_empty() || name == b"." || name == b".." {
                    return Err(unsafe_entry(&shown, "whiteout of '', '.' or '..'"));
                }
                let meta = self.meta(e, &pax, &shown)?;
                self.whiteout(&path, name, &meta, &shown)?;
                return self.skip_data(e, &shown, cancel);
            }
            Role::Normal => {}
        }
        let meta = self.meta(e, &pax, &shown)?;
        self.settle_if_overlaps(&path)?;
        match kind {
            EntryType::Regular | EntryType::Continuous => match sparse {
                Some(sp) => self.sparse_file(e, &path, &meta, &sp, &shown, cancel),
                None => self.file(e, &path, &meta, &shown, cancel),
            },
            EntryType::Directory => self.dir(&path, &meta, &shown),
            EntryType::Symlink => {
                let target = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                // Docker's layer size is overlay2's `directory.Size` of the extracted tree:
                // a symlink counts the length of its target.
                self.stats.size += target.len() as u64;
                self.symlink(&path, &target, &meta, &shown)
            }
            EntryType::Link => {
                let target = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                self.hardlink(&path, &target, &meta, &shown)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let hdr = e.header();
                let major = hdr.device_major().map_err(|err| corrupt(&shown, err.to_string()))?.unwrap_or(0);
                let minor = hdr.device_minor().map_err(|err| corrupt(&shown, err.to_string()))?.unwrap_or(0);
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                self.node(&path, ft, rustix::fs::makedev(major, minor), &meta, &shown)
            }
            other => Err(ExtractError::Unsupported {
                entry: shown,
                what: format!("entry type {:?}", other.as_byte() as char),
            }),
        }
    }

    fn pax<R: Read>(&self, e: &mut tar::Entry<'_, R>, shown: &str) -> Result<Pax, ExtractError> {
        let mut pax = Pax::default();
        let Some(exts) = e.pax_extensions().map_err(|err| ExtractError::from_stream(err, Some(shown)))? else {
            return Ok(pax);
        };
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for ext in exts {
            let ext = ext.map_err(|err| corrupt(shown, format!("bad PAX record: {err}")))?;
            let (k, v) = (ext.key_bytes(), ext.value_bytes());
            // 0.0 sparse maps repeat their offset/numbytes keys by design.
            if pax.sparse.record(k, v).map_err(|reason| corrupt(shown, reason))? {
                if !matches!(k, b"GNU.sparse.offset" | b"GNU.sparse.numbytes") && seen.iter().any(|s| s == k) {
                    return Err(corrupt(shown, format!("duplicate PAX record {:?}", String::from_utf8_lossy(k))));
                }
                seen.push(k.to_vec());
                continue;
            }
            // Parsers disagree on which of two equal keys wins (tar-rs: first, Go: last);
            // a layer that relies on that is refused.
            if seen.iter().any(|s| s == k) {
                return Err(corrupt(shown, format!("duplicate PAX record {:?}", String::from_utf8_lossy(k))));
            }
            seen.push(k.to_vec());
            match k {
                b"mtime" => pax.mtime = Some(parse_pax_time(v).ok_or_else(|| corrupt(shown, "bad PAX mtime"))?),
                b"atime" => pax.atime = Some(parse_pax_time(v).ok_or_else(|| corrupt(shown, "bad PAX atime"))?),
                b"size" => {
                    let s = std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok());
                    pax.size = Some(s.ok_or_else(|| corrupt(shown, "bad PAX size"))?);
                }
                b"uid" | b"gid" => {
                    let id = std::str::from_utf8(v).ok().and_then(|s| s.parse::<u32>().ok());
                    let id = Some(id.ok_or_else(|| corrupt(shown, "bad PAX uid/gid"))?);
                    if k == b"uid" {
                        pax.uid = id;
                    } else {
                        pax.gid = id;
                    }
                }
                _ if k.starts_with(b"SCHILY.xattr.") => pax.xattrs.push((k[13..].to_vec(), v.to_vec())),
                _ => {}
            }
        }
        Ok(pax)
    }

    fn meta<R: Read>(&self, e: &tar::Entry<'_, R>, pax: &Pax, shown: &str) -> Result<Meta, ExtractError> {
        let h = e.header();
        // Go's archive/tar (Docker) reads an empty numeric field as 0; tar-rs refuses it.
        let num = |what: &str, r: io::Result<u64>, field: std::ops::Range<usize>| match r {
            Ok(v) => Ok(v),
            Err(_) if h.as_bytes()[field].iter().all(|&b| b == 0 || b == b' ') => Ok(0),
            Err(err) => Err(corrupt(shown, format!("bad {what}: {err}"))),
        };
        let uid = match pax.uid {
            Some(u) => u,
            None => u32::try_from(num("uid", h.uid(), 108..116)?).map_err(|_| corrupt(shown, "uid out of range"))?,
        };
        let gid = match pax.gid {
            Some(g) => g,
            None => u32::try_from(num("gid", h.gid(), 116..124)?).map_err(|_| corrupt(shown, "gid out of range"))?,
        };
        let mode = num("mode", h.mode().map(u64::from), 100..108)? as u32 & 0o7777;
        let mtime = match pax.mtime {
            Some(t) => t,
            None => {
                Timespec { tv_sec: i64::try_from(num("mtime", h.mtime(), 136..148)?).unwrap_or(i64::MAX), tv_nsec: 0 }
            }
        };
        // As Docker: the access time is never before the modification time.
        let atime = match pax.atime {
            Some(a) if (a.tv_sec, a.tv_nsec) > (mtime.tv_sec, mtime.tv_nsec) => a,
            _ => mtime,
        };
        let xattrs = pax
            .xattrs
            .iter()
            .filter(|(k, _)| !k.starts_with(b"trusted.overlay.") && !k.starts_with(b"user.overlay."))
            .cloned()
            .collect();
        Ok(Meta { uid, gid, mode, times: Timestamps { last_access: atime, last_modification: mtime }, xattrs })
    }

    /// Reads an entry's data without writing it anywhere (it stays in the tar-split).
    fn skip_data<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        shown: &str,
        cancel: &AtomicBool,
    ) -> Result<(), ExtractError> {
        loop {
            cancelled(cancel)?;
            match e.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(_) => self.flush_recorder()?,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ExtractError::from_stream(err, Some(shown))),
            }
        }
    }

    fn resolve_error(&self, err: io::Error, shown: &str, what: &str) -> ExtractError {
        match err.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EXDEV) => unsafe_entry(shown, format!("{what} goes through a symlink")),
            Some(libc::ENOTDIR) => unsafe_entry(shown, format!("{what} goes through a non-directory")),
            _ => ExtractError::Io { op: "resolve", entry: shown.into(), source: err },
        }
    }

    /// The parent directory of `path` (`O_PATH`), created (0755) where missing.
    fn parent(&mut self, path: &RelPath, shown: &str) -> Result<Arc<OwnedFd>, ExtractError> {
        let p = path.parent();
        if p.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((cp, fd)) = &self.cache {
            if cp == p {
                return Ok(fd.clone());
            }
        }
        let fd = match safefs::open_in_root(self.root.as_fd(), p, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => self.create_parents(path, shown)?,
            Err(err) => return Err(self.resolve_error(err, shown, "parent path")),
        };
        let fd = Arc::new(fd);
        self.cache = Some((p.to_vec(), fd.clone()));
        Ok(fd)
    }

    fn create_parents(&mut self, path: &RelPath, shown: &str) -> Result<OwnedFd, ExtractError> {
        let parent = RelPath::parse(path.parent()).ok().flatten().expect("parent of a normalised path is normalised");
        let mut cur: Option<OwnedFd> = None;
        for comp in parent.components() {
            let dir = cur.as_ref().map(|f| f.as_fd()).unwrap_or(self.root.as_fd());
            let next = match safefs::open_child_dir(dir, comp, OFlags::PATH) {
                Ok(fd) => fd,
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                    match rustix::fs::mkdirat(dir, safefs::os(comp), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(err) => return Err(io_at("mkdir", shown)(err)),
                    }
                    // mkdir's mode is filtered by the umask; parents are 0755 whatever it is.
                    let fd = safefs::open_child_dir(dir, comp, OFlags::RDONLY)
                        .map_err(|err| self.resolve_error(err, shown, "parent path"))?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755)).map_err(io_at("chmod", shown))?;
                    fd
                }
                Err(err) => return Err(self.resolve_error(err, shown, "parent path")),
            };
            cur = Some(next);
        }
        Ok(cur.expect("a parent path has at least one component"))
    }

    /// Makes room for a new entry named `leaf` in `dir`. Returns true when an existing
    /// directory is kept (directory over directory).
    fn clear(
        &mut self,
        dir: BorrowedFd<'_>,
        path: &RelPath,
        leaf: &[u8],
        new_is_dir: bool,
        shown: &str,
    ) -> Result<bool, ExtractError> {
        match rustix::fs::statat(dir, safefs::os(leaf), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(err) => Err(io_at("stat", shown)(err)),
            Ok(st) => {
                if new_is_dir && FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Ok(true);
                }
                // What goes may hold files still being written.
                self.settle()?;
                safefs::remove_all_at(dir, leaf).map_err(|source| ExtractError::Io {
                    op: "remove",
                    entry: shown.into(),
                    source,
                })?;
                self.cache = None;
                self.dir_times.retain(|p, _| !p.starts_with(path));
                Ok(false)
            }
        }
    }

    fn file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        path: &RelPath,
        meta: &Meta,
        shown: &str,
        cancel: &AtomicBool,
    ) -> Result<(), ExtractError> {
        let parent = self.parent(path, shown)?;
        self.clear(parent.as_fd(), path, path.leaf(), false, shown)?;
        let size = e.size();
        if let Some(r) = self.recorder {
            r.file(path.as_bytes(), e.raw_file_position(), size).map_err(|source| ExtractError::TarSplit { source })?;
        }
        if let Some(pool) = self.pool.as_mut().filter(|_| size <= SMALL_FILE) {
            let mut body = vec![0u8; size as usize];
            read_body(e, &mut body, size, shown, cancel)?;
            self.stats.size += size;
            let job =
                SmallFile { parent, leaf: path.leaf().to_vec(), body, meta: meta.clone(), shown: shown.to_owned() };
            return pool.submit(path.as_bytes(), job);
        }
        let f = create_file(parent.as_fd(), path, meta, shown)?;
        let mut body = BodyWriter::new(&f, size);
        let mut left = size;
        while left > 0 {
            // Fill the whole chunk first: only a body's last chunk may be unaligned.
            let want = left.min(self.buf.len() as u64) as usize;
            read_body(e, &mut self.buf[..want], left, shown, cancel)?;
            body.write(&self.buf[..want]).map_err(|source| ExtractError::Io {
                op: "write",
                entry: shown.into(),
                source,
            })?;
            left -= want as u64;
        }
        self.stats.size += size;
        finish_open_file(&f, meta, shown)
    }

    /// A GNU sparse file (see [`crate::ingest::sparse`]): each fragment written at its offset, holes
    /// left as holes, the file cut to its real size. Not announced to the tar-split recorder:
    /// its body (map and fragments) is kept there as raw bytes.
    fn sparse_file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        path: &RelPath,
        meta: &Meta,
        sp: &Sparse,
        shown: &str,
        cancel: &AtomicBool,
    ) -> Result<(), ExtractError> {
        let mut left = e.size();
        let (map, size) = match &sp.layout {
            sparse::Layout::Records(map) => (map.clone(), sp.size.unwrap_or(left)),
            sparse::Layout::InBody => {
                // An error of the stream itself (cancel, a cut) is reported as it is.
                let mut failed: Option<ExtractError> = None;
                let read = sparse::read_map_1x0(|blk| {
                    if left < blk.len() as u64 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short"));
                    }
                    if let Err(err) = read_body(e, blk, left, shown, cancel) {
                        failed = Some(err);
                        return Err(io::Error::other("stream failed"));
                    }
                    left -= blk.len() as u64;
                    Ok(())
                });
                if let Some(err) = failed {
                    return Err(err);
                }
                let (map, _) = read.map_err(|err| match err.kind() {
                    io::ErrorKind::Unsupported => {
                        ExtractError::Unsupported { entry: shown.into(), what: err.to_string() }
                    }
                    _ => corrupt(shown, format!("sparse map: {err}")),
                })?;
                self.flush_recorder()?;
                (map, sp.size.unwrap_or(left))
            }
        };
        sparse::validate(&map, size).map_err(|reason| corrupt(shown, reason))?;
        let parent = self.parent(path, shown)?;
        self.clear(parent.as_fd(), path, path.leaf(), false, shown)?;
        let f = create_file(parent.as_fd(), path, meta, shown)?;
        for frag in &map {
            if frag.length > left {
                return Err(corrupt(shown, "sparse file references non-existent data"));
            }
            let mut done = 0u64;
            while done < frag.length {
                let want = (frag.length - done).min(self.buf.len() as u64) as usize;
                read_body(e, &mut self.buf[..want], left, shown, cancel)?;
                std::os::unix::fs::FileExt::write_all_at(&f, &self.buf[..want], frag.offset + done)
                    .map_err(|source| ExtractError::Io { op: "write", entry: shown.into(), source })?;
                done += want as u64;
                left -= want as u64;
                self.flush_recorder()?;
            }
        }
        if left > 0 {
            return Err(corrupt(shown, "sparse file contains unreferenced data"));
        }
        f.set_len(size).map_err(|source| ExtractError::Io { op: "truncate", entry: shown.into(), source })?;
        self.stats.size += size;
        finish_open_file(&f, meta, shown)
    }

    fn dir(&mut self, path: &RelPath, meta: &Meta, shown: &str) -> Result<(), ExtractError> {
        let parent = self.parent(path, shown)?;
        let leaf = safefs::os(path.leaf());
        if !self.clear(parent.as_fd(), path, path.leaf(), true, shown)? {
            rustix::fs::mkdirat(parent.as_fd(), leaf, Mode::from_raw_mode(0o700)).map_err(io_at("mkdir", shown))?;
        }
        let fd = rustix::fs::openat(
            parent.as_fd(),
            leaf,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_at("open", shown))?;
        set_owner_mode(fd.as_fd(), meta, shown)?;
        set_xattrs(fd.as_fd(), false, meta, shown)?;
        self.dir_times.insert(path.clone(), meta.times.clone());
        Ok(())
    }

    /// Owner, xattrs, mode (unless a symlink) and times of a node we just created that
    /// cannot be opened for writing (symlink, fifo, device).
    fn finish_node(
        &self,
        dir: BorrowedFd<'_>,
        leaf: &[u8],
        is_symlink: bool,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ExtractError> {
        self.apply_meta(dir, leaf, !is_symlink, true, meta, shown)
    }

    /// The order of Docker's `createTarFile`: lchown (which makes the kernel drop setuid/setgid
    /// and `security.capability`), the header's xattrs, then the mode and the times.
    fn apply_meta(
        &self,
        dir: BorrowedFd<'_>,
        leaf: &[u8],
        chmod: bool,
        times: bool,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ExtractError> {
        let name = safefs::os(leaf);
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io_at("chown", shown))?;
        if !meta.xattrs.is_empty() {
            let fd = rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(io_at("open", shown))?;
            set_xattrs(fd.as_fd(), true, meta, shown)?;
        }
        if chmod {
            safefs::chmod_nofollow(dir, leaf, meta.mode).map_err(|source| ExtractError::Io {
                op: "chmod",
                entry: shown.into(),
                source,
            })?;
        }
        if times {
            rustix::fs::utimensat(dir, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_at("utimens", shown))?;
        }
        Ok(())
    }

    fn symlink(&mut self, path: &RelPath, target: &[u8], meta: &Meta, shown: &str) -> Result<(), ExtractError> {
        if target.is_empty() || target.contains(&0) {
            return Err(unsafe_entry(shown, "empty symlink target or NUL byte in it"));
        }
        let parent = self.parent(path, shown)?;
        self.clear(parent.as_fd(), path, path.leaf(), false, shown)?;
        rustix::fs::symlinkat(safefs::os(target), parent.as_fd(), safefs::os(path.leaf()))
            .map_err(io_at("symlink", shown))?;
        self.finish_node(parent.as_fd(), path.leaf(), true, meta, shown)
    }

    fn node(
        &mut self,
        path: &RelPath,
        ft: FileType,
        dev: rustix::fs::Dev,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ExtractError> {
        let parent = self.parent(path, shown)?;
        self.clear(parent.as_fd(), path, path.leaf(), false, shown)?;
        rustix::fs::mknodat(parent.as_fd(), safefs::os(path.leaf()), ft, Mode::from_raw_mode(0o600), dev)
            .map_err(io_at("mknod", shown))?;
        self.finish_node(parent.as_fd(), path.leaf(), false, meta, shown)
    }

    fn hardlink(&mut self, path: &RelPath, target_raw: &[u8], meta: &Meta, shown: &str) -> Result<(), ExtractError> {
        // The target may be a file still being written.
        self.settle()?;
        let target = match RelPath::parse(target_raw) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(unsafe_entry(shown, "hardlink to the layer root")),
            Err(reason) => return Err(unsafe_entry(shown, format!("hardlink target: {reason}"))),
        };
        let tparent = match safefs::open_in_root(self.root.as_fd(), target.parent(), OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                return Err(unsafe_entry(shown, "hardlink target does not exist in the layer"))
            }
            Err(err) => return Err(self.resolve_error(err, shown, "hardlink target")),
        };
        let tleaf = safefs::os(target.leaf());
        let tst = match rustix::fs::statat(&tparent, tleaf, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(unsafe_entry(shown, "hardlink target does not exist in the layer")),
            Err(err) => return Err(io_at("stat", shown)(err)),
        };
        if FileType::from_raw_mode(tst.st_mode) == FileType::Directory {
            return Err(unsafe_entry(shown, "hardlink to a directory"));
        }
        let parent = self.parent(path, shown)?;
        let same = rustix::fs::statat(parent.as_fd(), safefs::os(path.leaf()), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_ino == tst.st_ino && st.st_dev == tst.st_dev);
        // Already that file (a link to itself, or a repeated link): only the metadata below.
        if !same {
            self.clear(parent.as_fd(), path, path.leaf(), false, shown)?;
            rustix::fs::linkat(&tparent, tleaf, parent.as_fd(), safefs::os(path.leaf()), AtFlags::empty()).map_err(
                |err| {
                    if err == Errno::NOENT {
                        unsafe_entry(shown, "hardlink target vanished (replaced by this entry)")
                    } else {
                        io_at("link", shown)(err)
                    }
                },
            )?;
        }
        // The link header's metadata goes to the shared inode, as Docker's `createTarFile`
        // applies it; through a link to a symlink only owner and xattrs (Go has no lchmod, and
        // Docker's times go through the link).
        let to_symlink = FileType::from_raw_mode(tst.st_mode) == FileType::Symlink;
        self.apply_meta(parent.as_fd(), path.leaf(), !to_symlink, !to_symlink, meta, shown)
    }

    fn whiteout(&mut self, path: &RelPath, name: &[u8], meta: &Meta, shown: &str) -> Result<(), ExtractError> {
        let parent = self.parent(path, shown)?;
        let target = {
            let mut b = path.parent().to_vec();
            if !b.is_empty() {
                b.push(b'/');
            }
            b.extend_from_slice(name);
            RelPath::parse(&b).ok().flatten().ok_or_else(|| unsafe_entry(shown, "bad whiteout name"))?
        };
        self.settle_if_overlaps(&target)?;
        self.clear(parent.as_fd(), &target, name, false, shown)?;
        rustix::fs::mknodat(
            parent.as_fd(),
            safefs::os(name),
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(io_at("mknod", shown))?;
        // Like Docker's overlay whiteout converter: owner from the header, mode 0, and the
        // time of the mknod (it sets no times).
        rustix::fs::chownat(
            parent.as_fd(),
            safefs::os(name),
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io_at("chown", shown))
    }

    fn opaque(&mut self, path: &RelPath, shown: &str) -> Result<(), ExtractError> {
        let parent = self.parent(path, shown)?;
        // The O_PATH fd cannot carry xattrs; reopen the very same directory for real.
        let dir = rustix::fs::openat(
            parent.as_fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_at("open", shown))?;
        rustix::fs::fsetxattr(&dir, safefs::os(OPAQUE_XATTR), b"y", rustix::fs::XattrFlags::empty())
            .map_err(io_at("setxattr", shown))
    }

    /// After the end-of-archive block: refuse a non-zero block right after a single zero
    /// block (Go's tar does), then read the rest of the stream to its end.
    fn drain_end<R: Read>(&mut self, rest: &mut R, cancel: &AtomicBool) -> Result<(), ExtractError> {
        let mut block = [0u8; 512];
        let mut got = 0;
        while got < block.len() {
            match rest.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ExtractError::from_stream(err, None)),
            }
        }
        if got == block.len() && block.iter().any(|&b| b != 0) {
            return Err(ExtractError::Corrupt {
                entry: None,
                reason: "data after a single end-of-archive block".into(),
            });
        }
        loop {
            cancelled(cancel)?;
            match rest.read(&mut self.buf) {
                Ok(0) => break,
                Ok(_) => self.flush_recorder()?,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ExtractError::from_stream(err, None)),
            }
        }
        Ok(())
    }

    /// Directory times, deepest first (setting a child's changes its parent's mtime).
    fn finish_dirs(&mut self) -> Result<(), ExtractError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dir_times).into_iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.depth()));
        for (p, times) in dirs {
            let fd = match safefs::open_in_root(self.root.as_fd(), p.as_bytes(), OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                // Replaced later in the stream by something that is not a directory.
                Err(err)
                    if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV)) =>
                {
                    continue
                }
                Err(source) => return Err(ExtractError::Io { op: "open", entry: p.display(), source }),
            };
            rustix::fs::futimens(&fd, &times).map_err(io_at("utimens", &p.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean_matches_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("a", "a"),
            ("./a", "a"),
            ("a/", "a"),
            ("d//e", "d/e"),
            ("d/./e", "d/e"),
            ("x/../d/e", "d/e"),
            ("../a", "../a"),
            ("a/../..", ".."),
            ("/a/../..", "/"),
            ("/", "/"),
        ] {
            assert_eq!(go_clean(input.as_bytes()), want.as_bytes(), "{input}");
        }
    }

    #[test]
    fn pax_times_parse_with_fractions_and_signs() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("x"), None);
        assert_eq!(t(""), None);
    }
}
