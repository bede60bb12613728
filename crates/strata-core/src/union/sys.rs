//! The union view's syscalls: fd-relative, each a thin rustix call that converts its error
//! to `io::Error`. No `unsafe` here: rustix covers every call the view makes.
//!
//! Every open inside a layer goes through `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS)`: the view resolves symlinks itself (within the view's root), so a
//! path handed to a layer is a chain of real directories and must never follow a link or
//! climb out of the layer. xattrs of a name inside an open directory go through
//! `/proc/self/fd/<dir>/<name>` (there is no `l*xattrat` before Linux 6.13); the final
//! component is a real name, not a magic link, so the `l*` calls act on it, symlinks included.
use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, RenameFlags, ResolveFlags, Timespec, Timestamps};
use rustix::fs::{Gid, Uid, XattrFlags, CWD};
use rustix::io::Errno;
use rustix::path::Arg;

pub(crate) use rustix::fs::Stat;

/// How the view resolves a path inside one layer (see the module comment).
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);
/// Bytes of directory entries fetched per `getdents64`, as glibc's `readdir` buffers them.
const DIRENT_BUF: usize = 32 * 1024;

/// Opens `rel` beneath `dir` without following any symlink (`O_CLOEXEC` always added).
/// `mode` only counts with `O_CREAT`/`O_TMPFILE`.
pub(crate) fn open_beneath(dir: BorrowedFd<'_>, rel: &str, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
    crate::ingest::safefs::openat2(dir, rel, flags, Mode::from_raw_mode(mode), BENEATH)
}

/// Opens a directory for reading entries / as a dirfd.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    open_beneath(dir, rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW, 0)
}

/// Opens a host directory (a layer root, a workdir) by its path.
pub(crate) fn open_dir_path(path: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// `lstat` of a single name inside an already-open directory.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `lstat` of a path beneath a layer root, never following a link on the way.
pub(crate) fn lstat_beneath(root: BorrowedFd<'_>, rel: &str) -> io::Result<Stat> {
    if !rel.contains('/') {
        return lstat_at(root, rel);
    }
    let fd = open_beneath(root, rel, OFlags::PATH | OFlags::NOFOLLOW, 0)?;
    fstat(fd.as_fd())
}

pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

pub(crate) fn is_whiteout(st: &Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    file_type(st) == FileType::Directory
}

/// `/proc/self/fd/<dir>/<name>`: the path of `name` inside an open directory, for the xattr
/// calls (see the module comment).
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &str) -> String {
    format!("/proc/self/fd/{}/{name}", dir.as_raw_fd())
}

/// `/proc/self/fd/<fd>`: a magic link to an open file, for calls that follow it.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Calls `get` with a growing buffer until the value fits (`ERANGE` means "larger").
fn with_growing_buf(start: usize, get: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; start];
    loop {
        match get(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The xattr names of `p` (not following a final symlink); none where xattrs are unsupported.
pub(crate) fn llistxattr(p: &str) -> io::Result<Vec<CString>> {
    let buf = match with_growing_buf(1024, |b| rustix::fs::llistxattr(p, b)) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        r => r?,
    };
    Ok(buf.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| CString::new(s).expect("split at NUL")).collect())
}

/// One xattr of `p` (not following a final symlink); `None` when absent or unsupported.
pub(crate) fn lgetxattr<N: Arg + Copy>(p: &str, name: N) -> io::Result<Option<Vec<u8>>> {
    match with_growing_buf(256, |b| rustix::fs::lgetxattr(p, name, b)) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA) | Some(libc::ENOTSUP)) => Ok(None),
        r => r.map(Some),
    }
}

pub(crate) fn lsetxattr(p: &str, name: impl Arg, value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::lsetxattr(p, name, value, XattrFlags::empty())?)
}

/// `setxattr` following the final link: for [`fd_path`]s of open files.
pub(crate) fn setxattr_follow(p: &str, name: impl Arg, value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::setxattr(p, name, value, XattrFlags::empty())?)
}

/// A short xattr of an open file (the opaque marker); `None` when absent, unsupported or
/// longer than a marker can be.
pub(crate) fn fgetxattr(fd: BorrowedFd<'_>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; 64];
    match rustix::fs::fgetxattr(fd, name, &mut buf) {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(Errno::NODATA) | Err(Errno::NOTSUP) | Err(Errno::RANGE) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
}

/// `mknodat` with the type bits and permissions of `mode` (`S_IFCHR | 0o644`, ...).
pub(crate) fn mknodat(dir: BorrowedFd<'_>, name: &str, mode: u32, dev: u64) -> io::Result<()> {
    Ok(rustix::fs::mknodat(dir, name, FileType::from_raw_mode(mode), Mode::from_raw_mode(mode), dev)?)
}

pub(crate) fn symlinkat(target: &str, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &str) -> io::Result<String> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(String::from_utf8_lossy(target.as_bytes()).into_owned())
}

pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &str, is_dir: bool) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, if is_dir { AtFlags::REMOVEDIR } else { AtFlags::empty() })?)
}

