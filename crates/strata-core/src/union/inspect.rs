//! Plain-directory helpers around the overlay format: make whiteouts and opaque dirs, and
//! snapshot a real directory tree (upper dirs, layer dirs, kernel mounts) for comparisons.
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::sys;
use super::{UnionError, OPAQUE_XATTR};

/// One object of a snapshotted tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapEntry {
    /// Path relative to the snapshot root (`""` for the root).
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    pub rdev: u64,
    pub mtime_ns: i128,
    /// `sha256:<hex>` of a regular file's content.
    pub hash: Option<String>,
    /// A symlink's target.
    pub target: Option<String>,
    /// All xattrs, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

fn err(op: &'static str, p: &Path, e: io::Error) -> UnionError {
    UnionError::io(op, &p.display().to_string(), e)
}

/// Creates an overlay whiteout (char device 0/0, mode 0) at `path`.
pub fn make_whiteout(path: &Path) -> Result<(), UnionError> {
    let c = sys::cstr(&path.to_string_lossy()).map_err(|e| err("mknod", path, e))?;
    // SAFETY: c is a valid path.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) } != 0 {
        return Err(err("mknod", path, io::Error::last_os_error()));
    }
    Ok(())
}

/// Marks a directory opaque (`trusted.overlay.opaque=y`).
pub fn set_opaque(path: &Path) -> Result<(), UnionError> {
    let c = sys::cstr(&path.to_string_lossy()).map_err(|e| err("setxattr", path, e))?;
    sys::lsetxattr(&c, &sys::cstr(OPAQUE_XATTR).expect("static"), b"y").map_err(|e| err("setxattr", path, e))
}

/// Walks `root` (not following symlinks) and describes every object, sorted by path.
pub fn snapshot(root: &Path) -> Result<Vec<SnapEntry>, UnionError> {
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, rel: &str, out: &mut Vec<SnapEntry>) -> Result<(), UnionError> {
    let p = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let c = sys::cstr(&p.to_string_lossy()).map_err(|e| err("lstat", &p, e))?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: c and st valid.
    if unsafe { libc::lstat(c.as_ptr(), &mut st) } != 0 {
        return Err(err("lstat", &p, io::Error::last_os_error()));
    }
    let fmt = st.st_mode & libc::S_IFMT;
    let mut xattrs = Vec::new();
    for n in sys::llistxattr(&c).map_err(|e| err("listxattr", &p, e))? {
        if let Some(v) = sys::lgetxattr(&c, &n).map_err(|e| err("getxattr", &p, e))? {
            xattrs.push((n.to_string_lossy().into_owned(), v));
        }
    }
    xattrs.sort();
    let hash = if fmt == libc::S_IFREG {
        Some(crate::digest::sha256_file(&p).map_err(|e| err("read", &p, e))?.to_string())
    } else {
        None
    };
    let target = if fmt == libc::S_IFLNK {
        Some(std::fs::read_link(&p).map_err(|e| err("readlink", &p, e))?.to_string_lossy().into_owned())
    } else {
        None
    };
    out.push(SnapEntry {
        path: rel.to_string(),
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        nlink: st.st_nlink,
        rdev: st.st_rdev,
        mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
        hash,
        target,
        xattrs,
    });
    if fmt == libc::S_IFDIR {
        // SAFETY: c valid.
        let raw =
            unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(err("opendir", &p, io::Error::last_os_error()));
        }
        // SAFETY: fresh descriptor.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        for (name, _) in sys::read_dir_fd(fd).map_err(|e| err("readdir", &p, e))? {
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            walk(root, &child, out)?;
        }
    }
    Ok(())
}

/// Mounts kernel overlayfs with the new mount API (`fsopen`/`fsconfig lowerdir+`, kernel ≥ 6.8),
/// one `lowerdir+` per layer so deep stacks are not limited by the one-page option string.
/// For differential tests and benchmarks against the view; the store's own mount plans live
/// in the overlay module. `options` are extra `key` or `key=value` flags
/// (e.g. `redirect_dir=off`).
pub fn mount_overlay(
    lowers: &[std::path::PathBuf],
    upper: Option<(&Path, &Path)>,
    options: &[String],
    target: &Path,
) -> Result<(), UnionError> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let fail = |what: &'static str, e: io::Error| err(what, target, e);
    let c = |s: &str| sys::cstr(s).map_err(|e| fail("mount", e));
    // SAFETY: syscalls with valid nul-terminated strings; results checked.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), 1u32);
        if fs < 0 {
            return Err(fail("fsopen", io::Error::last_os_error()));
        }
        let fs = OwnedFd::from_raw_fd(fs as i32);
        let set = |k: &str, v: Option<&str>| -> Result<(), UnionError> {
            let kc = c(k)?;
            let vc = v.map(c).transpose()?;
            let (cmd, vp) = match &vc {
                Some(v) => (1u32, v.as_ptr()),    // FSCONFIG_SET_STRING
                None => (0u32, std::ptr::null()), // FSCONFIG_SET_FLAG
            };
            if libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, kc.as_ptr(), vp, 0) < 0 {
                return Err(fail("fsconfig", io::Error::last_os_error()));
            }
            Ok(())
        };
        for l in lowers {
            set("lowerdir+", Some(&l.to_string_lossy()))?;
        }
        if let Some((u, w)) = upper {
            set("upperdir", Some(&u.to_string_lossy()))?;
            set("workdir", Some(&w.to_string_lossy()))?;
        }
        for o in options {
            match o.split_once('=') {
                Some((k, v)) => set(k, Some(v))?,
                None => set(o, None)?,
            }
        }
        // FSCONFIG_CMD_CREATE
        if libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), 6u32, std::ptr::null::<u8>(), std::ptr::null::<u8>(), 0)
            < 0
        {
            return Err(fail("fsconfig create", io::Error::last_os_error()));
        }
        let m = libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), 1u32, 0u32);
        if m < 0 {
            return Err(fail("fsmount", io::Error::last_os_error()));
        }
        let m = OwnedFd::from_raw_fd(m as i32);
        let t = c(&target.to_string_lossy())?;
        // MOVE_MOUNT_F_EMPTY_PATH
        if libc::syscall(libc::SYS_move_mount, m.as_raw_fd(), c"".as_ptr(), libc::AT_FDCWD, t.as_ptr(), 4u32) < 0 {
            return Err(fail("move_mount", io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Unmounts `target`; `lazy` detaches (MNT_DETACH) instead of waiting.
pub fn umount(target: &Path, lazy: bool) -> Result<(), UnionError> {
    let t = sys::cstr(&target.to_string_lossy()).map_err(|e| err("umount", target, e))?;
    // SAFETY: valid path.
    if unsafe { libc::umount2(t.as_ptr(), if lazy { libc::MNT_DETACH } else { 0 }) } != 0 {
        return Err(err("umount", target, io::Error::last_os_error()));
    }
    Ok(())
}
