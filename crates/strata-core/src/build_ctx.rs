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
//! * [`is_archive`]: whether ADD should unpack a local file (a tar, plain, gzip or zstd).
use crate::digest::{Digest, Hasher};
use crate::error::{Coded, ErrorCode};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::io::{self, Read, Write};
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
}

/// Lists each of `dirs` (relative to `root`, `""` for the root; resolved inside it without
/// following symlinks), names sorted byte-wise. A directory that vanished lists as empty.
pub fn scan_dirs(root: &Path, dirs: &[Vec<u8>]) -> Result<Vec<ScanEntry>, BuildCtxError> {
    let rootfd = crate::safefs::open_root(root).map_err(|source| BuildCtxError::Io {
        op: "open",
        path: root.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, rel) in dirs.iter().enumerate() {
        let fd = match crate::safefs::open_in_root(rootfd.as_fd(), rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => continue,
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
        for name in names {
            let st = match rustix::fs::statat(&fd, os(&name), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(io_err("lstat", &name)(e)),
            };
            let link = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                Some(
                    rustix::fs::readlinkat(&fd, os(&name), Vec::new()).map_err(io_err("readlink", &name))?.into_bytes(),
                )
            } else {
                None
            };
            out.push(ScanEntry {
                dir: i as u32,
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
            });
        }
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
    let fd = crate::safefs::open_in_root(root, rel, OFlags::RDONLY | OFlags::NOATIME)
        .or_else(|_| crate::safefs::open_in_root(root, rel, OFlags::RDONLY))
        .map_err(|source| BuildCtxError::Io { op: "open", path: lossy(rel), source })?;
    let mut f = std::fs::File::from(fd);
    let mut h = Hasher::new();
    let mut n = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(BuildCtxError::Aborted);
        }
        match f.read(buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(BuildCtxError::Io { op: "read", path: lossy(rel), source }),
        }
    }
    Ok((h.finish(), n))
}

