//! Thin, fd-relative syscall wrappers used by the union view.
//!
//! Every open inside a layer goes through `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS)`: the view resolves symlinks itself (within the view's root), so a
//! path handed to a layer is a chain of real directories and must never follow a link or
//! climb out of the layer.
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `ioctl(FICLONE)`; not exported by every libc version.
const FICLONE: libc::c_ulong = 0x4004_9409;

pub(crate) fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Opens `rel` beneath `dirfd` without following any symlink (`O_CLOEXEC` always added).
pub(crate) fn open_beneath(dirfd: RawFd, rel: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let path = cstr(rel)?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 { mode as u64 } else { 0 };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: `how` and `path` outlive the call; the size is the struct's.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: the kernel just gave us this descriptor.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = io::Error::last_os_error();
        // openat2 returns EAGAIN when a concurrent rename races RESOLVE_BENEATH; retry.
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
}

/// Opens a directory for reading entries / as a dirfd.
pub(crate) fn open_dir(dirfd: RawFd, rel: &str) -> io::Result<OwnedFd> {
    open_beneath(dirfd, rel, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
}

pub(crate) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// `lstat` of a single name inside an already-open directory.
pub(crate) fn lstat_at(dirfd: RawFd, name: &str) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: c and st are valid for the call.
    cvt(unsafe { libc::fstatat(dirfd, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// `lstat` of a path beneath a layer root, never following a link on the way.
pub(crate) fn lstat_beneath(root: RawFd, rel: &str) -> io::Result<libc::stat> {
    if !rel.contains('/') {
        return lstat_at(root, rel);
    }
    let fd = open_beneath(root, rel, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    fstat(fd.as_raw_fd())
}

pub(crate) fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

pub(crate) fn is_dir(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

/// `/proc/self/fd/<dirfd>/<name>`: a path naming `name` inside an open directory, for the
/// `l*xattr` calls that have no fd-relative form on older libcs. The final component is a
/// real name (not a magic link) so `l*` variants act on it, symlinks included.
pub(crate) fn proc_path(dirfd: RawFd, name: &str) -> io::Result<CString> {
    cstr(&format!("/proc/self/fd/{dirfd}/{name}"))
}

pub(crate) fn llistxattr(p: &CStr) -> io::Result<Vec<CString>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| CString::new(s).expect("no interior nul"))
                .collect());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    }
}

pub(crate) fn lgetxattr(p: &CStr, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::lgetxattr(p.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            _ => return Err(e),
        }
    }
}

pub(crate) fn lsetxattr(p: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: pointers valid for the call.
    cvt(unsafe { libc::lsetxattr(p.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })?;
    Ok(())
}

pub(crate) fn fgetxattr(fd: RawFd, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 64];
    // SAFETY: buf valid for its length.
    let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n >= 0 {
        buf.truncate(n as usize);
        return Ok(Some(buf));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA) | Some(libc::ENOTSUP) | Some(libc::ERANGE) => Ok(None),
        _ => Err(e),
    }
}

pub(crate) fn mkdirat(dirfd: RawFd, name: &str, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c valid.
    cvt(unsafe { libc::mkdirat(dirfd, c.as_ptr(), mode) })?;
    Ok(())
}

pub(crate) fn mknodat(dirfd: RawFd, name: &str, mode: u32, dev: u64) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c valid.
    cvt(unsafe { libc::mknodat(dirfd, c.as_ptr(), mode, dev) })?;
    Ok(())
}

pub(crate) fn symlinkat(target: &str, dirfd: RawFd, name: &str) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: t and c valid.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dirfd, c.as_ptr()) })?;
    Ok(())
}

pub(crate) fn readlinkat(dirfd: RawFd, name: &str) -> io::Result<String> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf valid for its length.
    let n = unsafe { libc::readlinkat(dirfd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

pub(crate) fn unlinkat(dirfd: RawFd, name: &str, dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c valid.
    cvt(unsafe { libc::unlinkat(dirfd, c.as_ptr(), if dir { libc::AT_REMOVEDIR } else { 0 }) })?;
    Ok(())
}

pub(crate) fn renameat2(olddir: RawFd, old: &str, newdir: RawFd, new: &str, flags: u32) -> io::Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: o and n valid.
    cvt(unsafe { libc::renameat2(olddir, o.as_ptr(), newdir, n.as_ptr(), flags) })?;
    Ok(())
}

pub(crate) fn linkat(olddir: RawFd, old: &str, newdir: RawFd, new: &str) -> io::Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: o and n valid.
    cvt(unsafe { libc::linkat(olddir, o.as_ptr(), newdir, n.as_ptr(), 0) })?;
    Ok(())
}

