//! The one walk over an overlay upper dir (or any tree), for every module that reads one:
//! `docker diff` ([`crate::egress::changes`]) and the layer tar writer ([`crate::egress::layertar`], behind
//! commit, export and a build step's layer). It owns the order, the fd-relative opening and the
//! overlay meaning of an entry; it must not decide what an entry becomes (the visitors do).
//!
//! Order is depth first, each directory's names sorted byte-wise, a directory before its
//! contents: Go's `filepath.WalkDir` order, which is also `docker diff`'s component-wise path
//! order (`/a`, `/a/b`, `/a b`). The walk is fd-relative (`openat` with `O_NOFOLLOW`,
//! `fstatat` with `AT_SYMLINK_NOFOLLOW`): no symlink is ever followed. The root itself is not
//! visited.
//!
//! For each entry the visitor gets its path relative to the root (no leading `/`), its
//! `lstat`, its overlay meaning ([`Node`]: a whiteout is a character device 0/0; a directory
//! is opaque when `trusted.overlay.opaque=y` or `user.overlay.opaque=y`), the fd of its
//! parent directory (for `*at` calls) and, for a directory, its own open fd; it decides
//! whether to descend into a directory, and hears when the walk leaves one.
use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Overlayfs' opaque-directory xattrs (the `user.` one with the `userxattr` mount option).
pub const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Errors of the walk itself (a visitor's own errors convert from this).
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

impl crate::error::Coded for WalkError {
    fn code(&self) -> crate::error::ErrorCode {
        crate::error::ErrorCode::Io
    }
    fn errno(&self) -> Option<i32> {
        match self {
            WalkError::Io { source, .. } => source.raw_os_error(),
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            WalkError::Io { path, .. } => Some(path.display().to_string()),
        }
    }
}

/// What an entry of an upper dir means to overlayfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// A character device 0/0: the name is deleted.
    Whiteout,
    /// A directory; `opaque` hides everything the layers below hold under it.
    Dir { opaque: bool },
    /// A file, symlink, device, fifo or socket.
    Other,
}

/// One entry, as the visitor sees it.
pub struct Entry<'a> {
    /// Path relative to the walk's root, components joined by `/`, no leading `/`.
    pub rel: &'a [u8],
    /// The last component.
    pub name: &'a [u8],
    /// The directory holding it (for `*at` calls).
    pub parent: BorrowedFd<'a>,
    pub stat: &'a Stat,
    pub node: Node,
    /// A directory's own fd (`O_RDONLY`, not following a symlink); `None` for the others.
    pub dir: Option<BorrowedFd<'a>>,
}

/// What the walk does with a directory the visitor has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descend {
    Yes,
    No,
}

pub trait Visitor {
    type Error: From<WalkError>;
    /// Called for every entry in walk order; for a directory, says whether to walk into it.
    fn entry(&mut self, e: &Entry<'_>) -> Result<Descend, Self::Error>;
    /// Called after the last entry below a directory the walk descended into.
    fn leave(&mut self, _rel: &[u8]) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Is `st` an overlay whiteout (character device 0/0)?
pub fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Is the open directory `fd` marked opaque?
pub fn is_opaque(fd: BorrowedFd<'_>) -> bool {
    let mut v = [0u8; 2];
    OPAQUE_XATTRS.iter().any(|k| matches!(rustix::fs::fgetxattr(fd, *k, &mut v[..]), Ok(1) if v[0] == b'y'))
}

fn io(op: &'static str, path: PathBuf, e: Errno) -> WalkError {
    WalkError::Io { op, path, source: e.into() }
}

fn lossy_join(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(String::from_utf8_lossy(rel).as_ref())
}

/// The names in an open directory, `.`/`..` left out, sorted byte-wise.
pub fn read_names(fd: &OwnedFd, path: &Path) -> Result<Vec<Vec<u8>>, WalkError> {
    let mut dir = rustix::fs::Dir::read_from(fd).map_err(|e| io("readdir", path.to_path_buf(), e))?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent.map_err(|e| io("readdir", path.to_path_buf(), e))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort_unstable();
    Ok(names)
}

struct Frame {
    fd: OwnedFd,
    /// `rel` of this directory followed by `/` (empty for the root).
    prefix: Vec<u8>,
    names: Vec<Vec<u8>>,
    next: usize,
}

/// Walks `root` (see the module docs).
pub fn walk<V: Visitor>(root: &Path, v: &mut V) -> Result<(), V::Error> {
    let fd = openat(rustix::fs::CWD, root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open", root.to_path_buf(), e))?;
    let names = read_names(&fd, root)?;
    let mut stack = vec![Frame { fd, prefix: Vec::new(), names, next: 0 }];
    while let Some(top) = stack.last_mut() {
        if top.next == top.names.len() {
            let done = stack.pop().expect("non-empty");
            if !done.prefix.is_empty() {
                v.leave(&done.prefix[..done.prefix.len() - 1])?;
            }
            continue;
        }
        let name = std::mem::take(&mut top.names[top.next]);
        top.next += 1;
        let mut rel = top.prefix.clone();
        rel.extend_from_slice(&name);
        let parent = top.fd.as_fd();
        let cname = CString::new(name.clone()).map_err(|_| io("lstat", lossy_join(root, &rel), Errno::INVAL))?;
        let stat = statat(parent, cname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io("lstat", lossy_join(root, &rel), e))?;
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        let mut child = None;
        let node = if is_whiteout(&stat) {
            Node::Whiteout
        } else if is_dir {
            let fd = openat(
                parent,
                cname.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io("open", lossy_join(root, &rel), e))?;
            let opaque = is_opaque(fd.as_fd());
            child = Some(fd);
            Node::Dir { opaque }
        } else {
            Node::Other
        };
        let dir = child.as_ref().map(|fd| fd.as_fd());
        let descend = v.entry(&Entry { rel: &rel, name: &name, parent, stat: &stat, node, dir })?;
        if let (Some(fd), Descend::Yes) = (child, descend) {
            let names = read_names(&fd, &lossy_join(root, &rel))?;
            rel.push(b'/');
            stack.push(Frame { fd, prefix: rel, names, next: 0 });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Record(Vec<String>);
    impl Visitor for Record {
        type Error = WalkError;
        fn entry(&mut self, e: &Entry<'_>) -> Result<Descend, WalkError> {
            self.0.push(String::from_utf8_lossy(e.rel).into_owned());
            Ok(if e.name == b"skip" { Descend::No } else { Descend::Yes })
        }
        fn leave(&mut self, rel: &[u8]) -> Result<(), WalkError> {
            self.0.push(format!("<{}", String::from_utf8_lossy(rel)));
            Ok(())
        }
    }

    #[test]
    fn depth_first_sorted_dirs_before_contents() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a b")).unwrap();
        std::fs::create_dir_all(t.path().join("a/x")).unwrap();
        std::fs::create_dir_all(t.path().join("skip/y")).unwrap();
        std::fs::write(t.path().join("a-1"), b"").unwrap();
        let mut r = Record(Vec::new());
        walk(t.path(), &mut r).unwrap();
        assert_eq!(r.0, ["a", "a/x", "<a/x", "<a", "a b", "<a b", "a-1", "skip"]);
    }
}