/// sha256 of each of `files` (relative to `root`, never through a symlink), in order.
pub fn hash_files(root: &Path, files: &[Vec<u8>], cancel: &AtomicBool) -> Result<Hashed, BuildCtxError> {
    let rootfd = crate::safefs::open_root(root).map_err(|source| BuildCtxError::Io {
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

/// Whether `path` is a tar archive ADD unpacks: plain, gzip or zstd, with a valid first header.
pub fn is_archive(path: &Path) -> Result<bool, BuildCtxError> {
    let f = std::fs::File::open(path).map_err(|source| BuildCtxError::Io {
        op: "open",
        path: path.display().to_string(),
        source,
    })?;
    let mut r = match crate::compress::Decompressor::new(io::BufReader::new(f)) {
        Ok(r) => r,
        Err(_) => return Ok(false),
    };
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
    },
    /// A regular file copied from `src` (relative to the source root), replacing what is at
    /// `dst`; with `expect`, its content must hash to it.
    File {
        src: Vec<u8>,
        dst: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
        expect: Option<Digest>,
    },
    Symlink {
        dst: Vec<u8>,
        target: Vec<u8>,
        uid: u32,
        gid: u32,
        mtime_ns: i64,
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

/// Carries out `ops` in order, reading sources below `src_root` and writing below `dst_root`.
pub fn copy_in(src_root: &Path, dst_root: &Path, ops: &[CopyOp], cancel: &AtomicBool) -> Result<Copied, BuildCtxError> {
    let src = open_dir(src_root)?;
    let dst = open_dir(dst_root)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = Copied::default();
    for op in ops {
        if cancel.load(Ordering::Relaxed) {
            return Err(BuildCtxError::Aborted);
        }
        match op {
            CopyOp::Mkdirs { dst: path, mode, uid, gid } => mkdirs(dst.as_fd(), path, *mode, *uid, *gid)?,
            CopyOp::Dir { dst: path, mode, uid, gid, mtime_ns } => {
                let (dir, leaf) = parent_of(dst.as_fd(), path)?;
                match rustix::fs::mkdirat(&dir, os(leaf), Mode::from_raw_mode(*mode & 0o7777)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err("mkdir", path)(e)),
                }
                let fd = crate::safefs::open_child_dir(dir.as_fd(), leaf, OFlags::RDONLY)
                    .map_err(|source| BuildCtxError::Io { op: "open", path: lossy(path), source })?;
                rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(*uid)), Some(rustix::fs::Gid::from_raw(*gid)))
                    .map_err(io_err("chown", path))?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(*mode & 0o7777)).map_err(io_err("chmod", path))?;
                rustix::fs::futimens(&fd, &timestamps(*mtime_ns)).map_err(io_err("utimens", path))?;
            }
            CopyOp::File { src: from, dst: path, mode, uid, gid, mtime_ns, expect } => {
                let input = open_in(src.as_fd(), from, OFlags::RDONLY).map_err(io_err("open", from))?;
                let (dir, leaf) = parent_of(dst.as_fd(), path)?;
                clear_leaf(dir.as_fd(), leaf, path)?;
                let out = rustix::fs::openat(
                    &dir,
                    os(leaf),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err("create", path))?;
                let mut reader = std::fs::File::from(input);
                let mut writer = std::fs::File::from(out);
                let mut h = Hasher::new();
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(source) => return Err(BuildCtxError::Io { op: "read", path: lossy(from), source }),
                    };
                    h.update(&buf[..n]);
                    writer.write_all(&buf[..n]).map_err(|source| BuildCtxError::Io {
                        op: "write",
                        path: lossy(path),
                        source,
                    })?;
                    done.bytes += n as u64;
                }
                let got = h.finish();
                if let Some(want) = expect {
                    if *want != got {
                        return Err(BuildCtxError::Changed {
                            path: lossy(from),
                            expected: want.to_string(),
                            found: got.to_string(),
                        });
                    }
                }
                rustix::fs::fchown(
                    &writer,
                    Some(rustix::fs::Uid::from_raw(*uid)),
                    Some(rustix::fs::Gid::from_raw(*gid)),
                )
                .map_err(io_err("chown", path))?;
                rustix::fs::fchmod(&writer, Mode::from_raw_mode(*mode & 0o7777)).map_err(io_err("chmod", path))?;
                rustix::fs::futimens(&writer, &timestamps(*mtime_ns)).map_err(io_err("utimens", path))?;
                done.files += 1;
            }
            CopyOp::Symlink { dst: path, target, uid, gid, mtime_ns } => {
                let (dir, leaf) = parent_of(dst.as_fd(), path)?;
                clear_leaf(dir.as_fd(), leaf, path)?;
                rustix::fs::symlinkat(os(target), &dir, os(leaf)).map_err(io_err("symlink", path))?;
                chown_at(dir.as_fd(), leaf, *uid, *gid, path)?;
                rustix::fs::utimensat(&dir, os(leaf), &timestamps(*mtime_ns), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io_err("utimens", path))?;
            }
            CopyOp::Hardlink { dst: path, to } => {
                let (dir, leaf) = parent_of(dst.as_fd(), path)?;
                let (tdir, tleaf) = parent_of(dst.as_fd(), to)?;
                clear_leaf(dir.as_fd(), leaf, path)?;
                rustix::fs::linkat(&tdir, os(tleaf), &dir, os(leaf), AtFlags::empty()).map_err(io_err("link", path))?;
            }
            CopyOp::DirTimes { dst: path, mtime_ns } => {
                let fd =
                    open_in(dst.as_fd(), path, OFlags::RDONLY | OFlags::DIRECTORY).map_err(io_err("open", path))?;
                rustix::fs::futimens(&fd, &timestamps(*mtime_ns)).map_err(io_err("utimens", path))?;
            }
        }
    }
    Ok(done)
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
                let fd = crate::safefs::open_child_dir(parent.as_fd(), comp, OFlags::RDONLY)
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

    #[test]
    fn copy_stays_inside_the_destination_root() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst, outside) = (t.path().join("src"), t.path().join("dst"), t.path().join("outside"));
        for d in [&src, &dst, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(src.join("f"), b"hello").unwrap();
        // An absolute symlink in the rootfs resolves inside it, as in a chroot.
        std::os::unix::fs::symlink(&outside, dst.join("app")).unwrap();
        let cancel = AtomicBool::new(false);
        let want = Digest::of(b"hello");
        let ops = vec![
            CopyOp::Mkdirs { dst: b"/app".to_vec(), mode: 0o755, uid: 0, gid: 0 },
            CopyOp::File {
                src: b"f".to_vec(),
                dst: b"/app/f".to_vec(),
                mode: 0o640,
                uid: 0,
                gid: 0,
                mtime_ns: 0,
                expect: Some(want),
            },
        ];
        let r = copy_in(&src, &dst, &ops, &cancel);
        // `app` points at a host path: inside the root that path does not exist, so MkdirAll
        // makes it there, never in the host's `outside`.
        assert!(r.is_ok() || matches!(r, Err(BuildCtxError::Io { .. })), "{r:?}");
        assert!(!outside.join("f").exists());
        let bad = vec![CopyOp::File {
            src: b"f".to_vec(),
            dst: b"/g".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            expect: Some(Digest::of(b"other")),
        }];
        assert!(matches!(copy_in(&src, &dst, &bad, &cancel), Err(BuildCtxError::Changed { .. })));
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
