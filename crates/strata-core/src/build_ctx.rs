//! The build context and COPY/ADD: the file work of `strata build` that must not run on the JS
//! thread.
//!
//! * [`scan_dirs`] lists directories of a context (one level each: the caller applies
//!   `.dockerignore` and asks for the next level), with the `lstat` data the stat index keys
//!   on (dev, inode, size, mtime and ctime in ns, mode) and symlink targets.
//! * [`hash_files`] computes the sha256 of files' contents on a few threads (what a COPY
//!   source's cache key is made of), counting the bytes it read.
//! * [`copy_in`] carries out a COPY: a list of [`CopyOp`]s computed by the caller, from a
//!   source root into a destination root (a build step's overlay mount). Every destination
//!   path is resolved *inside* the destination root (`openat2` with `RESOLVE_IN_ROOT`:
//!   symlinks are followed as a chroot would, never out of it); every source path inside the
//!   source root the same way. Regular files are copied through a buffer and hashed on the
//!   way, so the caller can check that what was copied is what the cache key was made of.
//! * [`stat_in_root`] / [`read_in_root`]: what a path of a rootfs is (is the COPY destination
//!   a directory?) and small files of it (`/etc/passwd` for `--chown=name`), confined likewise.
//!
//! It must not read `.dockerignore` nor compute cache keys (TypeScript does), nor decide what
//! ADD unpacks (`crate::build_add`), and never writes outside the destination root.
use crate::digest::{Digest, Hasher};
use crate::error::{Coded, ErrorCode};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Resolution of paths inside a rootfs or context: symlinks followed but confined (chroot
/// semantics), no magic links, no crossing into other mounts.
const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS).union(ResolveFlags::NO_XDEV);

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum BuildCtxError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: String, source: io::Error },
    /// A source changed between the hashing of the cache key and the copy.
    #[error("{path} changed during the build: expected {expected}, copied {found}")]
    Changed { path: String, expected: String, found: String },
    #[error("build context operation cancelled")]
    Aborted,
}

