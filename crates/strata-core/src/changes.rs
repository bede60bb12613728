//! `docker diff`: what a container's upper dir changed relative to its image layers.
//!
//! Follows moby's `archive.OverlayChanges` (the overlay2 driver's `Changes`), which walks
//! only the upper dir:
//! * a whiteout (char device 0/0) → `D path`;
//! * anything else → `C path` if the path exists in the lower layers, `A path` if not;
//!   a directory present in both with the same size, mode and mtime is not reported
//!   (it was only copied up to hold a changed child);
//! * when an `A` or `D` is recorded, each ancestor directory not yet reported is reported
//!   `C` first (moby PR #13590: the parent of an added/deleted entry must be in the list).
//!
//! * an opaque directory (`trusted.overlay.opaque=y`: deleted and recreated) is reported
//!   `D` if something existed below it (`A` if not), followed by its current contents, each
//!   `A` or `C` by whether that path exists below — exactly moby's `overlayDeletedFile`.
//!
//! One refinement over moby's code, matching what overlayfs shows: the lower lookup is
//! overlay's own: layers are searched top-down and the search stops at a whiteout, at a
//! non-directory parent, and below a lower parent marked opaque (moby `os.Stat`s each
//! layer independently, which also follows symlinks).
//!
//! Output order: by path, component-wise (`/a`, `/a/b`, `/a b`), which is the order of
//! moby's `filepath.Walk` and puts every directory before its contents.
use crate::error::ErrorCode;
use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

impl crate::error::Coded for ChangesError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Io
    }
    fn errno(&self) -> Option<i32> {
        match self {
            ChangesError::Io { source, .. } => source.raw_os_error(),
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            ChangesError::Io { path, .. } => Some(path.display().to_string()),
        }
    }
}

/// Kind of a change, as `docker diff` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// `A`
    Added,
    /// `C`
    Modified,
    /// `D`
    Deleted,
}