pub(crate) fn fchownat(dirfd: RawFd, name: &str, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c valid.
    cvt(unsafe { libc::fchownat(dirfd, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(())
}

pub(crate) fn fchmodat(dirfd: RawFd, name: &str, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c valid.
    cvt(unsafe { libc::fchmodat(dirfd, c.as_ptr(), mode, 0) })?;
    Ok(())
}

pub(crate) fn utimensat(dirfd: RawFd, name: &str, times: &[libc::timespec; 2]) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c and times valid.
    cvt(unsafe { libc::utimensat(dirfd, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(())
}

pub(crate) fn futimens(fd: RawFd, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: times valid.
    cvt(unsafe { libc::futimens(fd, times.as_ptr()) })?;
    Ok(())
}

pub(crate) fn times_of(st: &libc::stat) -> [libc::timespec; 2] {
    [
        libc::timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec },
        libc::timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec },
    ]
}

/// Copies all data: a FICLONE reflink where the filesystem offers one (btrfs, xfs),
/// otherwise `copy_file_range` (in-kernel, no userspace buffer), as overlayfs copy-up does.
pub(crate) fn copy_data(src: RawFd, dst: RawFd, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: plain ioctl on two valid fds.
    if unsafe { libc::ioctl(dst, FICLONE as _, src) } == 0 {
        return Ok(());
    }
    let mut off_in: i64 = 0;
    let mut off_out: i64 = 0;
    while (off_in as u64) < len {
        let chunk = ((len - off_in as u64) as usize).min(1 << 30);
        // SAFETY: offsets are valid out-pointers.
        let n = unsafe { libc::copy_file_range(src, &mut off_in, dst, &mut off_out, chunk, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
            ) {
                return copy_fallback(src, dst, off_in, len);
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
    }
    Ok(())
}

fn copy_fallback(src: RawFd, dst: RawFd, mut off: i64, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while (off as u64) < len {
        // SAFETY: buf valid for its length.
        let n = unsafe { libc::pread(src, buf.as_mut_ptr().cast(), buf.len(), off) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        write_all_at(dst, &buf[..n as usize], off)?;
        off += n as i64;
    }
    Ok(())
}

pub(crate) fn write_all_at(fd: RawFd, mut data: &[u8], mut off: i64) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: data valid for its length.
        let n = unsafe { libc::pwrite(fd, data.as_ptr().cast(), data.len(), off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
        off += n as i64;
    }
    Ok(())
}

pub(crate) fn write_all(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: data valid for its length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

pub(crate) fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fchown(fd, uid, gid) })?;
    Ok(())
}

pub(crate) fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fchmod(fd, mode) })?;
    Ok(())
}

/// `setxattr` following the final link: for `/proc/self/fd/N` paths of open files.
pub(crate) fn setxattr_follow(p: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: pointers valid for the call.
    cvt(unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })?;
    Ok(())
}

/// Gives an `O_TMPFILE` inode a name: `linkat(/proc/self/fd/N, AT_SYMLINK_FOLLOW)` (needs no
/// CAP_DAC_READ_SEARCH, unlike `AT_EMPTY_PATH`). Fails with EEXIST rather than replacing.
pub(crate) fn link_fd(fdpath: &CStr, dirfd: RawFd, name: &str) -> io::Result<()> {
    let n = cstr(name)?;
    // SAFETY: pointers valid for the call.
    cvt(unsafe { libc::linkat(libc::AT_FDCWD, fdpath.as_ptr(), dirfd, n.as_ptr(), libc::AT_SYMLINK_FOLLOW) })?;
    Ok(())
}

pub(crate) fn fsync(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fsync(fd) })?;
    Ok(())
}

pub(crate) fn ftruncate(fd: RawFd, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::ftruncate(fd, len as i64) })?;
    Ok(())
}

/// Reads a directory's entries: (name, d_type). `.` and `..` are skipped.
pub(crate) fn read_dir_fd(fd: OwnedFd) -> io::Result<Vec<(String, u8)>> {
    let raw = fd.as_raw_fd();
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let dir = unsafe { libc::fdopendir(raw) };
    if dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let mut out = Vec::new();
    let res = loop {
        // SAFETY: errno reset before readdir to distinguish end from error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: dir is a valid DIR*.
        let ent = unsafe { libc::readdir64(dir) };
        if ent.is_null() {
            let errno = unsafe { *libc::__errno_location() };
            break if errno != 0 { Err(io::Error::from_raw_os_error(errno)) } else { Ok(()) };
        }
        // SAFETY: readdir returned a valid entry with a nul-terminated name.
        let (name, ty) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        out.push((String::from_utf8_lossy(b).into_owned(), ty));
    };
    // SAFETY: dir valid, closed once.
    unsafe { libc::closedir(dir) };
    res.map(|_| out)
}

pub(crate) fn dtype_of_mode(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFREG => libc::DT_REG,
        libc::S_IFDIR => libc::DT_DIR,
        libc::S_IFLNK => libc::DT_LNK,
        libc::S_IFCHR => libc::DT_CHR,
        libc::S_IFBLK => libc::DT_BLK,
        libc::S_IFIFO => libc::DT_FIFO,
        libc::S_IFSOCK => libc::DT_SOCK,
        _ => libc::DT_UNKNOWN,
    }
}