impl Coded for BuildCtxError {
    fn code(&self) -> ErrorCode {
        match self {
            BuildCtxError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => {
                ErrorCode::SourceNotFound
            }
            BuildCtxError::Io { .. } => ErrorCode::Io,
            BuildCtxError::Changed { .. } => ErrorCode::FileChangedDuringArchive,
            BuildCtxError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            BuildCtxError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            BuildCtxError::Io { path, .. } | BuildCtxError::Changed { path, .. } => Some(path.clone()),
            BuildCtxError::Aborted => None,
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn io_err<'a>(op: &'static str, path: &'a [u8]) -> impl Fn(Errno) -> BuildCtxError + 'a {
    move |e| BuildCtxError::Io { op, path: lossy(path), source: e.into() }
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(b)
}

/// Opens `rel` (relative, may be empty for the root) inside `root`, symlinks followed within it.
fn open_in(root: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    let rel = rel.strip_prefix(b"/").unwrap_or(rel);
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    loop {
        match rustix::fs::openat2(root, os(rel), flags | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd, BuildCtxError> {
    rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| BuildCtxError::Io { op: "open", path: path.display().to_string(), source: e.into() })
}

fn ns(sec: i64, nsec: u64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec as i64)
}

/// One directory entry with its `lstat` data.
#[derive(Clone, Debug)]
pub struct ScanEntry {
    /// Index of the directory (in the request) it was found in.
    pub dir: u32,
    pub name: Vec<u8>,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    /// A symlink's target.
    pub link: Option<Vec<u8>>,
    /// Extended attributes (name, value), sorted by name; overlay's bookkeeping ones left out.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Writes the stat index's key of a file (ts/build/statindex.ts): `dev:ino:size:mtimeNs:ctimeNs:mode`.
pub fn write_stat_key(out: &mut String, dev: u64, ino: u64, size: u64, mtime_ns: i64, ctime_ns: i64, mode: u32) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, "{dev}:{ino}:{size}:{mtime_ns}:{ctime_ns}:{mode}");
}

/// [`write_stat_key`] of what `fstat` says of `fd`.
fn stat_key_of(fd: BorrowedFd<'_>) -> Result<String, Errno> {
    let st = rustix::fs::fstat(fd)?;
    let mut key = String::with_capacity(64);
    let (mtime, ctime) = (ns(st.st_mtime, st.st_mtime_nsec), ns(st.st_ctime, st.st_ctime_nsec));
    write_stat_key(&mut key, st.st_dev, st.st_ino, st.st_size as u64, mtime, ctime, st.st_mode);
    Ok(key)
}

/// Extended attributes as (name, value) pairs.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Whether an xattr is overlayfs' own (never part of a file's content as a build sees it).
fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// The xattrs of `name` in the directory `dir` (not following a symlink), sorted by name.
/// Read through `/proc/self/fd/<dir>/<name>`: the `l*xattr` calls take paths only.
pub fn xattrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Xattrs, Errno> {
    use std::os::fd::AsRawFd;
    let cname = std::ffi::CString::new(name).map_err(|_| Errno::INVAL)?;
    let mut names = vec![0u8; 1024];
    // listxattrat(2) (Linux 6.13) lists relative to the directory fd; a context scan calls
    // this for every entry, and almost none has xattrs, so the common case is one cheap
    // call (the `/proc/self/fd` path below costs a proc lookup per entry, ~8x the time).
    let listed = loop {
        match listxattrat(dir, &cname, &mut names) {
            Ok(n) => break Some(n),
            Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::NOSYS) => break None,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    if listed == Some(0) {
        return Ok(Vec::new());
    }
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    let path = std::ffi::CString::new(p).map_err(|_| Errno::INVAL)?;
    let len = match listed {
        Some(n) => n,
        None => loop {
            match rustix::fs::llistxattr(path.as_c_str(), &mut names[..]) {
                Ok(n) => break n,
                Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
                Err(Errno::NOTSUP) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        },
    };
    let mut out = Vec::new();
    for n in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty() && !is_overlay_xattr(n)) {
        let cn = std::ffi::CString::new(n).map_err(|_| Errno::INVAL)?;
        let mut val = vec![0u8; 256];
        let vlen = loop {
            match rustix::fs::lgetxattr(path.as_c_str(), cn.as_c_str(), &mut val[..]) {
                Ok(k) => break Some(k),
                Err(Errno::RANGE) => val.resize(val.len() * 8, 0),
                // Removed between the list and the read.
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(e),
            }
        };
        if let Some(k) = vlen {
            val.truncate(k);
            out.push((n.to_vec(), val));
        }
    }
    out.sort();
    Ok(out)
}

/// `listxattrat(dir, name, AT_SYMLINK_NOFOLLOW, buf)`: the xattr names of `name` in `dir`,
/// NUL-separated, in `buf`; ENOSYS before Linux 6.13.
fn listxattrat(dir: BorrowedFd<'_>, name: &std::ffi::CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    use std::os::fd::AsRawFd;
    /// The syscall's number, the same on every architecture (the unified table of 6.13).
    const SYS_LISTXATTRAT: libc::c_long = 465;
    // SAFETY: the pointers are valid for the given lengths for the duration of the call.
    let r = unsafe {
        libc::syscall(
            SYS_LISTXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if r < 0 {
        return Err(Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)));
    }
    Ok(r as usize)
}

/// Sets `xattrs` on the node `name` of `dir` (a file, directory or symlink; not following it).
fn set_xattrs_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    xattrs: &[(Vec<u8>, Vec<u8>)],
    shown: &[u8],
) -> Result<(), BuildCtxError> {
    use std::os::fd::AsRawFd;
    if xattrs.is_empty() {
        return Ok(());
    }
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    let path = std::ffi::CString::new(p).map_err(|_| io_err("setxattr", shown)(Errno::INVAL))?;
    for (k, v) in xattrs {
        let ck = std::ffi::CString::new(k.clone()).map_err(|_| io_err("setxattr", shown)(Errno::INVAL))?;
        rustix::fs::lsetxattr(path.as_c_str(), ck.as_c_str(), v, rustix::fs::XattrFlags::empty())
            .map_err(io_err("setxattr", shown))?;
    }
    Ok(())
}

/// Sets `xattrs` on an open file or directory.
fn set_fd_xattrs(fd: BorrowedFd<'_>, xattrs: &[(Vec<u8>, Vec<u8>)], shown: &[u8]) -> Result<(), BuildCtxError> {
    for (k, v) in xattrs {
        let ck = std::ffi::CString::new(k.clone()).map_err(|_| io_err("setxattr", shown)(Errno::INVAL))?;
        rustix::fs::fsetxattr(fd, ck.as_c_str(), v, rustix::fs::XattrFlags::empty())
            .map_err(io_err("setxattr", shown))?;
    }
    Ok(())
}

/// Lists each of `dirs` (relative to `root`, `""` for the root; resolved inside it without
/// following symlinks), names sorted byte-wise, in the order of `dirs`. A directory that vanished
/// lists as empty. Many directories are listed by a few threads (an `lstat` and a `listxattr`
/// per entry: a level of a context's tree holds thousands); the result is the same.
pub fn scan_dirs(root: &Path, dirs: &[Vec<u8>]) -> Result<Vec<ScanEntry>, BuildCtxError> {
    let rootfd = crate::ingest::safefs::open_root(root).map_err(|source| BuildCtxError::Io {
        op: "open",
        path: root.display().to_string(),
        source,
    })?;
    /// Below this many directories one thread lists them (a thread costs more than it saves).
    const PARALLEL_FROM: usize = 8;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4);
    if dirs.len() < PARALLEL_FROM || threads == 1 {
        let mut out = Vec::new();
        for (i, rel) in dirs.iter().enumerate() {
            out.extend(scan_dir(rootfd.as_fd(), i, rel)?);
        }
        return Ok(out);
    }
    let next = AtomicUsize::new(0);
    /// A directory's listing, once a thread has made it.
    type Listing = Option<Result<Vec<ScanEntry>, BuildCtxError>>;
    let listed: Mutex<Vec<Listing>> = Mutex::new((0..dirs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.min(dirs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= dirs.len() {
                    return;
                }
                let r = scan_dir(rootfd.as_fd(), i, &dirs[i]);
                let failed = r.is_err();
                listed.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                if failed {
                    // The others stop taking directories; the first failure in order is the answer.
                    next.store(dirs.len(), Ordering::Relaxed);
                    return;
                }
            });
        }
    });
    let mut out = Vec::new();
    for r in listed.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().flatten() {
        out.extend(r?);
    }
    Ok(out)
}

/// The entries of one directory (`dirs[index]` of [`scan_dirs`]), names sorted byte-wise.
fn scan_dir(rootfd: BorrowedFd<'_>, index: usize, rel: &[u8]) -> Result<Vec<ScanEntry>, BuildCtxError> {
    let fd = match crate::ingest::safefs::open_in_root(rootfd, rel, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => return Ok(Vec::new()),
        Err(source) => return Err(BuildCtxError::Io { op: "open", path: lossy(rel), source }),
    };
    let mut names = Vec::new();
    let mut dir = rustix::fs::Dir::read_from(&fd).map_err(io_err("readdir", rel))?;
    while let Some(ent) = dir.read() {
        let ent = ent.map_err(io_err("readdir", rel))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let st = match rustix::fs::statat(&fd, os(&name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(io_err("lstat", &name)(e)),
        };
        let link = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            Some(rustix::fs::readlinkat(&fd, os(&name), Vec::new()).map_err(io_err("readlink", &name))?.into_bytes())
        } else {
            None
        };
        let xattrs = xattrs_at(fd.as_fd(), &name).map_err(io_err("listxattr", &name))?;
        out.push(ScanEntry {
            dir: index as u32,
            name,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
            link,
            xattrs,
        });
    }
    Ok(out)
}

/// What [`hash_files`] found.
#[derive(Clone, Debug)]
pub struct Hashed {
    pub digests: Vec<Digest>,
    /// Bytes read from the files.
    pub bytes_read: u64,
}