impl ChangeKind {
    /// `'A'`, `'C'` or `'D'`.
    pub fn as_char(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path. `path` starts with `/`; non-UTF-8 bytes are replaced (U+FFFD).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

/// `docker diff` output: one `K /path` line per change.
pub fn format_changes(changes: &[Change]) -> String {
    let mut s = String::new();
    for c in changes {
        s.push(c.kind.as_char());
        s.push(' ');
        s.push_str(&c.path);
        s.push('\n');
    }
    s
}

fn io(op: &'static str, path: &Path, e: Errno) -> ChangesError {
    ChangesError::Io { op, path: path.to_path_buf(), source: e.into() }
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn opaque_fd(fd: BorrowedFd<'_>) -> bool {
    let mut v = [0u8; 2];
    crate::layertar::OPAQUE_XATTRS
        .iter()
        .any(|k| matches!(rustix::fs::fgetxattr(fd, *k, &mut v[..]), Ok(1) if v[0] == b'y'))
}

fn opaque_at(layer: &Path, rel: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut b = layer.as_os_str().as_bytes().to_vec();
    b.push(b'/');
    b.extend_from_slice(rel);
    let p = Path::new(std::ffi::OsStr::from_bytes(&b));
    let mut v = [0u8; 2];
    crate::layertar::OPAQUE_XATTRS
        .iter()
        .any(|k| matches!(rustix::fs::lgetxattr(p, *k, &mut v[..]), Ok(1) if v[0] == b'y'))
}

/// What one layer holds at one path.
#[derive(Clone)]
enum Node {
    Missing,
    Whiteout,
    NonDir,
    Dir { opaque: bool },
}

/// Overlay-style lookup in the lower layers, with memoised directory prefixes.
struct Lowers {
    roots: Vec<(PathBuf, OwnedFd)>,
    memo: HashMap<(usize, Vec<u8>), Node>,
}

impl Lowers {
    fn open(lowers: &[PathBuf]) -> Result<Self, ChangesError> {
        let mut roots = Vec::new();
        for l in lowers {
            let fd = openat(rustix::fs::CWD, l, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io("open", l, e))?;
            roots.push((l.clone(), fd));
        }
        Ok(Lowers { roots, memo: HashMap::new() })
    }

    fn stat(&self, layer: usize, rel: &[u8]) -> Result<Option<Stat>, ChangesError> {
        let (path, fd) = &self.roots[layer];
        let c = std::ffi::CString::new(rel).map_err(|_| io("lstat", path, Errno::INVAL))?;
        match statat(fd, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(io("lstat", &path.join(String::from_utf8_lossy(rel).as_ref()), e)),
        }
    }

    /// The node at an intermediate directory prefix of layer `layer` (memoised).
    fn dir_node(&mut self, layer: usize, prefix: &[u8]) -> Result<Node, ChangesError> {
        if let Some(n) = self.memo.get(&(layer, prefix.to_vec())) {
            return Ok(n.clone());
        }
        let n = match self.stat(layer, prefix)? {
            None => Node::Missing,
            Some(st) if is_whiteout(&st) => Node::Whiteout,
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Node::Dir { opaque: opaque_at(&self.roots[layer].0, prefix) }
            }
            Some(_) => Node::NonDir,
        };
        self.memo.insert((layer, prefix.to_vec()), n.clone());
        Ok(n)
    }

    /// What the lower layers show at `rel` (components joined by `/`), as overlayfs would
    /// resolve it: `None` if absent or hidden by a whiteout / non-dir / opaque parent.
    fn lookup(&mut self, rel: &[u8]) -> Result<Option<Stat>, ChangesError> {
        let slashes: Vec<usize> = rel.iter().enumerate().filter(|(_, &b)| b == b'/').map(|(i, _)| i).collect();
        'layers: for layer in 0..self.roots.len() {
            let mut stop_after = false;
            for &s in &slashes {
                match self.dir_node(layer, &rel[..s])? {
                    Node::Missing => continue 'layers,
                    Node::Whiteout | Node::NonDir => return Ok(None),
                    Node::Dir { opaque } => stop_after |= opaque,
                }
            }
            match self.stat(layer, rel)? {
                Some(st) if is_whiteout(&st) => return Ok(None),
                Some(st) => return Ok(Some(st)),
                None if stop_after => return Ok(None),
                None => {}
            }
        }
        Ok(None)
    }
}

/// moby's `sameFsTime`: equal, or the same second with one side lacking nanoseconds
/// (some filesystems and tar round trips drop them).
fn same_time(a: &Stat, b: &Stat) -> bool {
    a.st_mtime == b.st_mtime && (a.st_mtime_nsec == b.st_mtime_nsec || a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0)
}

struct Frame {
    fd: OwnedFd,
    prefix: Vec<u8>,
    names: Vec<Vec<u8>>,
    next: usize,
    /// An opaque directory at or above this one hides the lowers.
    hidden: bool,
}

fn read_names(fd: &OwnedFd, path: &Path) -> Result<Vec<Vec<u8>>, ChangesError> {
    let mut dir = rustix::fs::Dir::read_from(fd).map_err(|e| io("readdir", path, e))?;
    let mut names = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent.map_err(|e| io("readdir", path, e))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Changes of `upper` relative to `lowers` (top first), see the module docs.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ChangesError> {
    let mut low = Lowers::open(lowers)?;
    let root = openat(rustix::fs::CWD, upper, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open", upper, e))?;
    let names = read_names(&root, upper)?;
    let mut stack = vec![Frame { fd: root, prefix: Vec::new(), names, next: 0, hidden: false }];
    let mut out: Vec<(Vec<u8>, ChangeKind)> = Vec::new();
    let mut reported_dirs: HashSet<Vec<u8>> = HashSet::new();

    while let Some(top) = stack.last_mut() {
        if top.next == top.names.len() {
            stack.pop();
            continue;
        }
        let name = std::mem::take(&mut top.names[top.next]);
        top.next += 1;
        let mut rel = top.prefix.clone();
        rel.extend_from_slice(&name);
        let hidden = top.hidden;
        let dirfd = top.fd.as_fd();
        let here = || upper.join(String::from_utf8_lossy(&rel).as_ref());
        let cname = std::ffi::CString::new(name.clone()).map_err(|_| io("lstat", &here(), Errno::INVAL))?;
        let st = statat(dirfd, cname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io("lstat", &here(), e))?;
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;

        let mut child = None;
        let kind = if is_whiteout(&st) {
            Some(ChangeKind::Deleted)
        } else {
            let mut opaque = false;
            if is_dir {
                let fd = openat(
                    dirfd,
                    cname.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io("open", &here(), e))?;
                opaque = opaque_fd(fd.as_fd());
                let path = here();
                let names = read_names(&fd, &path)?;
                let mut prefix = rel.clone();
                prefix.push(b'/');
                child = Some(Frame { fd, prefix, names, next: 0, hidden });
            }
            let below = if hidden { None } else { low.lookup(&rel)? };
            match below {
                None => Some(ChangeKind::Added),
                // moby: an opaque dir that hides something below was deleted and recreated.
                Some(_) if opaque => Some(ChangeKind::Deleted),
                Some(l) => {
                    let l_dir = FileType::from_raw_mode(l.st_mode) == FileType::Directory;
                    let unchanged_dir = is_dir
                        && l_dir
                        && !opaque
                        && st.st_size == l.st_size
                        && st.st_mode == l.st_mode
                        && same_time(&st, &l);
                    if unchanged_dir {
                        None
                    } else {
                        Some(ChangeKind::Modified)
                    }
                }
            }
        };
        if let Some(kind) = kind {
            if is_dir {
                reported_dirs.insert(rel.clone());
            }
            if kind != ChangeKind::Modified {
                // Report every ancestor not yet listed, outermost first.
                let mut missing = Vec::new();
                let mut end = rel.len();
                while let Some(s) = rel[..end].iter().rposition(|&b| b == b'/') {
                    let parent = rel[..s].to_vec();
                    if reported_dirs.contains(&parent) {
                        break;
                    }
                    reported_dirs.insert(parent.clone());
                    missing.push(parent);
                    end = s;
                }
                for p in missing.into_iter().rev() {
                    out.push((p, ChangeKind::Modified));
                }
            }
            out.push((rel, kind));
        }
        if let Some(c) = child {
            stack.push(c);
        }
    }
    // Component-wise order: '/' sorts before every other byte.
    out.sort_by(|a, b| {
        let ka = a.0.iter().map(|&c| if c == b'/' { 0 } else { c as u16 + 1 });
        let kb = b.0.iter().map(|&c| if c == b'/' { 0 } else { c as u16 + 1 });
        ka.cmp(kb)
    });
    Ok(out.into_iter().map(|(p, kind)| Change { kind, path: format!("/{}", String::from_utf8_lossy(&p)) }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_docker_diff() {
        let v = vec![
            Change { kind: ChangeKind::Modified, path: "/etc".into() },
            Change { kind: ChangeKind::Added, path: "/etc/a".into() },
            Change { kind: ChangeKind::Deleted, path: "/etc/b".into() },
        ];
        assert_eq!(format_changes(&v), "C /etc\nA /etc/a\nD /etc/b\n");
    }

    #[test]
    fn no_lowers_means_everything_added() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a b")).unwrap();
        std::fs::create_dir_all(t.path().join("a/x")).unwrap();
        std::fs::write(t.path().join("a-1"), b"").unwrap();
        let got: Vec<String> =
            changes(t.path(), &[]).unwrap().iter().map(|c| format!("{} {}", c.kind.as_char(), c.path)).collect();
        // Component-wise order: "/a/x" before "/a b" and "/a-1".
        assert_eq!(got, ["A /a", "A /a/x", "A /a b", "A /a-1"]);
    }
}
