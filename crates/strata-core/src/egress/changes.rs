//! `docker diff`: what a container's writable layer changed, as the Docker Engine reports it.
//!
//! The engine (overlay2 on a kernel where it does not trust overlay's native diff, which is
//! every kernel with `redirect_dir` support) mounts the container's layer and its parent and
//! compares the two trees (moby `archive.ChangesDirs`). The rules, from what the engine prints:
//! * a path only in the new tree is `A`, and so is everything below it;
//! * a path only in the old tree is `D` (its descendants are not listed);
//! * a path in both is `C` when mode (type and permission bits), owner, group, device number or
//!   the `security.capability` xattr differ, or — for anything whose mode lacks the directory
//!   bit `0o040000` (so not for directories, nor for sockets and block devices, which share the
//!   bit) — size or mtime differ. Content is not compared, nor ctime, inode or link count: a file
//!   copied up only to be hard-linked, or chmodded to the mode it had, is not reported;
//! * a directory with any change below it is `C` itself, so every ancestor of a change is `C`
//!   (the root `/` is never listed);
//! * a directory removed and re-created is `C` (if anything below changed), with `D` for each
//!   child that is gone.
//!
//! Here the same comparison is made without mounting: the old tree is the layers below the
//! writable layer (`lowers`, top first: the init layer, then the image's), the new tree is the
//! writable layer over them. Only paths the writable layer holds can differ between the two,
//! so the walk ([`crate::egress::upperwalk`]) covers the upper dir alone and looks each of its paths up
//! in the lowers as overlayfs would (top-down; a whiteout, a non-directory or an opaque
//! directory ends the search). Below a directory that hides the lowers in the new tree (opaque,
//! or over a lower non-directory), the old tree's children are listed too, to find what is gone.
//!
//! Output order: by path, component-wise (`/a`, `/a/b`, `/a b`): every directory before its
//! contents, as the walk goes. (The engine builds its list from Go maps, so its order varies
//! from call to call; strata's is the sorted one.)
//!
//! It must not walk the tree itself ([`crate::egress::upperwalk`] does) nor change it.
use crate::egress::upperwalk::{self, Descend, Entry, Node, Visitor, WalkError};
use crate::error::ErrorCode;
use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Walk(#[from] WalkError),
}

impl crate::error::Coded for ChangesError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Io
    }
    fn errno(&self) -> Option<i32> {
        match self {
            ChangesError::Io { source, .. } => source.raw_os_error(),
            ChangesError::Walk(w) => w.errno(),
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            ChangesError::Io { path, .. } => Some(path.display().to_string()),
            ChangesError::Walk(w) => w.path(),
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

fn join(root: &Path, rel: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut b = root.as_os_str().as_bytes().to_vec();
    if !rel.is_empty() {
        b.push(b'/');
        b.extend_from_slice(rel);
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&b))
}

const CAPABILITY_XATTR: &str = "security.capability";

/// The `security.capability` xattr of a path (not following symlinks), empty when absent.
fn capability(path: &Path) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    match rustix::fs::lgetxattr(path, CAPABILITY_XATTR, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            buf
        }
        Err(_) => Vec::new(),
    }
}