fn hash_one(
    root: BorrowedFd<'_>,
    rel: &[u8],
    buf: &mut [u8],
    cancel: &AtomicBool,
) -> Result<(Digest, u64), BuildCtxError> {
    let fd = crate::ingest::safefs::open_in_root(root, rel, OFlags::RDONLY | OFlags::NOATIME)
        .or_else(|_| crate::ingest::safefs::open_in_root(root, rel, OFlags::RDONLY))
        .map_err(|source| BuildCtxError::Io { op: "open", path: lossy(rel), source })?;
    read_hashing(&mut std::fs::File::from(fd), buf, Some(cancel), rel)
}

/// Reads `f` from its offset to its end through `buf`, hashing what it reads; returns the
/// digest and the byte count. `path` names the file in a read error; with `cancel`, stops
/// (`Aborted`) once it is set.
fn read_hashing(
    f: &mut std::fs::File,
    buf: &mut [u8],
    cancel: Option<&AtomicBool>,
    path: &[u8],
) -> Result<(Digest, u64), BuildCtxError> {
    let mut h = Hasher::new();
    let mut n = 0u64;
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(BuildCtxError::Aborted);
        }
        match f.read(buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(BuildCtxError::Io { op: "read", path: lossy(path), source }),
        }
    }
    Ok((h.finish(), n))
}

/// sha256 of each of `files` (relative to `root`, never through a symlink), in order.
pub fn hash_files(root: &Path, files: &[Vec<u8>], cancel: &AtomicBool) -> Result<Hashed, BuildCtxError> {
    let rootfd = crate::ingest::safefs::open_root(root).map_err(|source| BuildCtxError::Io {
        op: "open",
        path: root.display().to_string(),
        source,
    })?;
    let threads =
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4).min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let results: Mutex<Vec<Option<Digest>>> = Mutex::new(vec![None; files.len()]);
    let failed: Mutex<Option<BuildCtxError>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= files.len() {
                        return;
                    }
                    match hash_one(rootfd.as_fd(), &files[i], &mut buf, cancel) {
                        Ok((d, n)) => {
                            bytes.fetch_add(n, Ordering::Relaxed);
                            results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(d);
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let digests = results.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().flatten().collect::<Vec<_>>();
    Ok(Hashed { digests, bytes_read: bytes.load(Ordering::Relaxed) })
}

/// What a path inside a root is (symlinks followed inside it).
#[derive(Clone, Debug)]
pub struct RootStat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

/// `stat` of `path` inside `root` (following symlinks within it), or `None` if it does not exist.
pub fn stat_in_root(root: &Path, path: &[u8]) -> Result<Option<RootStat>, BuildCtxError> {
    let rootfd = open_dir(root)?;
    match open_in(rootfd.as_fd(), path, OFlags::PATH) {
        Ok(fd) => {
            let st = rustix::fs::fstat(&fd).map_err(io_err("stat", path))?;
            Ok(Some(RootStat { mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, size: st.st_size as u64 }))
        }
        Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => Ok(None),
        Err(e) => Err(io_err("stat", path)(e)),
    }
}

/// Contents of a small file inside `root` (at most `limit` bytes), or `None` if absent.
pub fn read_in_root(root: &Path, path: &[u8], limit: u64) -> Result<Option<Vec<u8>>, BuildCtxError> {
    let rootfd = open_dir(root)?;
    let fd = match open_in(rootfd.as_fd(), path, OFlags::RDONLY) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) | Err(Errno::ISDIR) => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut out = Vec::new();
    std::fs::File::from(fd).take(limit).read_to_end(&mut out).map_err(|source| BuildCtxError::Io {
        op: "read",
        path: lossy(path),
        source,
    })?;
    Ok(Some(out))
}

/// One step of a COPY. Destination paths are absolute paths of the destination rootfs.
#[derive(Clone, Debug)]
pub enum CopyOp {
    /// `MkdirAll`: each missing directory of `dst` is made with `mode`, `uid`:`gid`.
    Mkdirs {
        dst: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A directory: made if missing; owner and mode set either way.
    Dir {
        dst: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// A regular file copied from `src` (relative to the source root), replacing what is at
    /// `dst`; with `expect`, its content must hash to it. With `reuse` and a reuse root given to
    /// [`copy_in_reusing`], the file at the same path there is hard-linked instead when it has
    /// the same type, mode, owner and mtime (see there); else it is copied.
    ///
    /// `verified` is the stat key ([`write_stat_key`]) under which the caller knows `expect` is
    /// the content: the key the context scan saw, for a file hashed after it in this build and
    /// not racily clean then (the stat index's rule, ts/build/statindex.ts: any write since
    /// changes the ctime). When the source still has that key once copied, its bytes are not
    /// hashed again; otherwise what was written is hashed and checked against `expect`.
    File {
        src: Vec<u8>,
        dst: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
        expect: Option<Digest>,
        verified: Option<String>,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
        reuse: bool,
    },
    Symlink {
        dst: Vec<u8>,
        target: Vec<u8>,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// A hard link to an entry this COPY made earlier.
    Hardlink {
        dst: Vec<u8>,
        to: Vec<u8>,
    },
    /// Times of a directory, once everything inside it is in place.
    DirTimes {
        dst: Vec<u8>,
        mtime_ns: i64,
    },
}

/// What [`copy_in`] did.
#[derive(Clone, Debug, Default)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
    /// Files whose content was vouched for by their unchanged stat key, not hashed again.
    pub verified: u64,
}

fn split_parent(p: &[u8]) -> (&[u8], &[u8]) {
    let p = p.strip_suffix(b"/").unwrap_or(p);
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (b"", p),
    }
}

fn timestamps(mtime_ns: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime_ns.div_euclid(1_000_000_000), tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _ };
    Timestamps { last_access: t, last_modification: t }
}

/// Opens the parent directory of `dst` inside the root (it must exist).
fn parent_of<'a>(root: BorrowedFd<'_>, dst: &'a [u8]) -> Result<(OwnedFd, &'a [u8]), BuildCtxError> {
    let (parent, leaf) = split_parent(dst);
    let fd = open_in(root, parent, OFlags::RDONLY | OFlags::DIRECTORY).map_err(io_err("open", parent))?;
    Ok((fd, leaf))
}

