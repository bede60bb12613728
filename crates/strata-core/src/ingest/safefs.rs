//! fd-relative filesystem primitives confined to a root directory.
//!
//! Nothing here joins strings into a host path: a root is opened once as an `O_PATH`
//! directory fd and every lookup below it goes through `openat2(2)` with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`, so a
//! symlink anywhere on the way (planted by an earlier entry of the same layer, or swapped
//! in for a directory) makes the lookup fail with `ELOOP` instead of leading outside.
//! Leaf operations use `*at` syscalls on the parent fd with a single path component.
//!
//! It must not offer an operation that takes a host path below the root.
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How every lookup below a root resolves.
pub const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// A normalised, confined relative path: no leading `/`, no `.`/`..`/empty components.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelPath {
    bytes: Vec<u8>,
    leaf_start: usize,
}

impl RelPath {
    /// Normalises a tar entry name: strips leading `./` and `.` components and repeated or
    /// trailing slashes. Rejects empty names, NUL bytes, absolute names and any `..`
    /// component (with the reason). `Ok(None)` means the name denotes the root itself (`./`).
    pub fn parse(raw: &[u8]) -> Result<Option<RelPath>, &'static str> {
        if raw.is_empty() {
            return Err("empty name");
        }
        if raw.contains(&0) {
            return Err("NUL byte in name");
        }
        if raw[0] == b'/' {
            return Err("absolute name");
        }
        let mut bytes = Vec::with_capacity(raw.len());
        let mut leaf_start = 0;
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => continue,
                b".." => return Err("'..' component"),
                _ => {
                    if !bytes.is_empty() {
                        bytes.push(b'/');
                    }
                    leaf_start = bytes.len();
                    bytes.extend_from_slice(comp);
                }
            }
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(RelPath { bytes, leaf_start }))
    }
    /// The whole normalised path, `a/b/c`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The parent part, `a/b` (empty at the top level).
    pub fn parent(&self) -> &[u8] {
        if self.leaf_start == 0 {
            b""
        } else {
            &self.bytes[..self.leaf_start - 1]
        }
    }
    /// The last component, `c`.
    pub fn leaf(&self) -> &[u8] {
        &self.bytes[self.leaf_start..]
    }
    /// Components, top first.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.split(|&b| b == b'/')
    }
    /// Number of components.
    pub fn depth(&self) -> usize {
        self.bytes.iter().filter(|&&b| b == b'/').count() + 1
    }
    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.bytes.starts_with(&other.bytes)
            && (self.bytes.len() == other.bytes.len() || self.bytes[other.bytes.len()] == b'/')
    }
    /// Lossy text for messages only (names are bytes, never converted for use).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// `OsStr` view of raw name bytes (for syscalls; no conversion).
pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Opens `path` as the root of a confined tree (`O_PATH`, no symlink at the end).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
}

/// Opens `rel` (a normalised relative path, or empty for the root itself) below `root`.
///
/// No `O_NOFOLLOW`: `RESOLVE_NO_SYMLINKS` already refuses a symlink in *every* position,
/// and with `O_NOFOLLOW` a trailing one would be opened (`O_PATH`) instead of refused.
pub fn open_in_root(root: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
    openat2(root, os(rel), flags, Mode::empty(), RESOLVE)
}

/// Opens one component `name` below `dir` as a directory, never following a symlink.
pub fn open_child_dir(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let resolve =
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
    openat2(dir, os(name), flags | OFlags::DIRECTORY, Mode::empty(), resolve)
}

/// `openat2(2)` (`O_CLOEXEC` added), retried while the kernel asks for it: `EAGAIN` when a
/// concurrent rename raced a `RESOLVE_BENEATH`/`IN_ROOT` lookup, and `EINTR`.
pub fn openat2<P: rustix::path::Arg + Copy>(
    dir: BorrowedFd<'_>,
    path: P,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    loop {
        match rustix::fs::openat2(dir, path, flags | OFlags::CLOEXEC, mode, resolve) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Whether a lookup error means "a symlink (or a mount) was in the way".
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV))
}

/// Removes `name` in `dir` and, for a directory, everything below it, fd-relative and
/// never following a symlink (a symlink is removed, not its target).
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    {
        let sub = rustix::fs::openat(
            dir,
            os(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for ent in rustix::fs::Dir::read_from(&sub)? {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        for n in names {
            remove_all_at(sub.as_fd(), &n)?;
        }
    }
    Ok(rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)?)
}

/// Sets an xattr on the inode an `O_PATH` fd refers to — the way to reach a symlink or a
/// device node without following or opening it: the `/proc/self/fd` magic link resolves
/// to that very inode.
pub fn set_xattr_opath(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::setxattr(proc.as_str(), os(name), value, rustix::fs::XattrFlags::empty())?)
}

/// `fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW)` (Linux ≥ 6.6), falling back to
/// `fchmodat` (which follows) only where the syscall does not exist.
pub fn chmod_nofollow(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> io::Result<()> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall with a valid fd, a NUL-terminated path and integer arguments.
    let r = unsafe {
        libc::syscall(libc::SYS_fchmodat2, dir.as_raw_fd(), c.as_ptr(), mode as libc::c_uint, libc::AT_SYMLINK_NOFOLLOW)
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOSYS) {
        return Ok(rustix::fs::chmodat(dir, os(name), Mode::from_raw_mode(mode), AtFlags::empty())?);
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<String>, &'static str> {
        RelPath::parse(s.as_bytes()).map(|o| o.map(|r| r.display()))
    }

    #[test]
    fn names_are_normalised_or_refused() {
        assert_eq!(p("./a/b/"), Ok(Some("a/b".into())));
        assert_eq!(p("a//./b"), Ok(Some("a/b".into())));
        assert_eq!(p("./"), Ok(None));
        assert_eq!(p("."), Ok(None));
        assert!(p("").is_err());
        assert!(p("/etc/passwd").is_err());
        assert!(p("a/../b").is_err());
        assert!(p("..").is_err());
        assert!(RelPath::parse(b"a\0b").is_err());
        let r = RelPath::parse(b"x/y/z").unwrap().unwrap();
        assert_eq!((r.parent(), r.leaf(), r.depth()), (&b"x/y"[..], &b"z"[..], 3));
        let top = RelPath::parse(b"z").unwrap().unwrap();
        assert_eq!((top.parent(), top.leaf(), top.depth()), (&b""[..], &b"z"[..], 1));
        let x = RelPath::parse(b"x").unwrap().unwrap();
        assert!(r.starts_with(&x) && !RelPath::parse(b"xy").unwrap().unwrap().starts_with(&x));
    }

    #[test]
    fn lookups_refuse_symlinks_and_removal_does_not_follow() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"k").unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("d/link")).unwrap();
        let fd = open_root(&root).unwrap();
        assert!(open_in_root(fd.as_fd(), b"d/e", OFlags::PATH | OFlags::DIRECTORY).is_ok());
        let e = open_in_root(fd.as_fd(), b"d/link", OFlags::PATH | OFlags::DIRECTORY).unwrap_err();
        assert!(is_symlink_refusal(&e), "{e}");
        remove_all_at(fd.as_fd(), b"d").unwrap();
        assert!(!root.join("d").exists());
        assert!(outside.join("keep").exists());
    }
}