pub(crate) fn renameat2(
    olddir: BorrowedFd<'_>,
    old: &str,
    newdir: BorrowedFd<'_>,
    new: &str,
    flags: RenameFlags,
) -> io::Result<()> {
    Ok(rustix::fs::renameat_with(olddir, old, newdir, new, flags)?)
}

pub(crate) fn linkat(olddir: BorrowedFd<'_>, old: &str, newdir: BorrowedFd<'_>, new: &str) -> io::Result<()> {
    Ok(rustix::fs::linkat(olddir, old, newdir, new, AtFlags::empty())?)
}

/// Gives an `O_TMPFILE` inode a name: `linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW)` (needs no
/// CAP_DAC_READ_SEARCH, unlike `AT_EMPTY_PATH`). Fails with EEXIST rather than replacing.
pub(crate) fn link_fd(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    Ok(rustix::fs::linkat(CWD, fd_path(fd).as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)?)
}

/// An owner for `chown`: `u32::MAX` (`-1`) leaves it unchanged, as the syscall's `-1` does.
fn uid(id: u32) -> Option<Uid> {
    (id != u32::MAX).then(|| Uid::from_raw(id))
}

fn gid(id: u32) -> Option<Gid> {
    (id != u32::MAX).then(|| Gid::from_raw(id))
}

pub(crate) fn fchownat(dir: BorrowedFd<'_>, name: &str, owner: u32, group: u32) -> io::Result<()> {
    Ok(rustix::fs::chownat(dir, name, uid(owner), gid(group), AtFlags::SYMLINK_NOFOLLOW)?)
}

pub(crate) fn fchown(fd: BorrowedFd<'_>, owner: u32, group: u32) -> io::Result<()> {
    Ok(rustix::fs::fchown(fd, uid(owner), gid(group))?)
}

/// `chmod` of a name (follows a final symlink, as `chmod(2)` does).
pub(crate) fn fchmodat(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())?)
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

pub(crate) fn utimensat(dir: BorrowedFd<'_>, name: &str, times: &Timestamps) -> io::Result<()> {
    Ok(rustix::fs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW)?)
}

pub(crate) fn futimens(fd: BorrowedFd<'_>, times: &Timestamps) -> io::Result<()> {
    Ok(rustix::fs::futimens(fd, times)?)
}

/// A timestamp from nanoseconds since the epoch (negative ones before it).
pub(crate) fn timespec_ns(ns: i128) -> Timespec {
    Timespec { tv_sec: ns.div_euclid(1_000_000_000) as i64, tv_nsec: ns.rem_euclid(1_000_000_000) as i64 }
}

/// atime and mtime of `st`, to give them to a copy.
pub(crate) fn times_of(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec as i64 },
        last_modification: Timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec as i64 },
    }
}

pub(crate) fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fsync(fd)?)
}

pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// Copies all data: a FICLONE reflink where the filesystem offers one (btrfs, xfs),
/// otherwise `copy_file_range` (in-kernel, no userspace buffer), as overlayfs copy-up does;
/// `pread`/`pwrite` where neither works across these two files.
pub(crate) fn copy_data(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    if len == 0 || rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let mut off_in = 0u64;
    let mut off_out = 0u64;
    while off_in < len {
        let chunk = (len - off_in).min(1 << 30) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(Errno::XDEV) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP) | Err(Errno::INVAL) => {
                return copy_fallback(src, dst, off_in, len)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_fallback(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, mut off: u64, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while off < len {
        let n = match rustix::io::pread(src, &mut buf, off) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        write_all_at(dst, &buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Writes all of `data` through `write` (which writes a prefix and says how much),
/// retrying on EINTR: the one write loop of the view.
fn write_loop(mut data: &[u8], mut write: impl FnMut(&[u8]) -> rustix::io::Result<usize>) -> io::Result<()> {
    while !data.is_empty() {
        match write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `pwrite` of all of `data` at `off`.
pub(crate) fn write_all_at(fd: BorrowedFd<'_>, data: &[u8], mut off: u64) -> io::Result<()> {
    write_loop(data, |rest| {
        let n = rustix::io::pwrite(fd, rest, off)?;
        off += n as u64;
        Ok(n)
    })
}

/// `write` of all of `data` at the file position.
pub(crate) fn write_all(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    write_loop(data, |rest| rustix::io::write(fd, rest))
}

/// Reads a directory's entries from `dir`'s current position (a fresh fd starts at the
/// beginning): (name, type from `d_type`), `.` and `..` skipped.
pub(crate) fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(String, FileType)>> {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); DIRENT_BUF];
    let mut entries = RawDir::new(dir, &mut buf);
    let mut out = Vec::new();
    while let Some(ent) = entries.next() {
        let ent = match ent {
            Ok(ent) => ent,
            // A directory removed while it is read ends the listing, as glibc's readdir has it.
            Err(Errno::NOENT) => break,
            Err(e) => return Err(e.into()),
        };
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((String::from_utf8_lossy(name).into_owned(), ent.file_type()));
    }
    Ok(out)
}