/// Removes whatever non-directory is at `leaf` (a COPY replaces files, links and nodes).
fn clear_leaf(dir: BorrowedFd<'_>, leaf: &[u8], dst: &[u8]) -> Result<(), BuildCtxError> {
    match rustix::fs::statat(dir, os(leaf), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            Err(BuildCtxError::Io { op: "copy", path: lossy(dst), source: io::Error::from_raw_os_error(libc::EISDIR) })
        }
        Ok(_) => rustix::fs::unlinkat(dir, os(leaf), AtFlags::empty()).map_err(io_err("unlink", dst)),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err("lstat", dst)(e)),
    }
}

fn chown_at(dir: BorrowedFd<'_>, leaf: &[u8], uid: u32, gid: u32, dst: &[u8]) -> Result<(), BuildCtxError> {
    rustix::fs::chownat(
        dir,
        os(leaf),
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io_err("chown", dst))
}

/// Copies one regular file: `from` (below the source root) to `leaf` in `dir`, replacing what
/// is there, then owner, mode, xattrs and times. With `expect`, the bytes copied must hash to
/// it: they are hashed on the way, or — with `verified` (see [`CopyOp::File`]) — copied in the
/// kernel (`sendfile`) and not hashed when the source's stat key after the copy is `verified`
/// (else what was written is read back and hashed). Returns the bytes copied and whether the
/// stat key vouched for them.
#[allow(clippy::too_many_arguments)]
fn copy_file(
    src: BorrowedFd<'_>,
    from: &[u8],
    dir: BorrowedFd<'_>,
    leaf: &[u8],
    path: &[u8],
    meta: (u32, u32, u32, i64),
    check: (&Option<Digest>, &Option<String>),
    xattrs: &[(Vec<u8>, Vec<u8>)],
    buf: &mut [u8],
) -> Result<(u64, bool), BuildCtxError> {
    let (mode, uid, gid, mtime_ns) = meta;
    let (expect, verified) = check;
    let trust = expect.is_some() && verified.is_some();
    let input = open_in(src, from, OFlags::RDONLY).map_err(io_err("open", from))?;
    // Created with its permission bits (less the umask) so that the owner and mode usually
    // need no call after (`fsutil::set_owner_mode`); special bits only after the owner.
    // Readable too when it may have to be read back.
    let access = if trust { OFlags::RDWR } else { OFlags::WRONLY };
    let create = || {
        rustix::fs::openat(
            dir,
            os(leaf),
            access | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
    };
    // The name is new but for the odd one (a COPY over an earlier file): cleared only when taken.
    let out = match create() {
        Err(Errno::EXIST) => {
            clear_leaf(dir, leaf, path)?;
            create()
        }
        r => r,
    }
    .map_err(io_err("create", path))?;
    let mut reader = std::fs::File::from(input);
    let mut writer = std::fs::File::from(out);
    let (bytes, got, vouched) = match verified {
        Some(key) if trust => {
            let bytes = match send_all(&reader, &writer) {
                Ok(n) => n,
                // Nothing sent: a source or destination sendfile cannot serve.
                Err((0, Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::XDEV)) => {
                    copy_through(&mut reader, &mut writer, buf, from, path)?.0
                }
                Err((_, e)) => return Err(io_err("sendfile", path)(e)),
            };
            if stat_key_of(reader.as_fd()).map_err(io_err("stat", from))? == *key {
                (bytes, None, true)
            } else {
                // Changed (or only touched) since it was hashed: what was written decides.
                writer.rewind().map_err(|source| BuildCtxError::Io { op: "seek", path: lossy(path), source })?;
                (bytes, Some(read_hashing(&mut writer, buf, None, path)?.0), false)
            }
        }
        _ => {
            let (bytes, got) = copy_through(&mut reader, &mut writer, buf, from, path)?;
            (bytes, Some(got), false)
        }
    };
    if let (Some(want), Some(got)) = (expect, got) {
        if *want != got {
            return Err(BuildCtxError::Changed {
                path: lossy(from),
                expected: want.to_string(),
                found: got.to_string(),
            });
        }
    }
    crate::fsutil::set_owner_mode(writer.as_fd(), uid, gid, mode).map_err(|(op, source)| BuildCtxError::Io {
        op,
        path: lossy(path),
        source,
    })?;
    set_fd_xattrs(writer.as_fd(), xattrs, path)?;
    rustix::fs::futimens(&writer, &timestamps(mtime_ns)).map_err(io_err("utimens", path))?;
    Ok((bytes, vouched))
}

/// Copies `reader` to `writer` through `buf`, hashing the bytes; returns their count and digest.
fn copy_through(
    reader: &mut std::fs::File,
    writer: &mut std::fs::File,
    buf: &mut [u8],
    from: &[u8],
    path: &[u8],
) -> Result<(u64, Digest), BuildCtxError> {
    let mut h = Hasher::new();
    let mut bytes = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(BuildCtxError::Io { op: "read", path: lossy(from), source }),
        };
        h.update(&buf[..n]);
        writer.write_all(&buf[..n]).map_err(|source| BuildCtxError::Io { op: "write", path: lossy(path), source })?;
        bytes += n as u64;
    }
    Ok((bytes, h.finish()))
}

/// `sendfile` from `reader`'s offset to its end; on failure, the bytes sent before and the error.
fn send_all(reader: &std::fs::File, writer: &std::fs::File) -> Result<u64, (u64, Errno)> {
    let mut sent = 0u64;
    loop {
        match rustix::fs::sendfile(writer, reader, None, 1 << 30) {
            Ok(0) => return Ok(sent),
            Ok(n) => sent += n as u64,
            Err(Errno::INTR) => {}
            Err(e) => return Err((sent, e)),
        }
    }
}

/// One file for the copy workers ([`crate::workpool`]): the op, and the destination's parent
/// resolved by the caller.
struct FileJob<'s> {
    op: &'s CopyOp,
    parent: std::sync::Arc<OwnedFd>,
    leaf: &'s [u8],
}

