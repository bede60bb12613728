//! Plain-directory helpers around the overlay format: make whiteouts and opaque dirs, and
//! snapshot a real directory tree (upper dirs, layer dirs, kernel mounts) for comparisons.
use std::io;
use std::path::Path;

use std::os::fd::AsFd;

use rustix::fs::{FileType, Mode, OFlags, CWD};

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
    rustix::fs::mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), 0)
        .map_err(|e| err("mknod", path, e.into()))
}

/// Marks a directory opaque (`trusted.overlay.opaque=y`).
pub fn set_opaque(path: &Path) -> Result<(), UnionError> {
    sys::lsetxattr(&path.to_string_lossy(), OPAQUE_XATTR, b"y").map_err(|e| err("setxattr", path, e))
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
    let c = p.to_string_lossy();
    let st = rustix::fs::lstat(&p).map_err(|e| err("lstat", &p, e.into()))?;
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
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&p, flags, Mode::empty()).map_err(|e| err("opendir", &p, e.into()))?;
        for (name, _) in sys::read_dir(fd.as_fd()).map_err(|e| err("readdir", &p, e))? {
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            walk(root, &child, out)?;
        }
    }
    Ok(())
}