/// Is the directory at `path` (not followed if a symlink) marked opaque?
fn opaque_at(path: &Path) -> bool {
    let mut v = [0u8; 2];
    upperwalk::OPAQUE_XATTRS
        .iter()
        .any(|k| matches!(rustix::fs::lgetxattr(path, *k, &mut v[..]), Ok(1) if v[0] == b'y'))
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// What one lower layer holds at one directory prefix.
#[derive(Clone, Copy)]
enum Prefix {
    Missing,
    /// A whiteout or a non-directory: the lookup ends here.
    Blocks,
    Dir {
        opaque: bool,
    },
}

/// A path found in the lowers: its `lstat` and the layer it was found in.
#[derive(Clone, Copy)]
struct Found {
    stat: Stat,
    layer: usize,
}

/// The old tree: the lower layers, looked up the way overlayfs does, memoising directory prefixes.
struct Lowers {
    roots: Vec<(PathBuf, OwnedFd)>,
    memo: HashMap<(usize, Vec<u8>), Prefix>,
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
        let c = CString::new(rel).map_err(|_| io("lstat", path, Errno::INVAL))?;
        match statat(fd, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(io("lstat", &join(path, rel), e)),
        }
    }

    fn prefix(&mut self, layer: usize, prefix: &[u8]) -> Result<Prefix, ChangesError> {
        if let Some(n) = self.memo.get(&(layer, prefix.to_vec())) {
            return Ok(*n);
        }
        let n = match self.stat(layer, prefix)? {
            None => Prefix::Missing,
            Some(st) if is_dir(&st) => Prefix::Dir { opaque: opaque_at(&join(&self.roots[layer].0, prefix)) },
            Some(_) => Prefix::Blocks,
        };
        self.memo.insert((layer, prefix.to_vec()), n);
        Ok(n)
    }

    /// What the old tree holds at `rel`: overlayfs' lookup, from the top layer down.
    fn lookup(&mut self, rel: &[u8]) -> Result<Option<Found>, ChangesError> {
        let slashes: Vec<usize> = rel.iter().enumerate().filter(|(_, &b)| b == b'/').map(|(i, _)| i).collect();
        'layers: for layer in 0..self.roots.len() {
            let mut stop_after = false;
            for &s in &slashes {
                match self.prefix(layer, &rel[..s])? {
                    Prefix::Missing => continue 'layers,
                    Prefix::Blocks => return Ok(None),
                    Prefix::Dir { opaque } => stop_after |= opaque,
                }
            }
            match self.stat(layer, rel)? {
                Some(st) if upperwalk::is_whiteout(&st) => return Ok(None),
                Some(st) => return Ok(Some(Found { stat: st, layer })),
                None if stop_after => return Ok(None),
                None => {}
            }
        }
        Ok(None)
    }

    /// The names in the old tree's directory `rel` (which the caller found to be a directory).
    fn children(&mut self, rel: &[u8]) -> Result<Vec<Vec<u8>>, ChangesError> {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut out = Vec::new();
        let slashes: Vec<usize> = rel.iter().enumerate().filter(|(_, &b)| b == b'/').map(|(i, _)| i).collect();
        'layers: for layer in 0..self.roots.len() {
            let mut stop_after = false;
            for &s in &slashes {
                match self.prefix(layer, &rel[..s])? {
                    Prefix::Missing => continue 'layers,
                    Prefix::Blocks => break 'layers,
                    Prefix::Dir { opaque } => stop_after |= opaque,
                }
            }
            match if rel.is_empty() { Prefix::Dir { opaque: false } } else { self.prefix(layer, rel)? } {
                Prefix::Missing if stop_after => break,
                Prefix::Missing => continue,
                Prefix::Blocks => break,
                Prefix::Dir { opaque } => {
                    let dir = join(&self.roots[layer].0, rel);
                    let fd = openat(
                        &self.roots[layer].1,
                        if rel.is_empty() { &b"."[..] } else { rel },
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| io("open", &dir, e))?;
                    for name in upperwalk::read_names(&fd, &dir)? {
                        if !seen.insert(name.clone()) {
                            continue;
                        }
                        let c = CString::new(name.clone()).map_err(|_| io("lstat", &dir, Errno::INVAL))?;
                        let st =
                            statat(&fd, c.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io("lstat", &dir, e))?;
                        if !upperwalk::is_whiteout(&st) {
                            out.push(name);
                        }
                    }
                    if opaque || stop_after {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn capability(&self, f: &Found, rel: &[u8]) -> Vec<u8> {
        capability(&join(&self.roots[f.layer].0, rel))
    }
}

/// moby's `sameFsTimeSpec`: equal, or the same second with one side lacking nanoseconds.
fn same_time(a: &Stat, b: &Stat) -> bool {
    a.st_mtime == b.st_mtime && (a.st_mtime_nsec == b.st_mtime_nsec || a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0)
}

/// moby's `statDifferent` (unix): size and mtime count only where the mode lacks `S_IFDIR`'s bit.
fn stat_different(old: &Stat, new: &Stat) -> bool {
    const DIR_BIT: u32 = 0o040000;
    old.st_mode != new.st_mode
        || old.st_uid != new.st_uid
        || old.st_gid != new.st_gid
        || old.st_rdev != new.st_rdev
        || (old.st_mode & DIR_BIT != DIR_BIT && (!same_time(old, new) || old.st_size != new.st_size))
}

/// A directory of the new tree the walk is inside.
struct Dir {
    rel: Vec<u8>,
    /// Where its own line goes if something below changes and it is not listed yet.
    slot: usize,
    /// Listed already (`A` or `C`).
    listed: bool,
    /// The old tree has no directory here: everything below is `A`.
    added: bool,
    /// The new tree's directory hides the lowers (opaque, under an opaque one, or over a lower
    /// non-directory): the old tree's children that the upper does not hold are gone.
    hides: bool,
    /// Names the upper holds here, whiteouts left out (to find the old children that are gone).
    upper_names: Vec<Vec<u8>>,
}

struct Differ {
    upper: PathBuf,
    low: Lowers,
    /// `None` slots are reserved for directories that turned out unchanged.
    out: Vec<Option<(Vec<u8>, ChangeKind)>>,
    dirs: Vec<Dir>,
}

impl Differ {
    fn emit(&mut self, rel: Vec<u8>, kind: ChangeKind) {
        self.out.push(Some((rel, kind)));
    }
}

impl Visitor for Differ {
    type Error = ChangesError;

    fn entry(&mut self, e: &Entry<'_>) -> Result<Descend, ChangesError> {
        let (parent_added, parent_hides) =
            self.dirs.last().map_or((self.low.roots.is_empty(), false), |d| (d.added, d.hides));
        if e.node != Node::Whiteout {
            if let Some(p) = self.dirs.last_mut() {
                p.upper_names.push(e.name.to_vec());
            }
        }
        let old = if parent_added { None } else { self.low.lookup(e.rel)? };
        if e.node == Node::Whiteout {
            // A whiteout over nothing (the lowers lack the name) changes nothing.
            if old.is_some() && !parent_hides {
                self.emit(e.rel.to_vec(), ChangeKind::Deleted);
            }
            return Ok(Descend::No);
        }
        let kind = match &old {
            None => Some(ChangeKind::Added),
            Some(f) => {
                let differs = stat_different(&f.stat, e.stat)
                    || self.low.capability(f, e.rel) != capability(&join(&self.upper, e.rel));
                differs.then_some(ChangeKind::Modified)
            }
        };
        if let Some(k) = kind {
            self.emit(e.rel.to_vec(), k);
        }
        let Node::Dir { opaque } = e.node else { return Ok(Descend::No) };
        let old_dir = old.as_ref().is_some_and(|f| is_dir(&f.stat));
        self.out.push(None);
        self.dirs.push(Dir {
            rel: e.rel.to_vec(),
            slot: self.out.len() - 1,
            listed: kind.is_some(),
            added: old.is_none(),
            hides: old_dir && (opaque || parent_hides),
            upper_names: Vec::new(),
        });
        Ok(Descend::Yes)
    }

    fn leave(&mut self, _rel: &[u8]) -> Result<(), ChangesError> {
        let d = self.dirs.pop().expect("entered");
        if d.hides {
            let have: HashSet<&[u8]> = d.upper_names.iter().map(Vec::as_slice).collect();
            for name in self.low.children(&d.rel)? {
                if !have.contains(name.as_slice()) {
                    let mut rel = d.rel.clone();
                    rel.push(b'/');
                    rel.extend_from_slice(&name);
                    self.out.push(Some((rel, ChangeKind::Deleted)));
                }
            }
        }
        let changed_below = self.out[d.slot + 1..].iter().any(Option::is_some);
        if changed_below && !d.listed {
            self.out[d.slot] = Some((d.rel, ChangeKind::Modified));
        }
        Ok(())
    }
}

/// Changes of `upper` over `lowers` (top first) relative to `lowers` alone, see the module docs.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, ChangesError> {
    let mut d = Differ { upper: upper.to_path_buf(), low: Lowers::open(lowers)?, out: Vec::new(), dirs: Vec::new() };
    upperwalk::walk(upper, &mut d)?;
    let mut out: Vec<(Vec<u8>, ChangeKind)> = d.out.into_iter().flatten().collect();
    // Component-wise order ('/' before every other byte); the gone children of a hiding dir
    // were appended after the walk of its upper names.
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

    fn lines(upper: &Path, lowers: &[PathBuf]) -> Vec<String> {
        changes(upper, lowers).unwrap().iter().map(|c| format!("{} {}", c.kind.as_char(), c.path)).collect()
    }

    /// A lower file copied to the upper with its mode, owner, size and mtime.
    fn copy_up(lower: &Path, upper: &Path, rel: &str) {
        let (from, to) = (lower.join(rel), upper.join(rel));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
        let m = std::fs::metadata(&from).unwrap();
        let f = std::fs::File::options().write(true).open(&to).unwrap();
        f.set_modified(m.modified().unwrap()).unwrap();
    }

    #[test]
    fn a_copy_up_that_changes_nothing_is_not_reported_and_every_ancestor_of_a_change_is() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lower.path().join("a/b/c")).unwrap();
        std::fs::write(lower.path().join("a/b/c/same"), b"same").unwrap();
        std::fs::write(lower.path().join("a/b/c/grown"), b"x").unwrap();
        copy_up(lower.path(), upper.path(), "a/b/c/same");
        assert_eq!(lines(upper.path(), &[lower.path().to_path_buf()]), Vec::<String>::new());
        std::fs::write(upper.path().join("a/b/c/grown"), b"xx").unwrap();
        assert_eq!(
            lines(upper.path(), &[lower.path().to_path_buf()]),
            ["C /a", "C /a/b", "C /a/b/c", "C /a/b/c/grown"]
        );
    }

    #[test]
    fn a_directory_removed_and_made_again_is_changed_with_its_old_children_deleted() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lower.path().join("d/sub")).unwrap();
        std::fs::write(lower.path().join("d/sub/deep"), b"").unwrap();
        std::fs::write(lower.path().join("d/old"), b"").unwrap();
        std::fs::write(lower.path().join("d/kept"), b"k").unwrap();
        std::fs::create_dir(upper.path().join("d")).unwrap();
        rustix::fs::setxattr(upper.path().join("d"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())
            .unwrap();
        std::fs::write(upper.path().join("d/kept"), b"new").unwrap();
        std::fs::write(upper.path().join("d/added"), b"").unwrap();
        assert_eq!(
            lines(upper.path(), &[lower.path().to_path_buf()]),
            ["C /d", "A /d/added", "C /d/kept", "D /d/old", "D /d/sub"]
        );
    }
}