impl crate::workpool::PoolError for BuildCtxError {
    fn aborted() -> Self {
        BuildCtxError::Aborted
    }
    fn stopped(path: &[u8]) -> Self {
        BuildCtxError::Io { op: "copy", path: lossy(path), source: io::Error::other("copy workers stopped") }
    }
}

type CopyPool<'s> = crate::workpool::WorkPool<'s, FileJob<'s>, BuildCtxError>;

/// What the copy made so far, counted by whichever thread copied.
#[derive(Default)]
struct Counts {
    files: AtomicU64,
    bytes: AtomicU64,
    verified: AtomicU64,
}

impl Counts {
    fn add(&self, bytes: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Copies the file of a [`FileJob`] (a worker's job; `buf` is its scratch buffer).
fn copy_job(src: BorrowedFd<'_>, job: &FileJob<'_>, buf: &mut Vec<u8>, counts: &Counts) -> Result<(), BuildCtxError> {
    let CopyOp::File { src: from, dst: path, mode, uid, gid, mtime_ns, expect, verified, xattrs, .. } = job.op else {
        return Ok(());
    };
    if buf.is_empty() {
        buf.resize(256 << 10, 0);
    }
    let meta = (*mode, *uid, *gid, *mtime_ns);
    let (n, vouched) = copy_file(src, from, job.parent.as_fd(), job.leaf, path, meta, (expect, verified), xattrs, buf)?;
    counts.add(n);
    if vouched {
        counts.verified.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Carries out `ops` in order, reading sources below `src_root` and writing below `dst_root`.
/// Regular files are copied by a few worker threads (see [`CopyPool`]); everything else, and
/// the resolution of each file's destination directory, happens in order on this thread.
pub fn copy_in(src_root: &Path, dst_root: &Path, ops: &[CopyOp], cancel: &AtomicBool) -> Result<Copied, BuildCtxError> {
    copy_in_reusing(src_root, dst_root, None, ops, cancel)
}

/// [`copy_in`], where a file op marked `reuse` is first tried as a hard link of the file at the
/// same path below `reuse_root` (the layer an earlier build of the same COPY made): the link
/// stands when the linked inode is a regular file with the op's mode, owner and mtime — its
/// content is the caller's to vouch for (a layer's files never change) —, else it is removed
/// and the file copied as any other. Both roots must be on one filesystem for a link; a link
/// that fails (another filesystem, the layer removed meanwhile) falls back to the copy.
///
/// Why a link is safe: layers are read-only (overlayfs copies a file up before any write), a
/// layer's removal unlinks its names only (the inode lives on under the other), and the layer
/// walk ([`crate::egress::layertar`]) pairs hard links by inode within one layer only.
///
/// Durability: links can only go into a layer's own dir (an overlay's upper dir while it is not
/// mounted), where no unmount will sync what the copy wrote (that sync is what makes a step's
/// mounted writes durable before its layer is registered). So with a reuse root, the copy ends
/// with one `syncfs` of the destination's file system: the new names, and the files copied
/// where a link did not stand, are on disk before anything can name the layer. (On ext4 the
/// register's later fsyncs would commit the names with the journal, but not the data of a
/// delayed-allocation copy, and other file systems promise neither.)
pub fn copy_in_reusing(
    src_root: &Path,
    dst_root: &Path,
    reuse_root: Option<&Path>,
    ops: &[CopyOp],
    cancel: &AtomicBool,
) -> Result<Copied, BuildCtxError> {
    let src = open_dir(src_root)?;
    let dst = open_dir(dst_root)?;
    let reuse = reuse_root.map(open_dir).transpose()?;
    let state = crate::workpool::PoolState::new();
    let counts = Counts::default();
    let files = ops.iter().filter(|o| matches!(o, CopyOp::File { .. })).count();
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 4).min(files);
    let run = |job: &FileJob<'_>, buf: &mut Vec<u8>| copy_job(src.as_fd(), job, buf, &counts);
    std::thread::scope(|scope| -> Result<(), BuildCtxError> {
        let mut pool = CopyPool::start(scope, workers, "strata-copy-w", &state, cancel, &run)
            .map_err(|source| BuildCtxError::Io { op: "spawn", path: "copy worker".into(), source })?;
        let roots = Roots { src: src.as_fd(), dst: dst.as_fd(), reuse: reuse.as_ref().map(|r| r.as_fd()) };
        let r = run_ops(&mut pool, roots, ops, cancel, workers > 0, &counts);
        // Whatever happened, the workers finish what they hold before the scope joins them.
        let settled = pool.settle();
        r.and(settled)
    })?;
    if reuse.is_some() {
        // `dst` is an O_PATH handle, which syncfs refuses.
        let at = dst_root.as_os_str().as_bytes();
        let fs = rustix::fs::open(dst_root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io_err("open", at))?;
        rustix::fs::syncfs(&fs).map_err(io_err("syncfs", at))?;
    }
    Ok(Copied {
        files: counts.files.load(Ordering::Relaxed),
        bytes: counts.bytes.load(Ordering::Relaxed),
        verified: counts.verified.load(Ordering::Relaxed),
    })
}

/// The directories a copy works between.
#[derive(Clone, Copy)]
struct Roots<'a> {
    src: BorrowedFd<'a>,
    dst: BorrowedFd<'a>,
    /// Where files marked `reuse` are linked from (see [`copy_in_reusing`]).
    reuse: Option<BorrowedFd<'a>>,
}

/// Links the file `path` of the reuse root to `leaf` in `dir` if it is what `op` would make
/// (regular, same mode, owner, mtime); returns whether the link stands. `rdirs` holds the reuse
/// root's directories opened so far (None: not there), for the rest of the copy: a layer's
/// directories never change, and a COPY links hundreds of files from each.
fn link_reused<'o>(
    reuse: BorrowedFd<'_>,
    rdirs: &mut std::collections::HashMap<&'o [u8], Option<OwnedFd>>,
    dir: BorrowedFd<'_>,
    leaf: &[u8],
    op: &'o CopyOp,
) -> Result<bool, BuildCtxError> {
    let CopyOp::File { dst: path, mode, uid, gid, mtime_ns, .. } = op else { return Ok(false) };
    let (rparent, rleaf) = split_parent(path);
    let rdir = rdirs.entry(rparent).or_insert_with(|| open_in(reuse, rparent, OFlags::RDONLY | OFlags::DIRECTORY).ok());
    let Some(rdir) = rdir.as_ref() else { return Ok(false) };
    let link = || rustix::fs::linkat(rdir, os(rleaf), dir, os(leaf), AtFlags::empty());
    // The name is new in the upper dir but for the odd one: linked first, cleared only when taken.
    // (A link that fails otherwise leaves the name to the copy, which clears it itself.)
    match link() {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            clear_leaf(dir, leaf, path)?;
            if link().is_err() {
                return Ok(false);
            }
        }
        Err(_) => return Ok(false),
    }
    let st = rustix::fs::statat(dir, os(leaf), AtFlags::SYMLINK_NOFOLLOW).map_err(io_err("lstat", path))?;
    let same = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
        && st.st_mode & 0o7777 == *mode & 0o7777
        && st.st_uid == *uid
        && st.st_gid == *gid
        && st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64 == *mtime_ns;
    if !same {
        rustix::fs::unlinkat(dir, os(leaf), AtFlags::empty()).map_err(io_err("unlink", path))?;
    }
    Ok(same)
}

fn run_ops<'s>(
    pool: &mut CopyPool<'s>,
    roots: Roots<'_>,
    ops: &'s [CopyOp],
    cancel: &AtomicBool,
    parallel: bool,
    counts: &Counts,
) -> Result<(), BuildCtxError> {
    let (src, dst) = (roots.src, roots.dst);
    // Destination directories resolved so far. A directory, once resolved, stays what it is
    // for the rest of the COPY: no op replaces a directory (a file, link or node over one is
    // EISDIR), so its fd can serve every file that lands in it.
    let mut parents: std::collections::HashMap<&[u8], std::sync::Arc<OwnedFd>> = std::collections::HashMap::new();
    let mut reuse_dirs = std::collections::HashMap::new();
    let mut buf = Vec::new();
    for op in ops {
        if cancel.load(Ordering::Relaxed) {
            return Err(BuildCtxError::Aborted);
        }
        match op {
            CopyOp::Mkdirs { dst: path, mode, uid, gid } => mkdirs(dst, path, *mode, *uid, *gid)?,
            CopyOp::Dir { dst: path, mode, uid, gid, mtime_ns, xattrs } => {
                if pool.overlaps(path) {
                    pool.settle()?;
                }
                let (dir, leaf) = parent_of(dst, path)?;
                match rustix::fs::mkdirat(&dir, os(leaf), Mode::from_raw_mode(*mode & 0o7777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err("mkdir", path)(e)),
                }
                let fd = crate::ingest::safefs::open_child_dir(dir.as_fd(), leaf, OFlags::RDONLY)
                    .map_err(|source| BuildCtxError::Io { op: "open", path: lossy(path), source })?;
                rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(*uid)), Some(rustix::fs::Gid::from_raw(*gid)))
                    .map_err(io_err("chown", path))?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(*mode & 0o7777)).map_err(io_err("chmod", path))?;
                set_fd_xattrs(fd.as_fd(), xattrs, path)?;
                rustix::fs::futimens(&fd, &timestamps(*mtime_ns)).map_err(io_err("utimens", path))?;
            }
            CopyOp::File { dst: path, reuse, .. } => {
                let (parent, leaf) = split_parent(path);
                let dir = match parents.get(parent) {
                    Some(fd) => fd.clone(),
                    None => {
                        let fd = std::sync::Arc::new(
                            open_in(dst, parent, OFlags::RDONLY | OFlags::DIRECTORY).map_err(io_err("open", parent))?,
                        );
                        parents.insert(parent, fd.clone());
                        fd
                    }
                };
                if let (true, Some(from)) = (*reuse, roots.reuse) {
                    if pool.overlaps(path) {
                        pool.settle()?;
                    }
                    if link_reused(from, &mut reuse_dirs, dir.as_fd(), leaf, op)? {
                        counts.add(0);
                        continue;
                    }
                }
                let job = FileJob { op, parent: dir, leaf };
                if !parallel {
                    copy_job(src, &job, &mut buf, counts)?;
                } else {
                    if pool.overlaps(path) {
                        pool.settle()?;
                    }
                    pool.submit(path, job)?;
                }
            }
            CopyOp::Symlink { dst: path, target, uid, gid, mtime_ns, xattrs } => {
                if pool.overlaps(path) {
                    pool.settle()?;
                }
                let (dir, leaf) = parent_of(dst, path)?;
                clear_leaf(dir.as_fd(), leaf, path)?;
                rustix::fs::symlinkat(os(target), &dir, os(leaf)).map_err(io_err("symlink", path))?;
                chown_at(dir.as_fd(), leaf, *uid, *gid, path)?;
                set_xattrs_at(dir.as_fd(), leaf, xattrs, path)?;
                rustix::fs::utimensat(&dir, os(leaf), &timestamps(*mtime_ns), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err("utimens", path))?;
            }
            CopyOp::Hardlink { dst: path, to } => {
                pool.settle()?;
                let (dir, leaf) = parent_of(dst, path)?;
                let (tdir, tleaf) = parent_of(dst, to)?;
                clear_leaf(dir.as_fd(), leaf, path)?;
                rustix::fs::linkat(&tdir, os(tleaf), &dir, os(leaf), AtFlags::empty()).map_err(io_err("link", path))?;
            }
            CopyOp::DirTimes { dst: path, mtime_ns } => {
                pool.settle()?;
                let fd = open_in(dst, path, OFlags::RDONLY | OFlags::DIRECTORY).map_err(io_err("open", path))?;
                rustix::fs::futimens(&fd, &timestamps(*mtime_ns)).map_err(io_err("utimens", path))?;
            }
        }
    }
    Ok(())
}

/// Makes each missing directory of `path` (inside the root) with `mode` and owner.
fn mkdirs(root: BorrowedFd<'_>, path: &[u8], mode: u32, uid: u32, gid: u32) -> Result<(), BuildCtxError> {
    let trimmed = path.strip_prefix(b"/").unwrap_or(path);
    let mut prefix: Vec<u8> = Vec::new();
    for comp in trimmed.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".") {
        let parent = open_in(root, &prefix, OFlags::RDONLY | OFlags::DIRECTORY).map_err(io_err("open", &prefix))?;
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(comp);
        match rustix::fs::mkdirat(&parent, os(comp), Mode::from_raw_mode(mode & 0o7777)) {
            Ok(()) => {
                let fd = crate::ingest::safefs::open_child_dir(parent.as_fd(), comp, OFlags::RDONLY)
                    .map_err(|source| BuildCtxError::Io { op: "open", path: lossy(&prefix), source })?;
                rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
                    .map_err(io_err("chown", &prefix))?;
                // mkdir's mode went through the umask.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777)).map_err(io_err("chmod", &prefix))?;
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(io_err("mkdir", &prefix)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `CopyOp::File` without xattrs.
    fn file_op(
        reuse: bool,
        src: &[u8],
        dst: &[u8],
        mode: u32,
        (uid, gid): (u32, u32),
        mtime_ns: i64,
        expect: Option<Digest>,
    ) -> CopyOp {
        CopyOp::File {
            reuse,
            src: src.to_vec(),
            dst: dst.to_vec(),
            mode,
            uid,
            gid,
            mtime_ns,
            expect,
            verified: None,
            xattrs: Vec::new(),
        }
    }

    /// A file op vouched for by `key` (see `CopyOp::File`'s `verified`).
    fn verified_op(src: &[u8], dst: &[u8], mode: u32, expect: Digest, key: &str) -> CopyOp {
        let mut op = file_op(false, src, dst, mode, (0, 0), 1_000_000_000, Some(expect));
        if let CopyOp::File { verified, .. } = &mut op {
            *verified = Some(key.to_string());
        }
        op
    }

    fn key_of(p: &Path) -> String {
        stat_key_of(std::fs::File::open(p).unwrap().as_fd()).unwrap()
    }

    #[test]
    fn a_file_whose_stat_key_vouches_for_it_is_not_hashed_and_a_changed_one_is_still_caught() {
        let (_t, [src, dst]) = temp_dirs(["src", "dst"]);
        let cancel = AtomicBool::new(false);
        let body = vec![7u8; 300_000];
        std::fs::write(src.join("same"), &body).unwrap();
        std::fs::write(src.join("touched"), &body).unwrap();
        std::fs::write(src.join("changed"), &body).unwrap();
        let keys = ["same", "touched", "changed"].map(|n| key_of(&src.join(n)));
        // Since hashed: one only touched (same bytes), one rewritten with other bytes of the same size.
        let f = std::fs::File::options().write(true).open(src.join("touched")).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(5)).unwrap();
        std::fs::write(src.join("changed"), vec![8u8; 300_000]).unwrap();
        let want = Digest::of(&body);
        let ops = vec![
            verified_op(b"same", b"/same", 0o640, want.clone(), &keys[0]),
            verified_op(b"touched", b"/touched", 0o4755, want.clone(), &keys[1]),
        ];
        let r = copy_in(&src, &dst, &ops, &cancel).unwrap();
        // The unchanged key vouched for one file; the touched one was hashed (read back) and passes.
        assert_eq!((r.files, r.bytes, r.verified), (2, 600_000, 1));
        for n in ["same", "touched"] {
            assert_eq!(std::fs::read(dst.join(n)).unwrap(), body, "{n}");
        }
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dst.join("same")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.mtime(), m.uid(), m.gid()), (0o640, 1, 0, 0));
        // Special bits survive (set after the owner).
        assert_eq!(std::fs::metadata(dst.join("touched")).unwrap().mode() & 0o7777, 0o4755);
        let bad = vec![verified_op(b"changed", b"/changed", 0o644, want, &keys[2])];
        assert!(matches!(copy_in(&src, &dst, &bad, &cancel), Err(BuildCtxError::Changed { .. })));
        // A name already taken (a COPY over an earlier file) is replaced.
        let again = vec![verified_op(b"same", b"/touched", 0o600, Digest::of(&body), &keys[0])];
        assert_eq!(copy_in(&src, &dst, &again, &cancel).unwrap().verified, 1);
        assert_eq!(std::fs::metadata(dst.join("touched")).unwrap().mode() & 0o7777, 0o600);
    }

    /// A temp dir holding the named, empty directories.
    fn temp_dirs<const N: usize>(names: [&str; N]) -> (tempfile::TempDir, [std::path::PathBuf; N]) {
        let t = tempfile::tempdir().unwrap();
        let dirs = names.map(|n| t.path().join(n));
        dirs.iter().for_each(|d| std::fs::create_dir(d).unwrap());
        (t, dirs)
    }

    #[test]
    fn copy_stays_inside_the_destination_root() {
        let (_t, [src, dst, outside]) = temp_dirs(["src", "dst", "outside"]);
        std::fs::write(src.join("f"), b"hello").unwrap();
        // An absolute symlink in the rootfs resolves inside it, as in a chroot.
        std::os::unix::fs::symlink(&outside, dst.join("app")).unwrap();
        let cancel = AtomicBool::new(false);
        let want = Digest::of(b"hello");
        let ops = vec![
            CopyOp::Mkdirs { dst: b"/app".to_vec(), mode: 0o755, uid: 0, gid: 0 },
            file_op(false, b"f", b"/app/f", 0o640, (0, 0), 0, Some(want)),
        ];
        let r = copy_in(&src, &dst, &ops, &cancel);
        // `app` points at a host path: inside the root that path does not exist, so MkdirAll
        // makes it there, never in the host's `outside`.
        assert!(r.is_ok() || matches!(r, Err(BuildCtxError::Io { .. })), "{r:?}");
        assert!(!outside.join("f").exists());
        let bad = vec![file_op(false, b"f", b"/g", 0o644, (0, 0), 0, Some(Digest::of(b"other")))];
        assert!(matches!(copy_in(&src, &dst, &bad, &cancel), Err(BuildCtxError::Changed { .. })));
    }

    /// A file of an old layer: `data`, mode 0644, mtime 5.000000007 s.
    fn old_file(path: &Path, data: &[u8]) {
        std::fs::write(path, data).unwrap();
        let f = std::fs::File::open(path).unwrap();
        rustix::fs::fchmod(&f, Mode::from_raw_mode(0o644)).unwrap();
        rustix::fs::futimens(&f, &timestamps(5_000_000_007)).unwrap();
    }

    /// A copy of `name` to `/name` marked for reuse, owned by this process's user.
    fn reuse_op(name: &[u8], mtime_ns: i64) -> CopyOp {
        let me = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        file_op(true, name, &[b"/", name].concat(), 0o644, me, mtime_ns, None)
    }

    fn inode(p: &Path) -> u64 {
        rustix::fs::stat(p).unwrap().st_ino
    }

    #[test]
    fn reused_files_are_linked_only_when_their_inode_matches() {
        let (_t, [src, old, dst]) = temp_dirs(["src", "old", "dst"]);
        for (name, data) in [("same", &b"one"[..]), ("other", b"two")] {
            std::fs::write(src.join(name), data).unwrap();
            old_file(&old.join(name), data);
        }
        // `same` matches the old inode; `other` has another mtime; `gone` is not there at all.
        std::fs::write(src.join("gone"), b"three").unwrap();
        let ops = vec![reuse_op(b"same", 5_000_000_007), reuse_op(b"other", 9), reuse_op(b"gone", 9)];
        let r = copy_in_reusing(&src, &dst, Some(&old), &ops, &AtomicBool::new(false)).unwrap();
        assert_eq!((r.files, r.bytes), (3, 8));
        assert_eq!(inode(&dst.join("same")), inode(&old.join("same")));
        assert_ne!(inode(&dst.join("other")), inode(&old.join("other")));
        assert_eq!(std::fs::read(dst.join("other")).unwrap(), b"two");
        assert_eq!(std::fs::read(dst.join("gone")).unwrap(), b"three");
        // The old file whose inode did not match is untouched.
        assert_eq!(rustix::fs::stat(old.join("other")).unwrap().st_mtime, 5);
    }

    #[test]
    fn many_directories_list_as_one_at_a_time_would() {
        let t = tempfile::tempdir().unwrap();
        let mut dirs = vec![b"".to_vec()];
        for d in 0..20 {
            let dir = format!("d{d:02}");
            std::fs::create_dir(t.path().join(&dir)).unwrap();
            for f in 0..(d % 4) {
                std::fs::write(t.path().join(&dir).join(format!("f{f}")), b"x").unwrap();
            }
            dirs.push(dir.into_bytes());
        }
        // A directory that is not there lists as empty, wherever it falls.
        dirs.insert(7, b"gone".to_vec());
        let all = scan_dirs(t.path(), &dirs).unwrap();
        let one_by_one: Vec<(u32, Vec<u8>)> = dirs
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                scan_dirs(t.path(), std::slice::from_ref(d)).unwrap().into_iter().map(move |e| (i as u32, e.name))
            })
            .collect();
        assert_eq!(all.iter().map(|e| (e.dir, e.name.clone())).collect::<Vec<_>>(), one_by_one);
        assert_eq!(all.iter().filter(|e| e.dir == 0).count(), 20);
    }

    #[test]
    fn reused_links_replace_a_name_in_the_way_and_fall_back_where_the_old_dir_is_missing() {
        let (_t, [src, old, dst]) = temp_dirs(["src", "old", "dst"]);
        for d in ["d", "new"] {
            std::fs::create_dir(src.join(d)).unwrap();
            std::fs::create_dir(dst.join(d)).unwrap();
        }
        std::fs::create_dir(old.join("d")).unwrap();
        for (name, data) in [("d/a", &b"one"[..]), ("d/b", b"two"), ("new/c", b"three")] {
            std::fs::write(src.join(name), data).unwrap();
            if !name.starts_with("new/") {
                old_file(&old.join(name), data);
            }
        }
        // The upper dir already has a `d/b`: the link replaces it.
        std::fs::write(dst.join("d/b"), b"in the way").unwrap();
        // Two files linked from one old directory; `new/` is not in the old layer at all.
        let ops =
            vec![reuse_op(b"d/a", 5_000_000_007), reuse_op(b"d/b", 5_000_000_007), reuse_op(b"new/c", 5_000_000_007)];
        let r = copy_in_reusing(&src, &dst, Some(&old), &ops, &AtomicBool::new(false)).unwrap();
        assert_eq!((r.files, r.bytes), (3, 5));
        assert_eq!(inode(&dst.join("d/a")), inode(&old.join("d/a")));
        assert_eq!(inode(&dst.join("d/b")), inode(&old.join("d/b")));
        assert_eq!(std::fs::read(dst.join("d/b")).unwrap(), b"two");
        assert_eq!(std::fs::read(dst.join("new/c")).unwrap(), b"three");
        assert_eq!(rustix::fs::stat(dst.join("new/c")).unwrap().st_mtime, 5);
    }

    #[test]
    fn scan_and_hash() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/a"), b"abc").unwrap();
        std::os::unix::fs::symlink("a", t.path().join("d/l")).unwrap();
        let e = scan_dirs(t.path(), &[b"".to_vec(), b"d".to_vec()]).unwrap();
        let names: Vec<_> = e.iter().map(|x| (x.dir, lossy(&x.name))).collect();
        assert_eq!(names, vec![(0, "d".into()), (1, "a".into()), (1, "l".into())]);
        assert_eq!(e[2].link.as_deref(), Some(&b"a"[..]));
        let h = hash_files(t.path(), &[b"d/a".to_vec()], &AtomicBool::new(false)).unwrap();
        assert_eq!(h.digests, vec![Digest::of(b"abc")]);
        assert_eq!(h.bytes_read, 3);
        assert!(hash_files(t.path(), &[b"d/l".to_vec()], &AtomicBool::new(false)).is_err());
    }
}
