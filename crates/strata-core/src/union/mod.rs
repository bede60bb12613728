//! Userspace union view over overlay-format layers, with overlayfs-identical copy-up.
//!
//! A [`UnionView`] stacks layer `diff/` directories (top first) and an optional writable
//! upper directory, and answers `stat`/`readdir`/`read`/writes the way kernel overlayfs does
//! with `redirect_dir=off,index=off,metacopy=off,xino=off` — without mounting anything.
//!
//! On-disk format (the overlay format, shared with the kernel and with `diff/` dirs):
//! - whiteout: a character device 0/0 (mode `S_IFCHR|0000`) hides the name in lower layers;
//! - opaque directory: xattr `trusted.overlay.opaque=y` hides everything below it;
//! - everything else is a plain file, directory, symlink or special file.
//!
//! Lookup follows `ovl_lookup`: from the top layer down, stop at a whiteout, at a non-directory,
//! or after an opaque directory; a directory found in several layers is *merged*. The view keeps
//! a dentry-like cache of lookups (path → layers holding it), as the kernel's dcache does;
//! mutations through the view invalidate what they change. Like the kernel, the view assumes
//! nobody else changes the layers while it is in use (lowers are immutable by design; the
//! upper belongs to whoever holds the container).
//!
//! Paths given to the view are resolved inside the view like a chroot: `..` stops at the root,
//! absolute symlink targets restart at the view's root, and no lookup ever leaves a layer
//! (all opens use `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`).
//!
//! Writes are in [`ops`]: they reproduce, byte for byte and xattr for xattr, what overlayfs
//! leaves in the upper dir (kernel-internal `trusted.overlay.origin`/`impure`/`uuid` aside).
use crate::error::ErrorCode;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, OFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

pub mod inspect;
mod ops;
pub(crate) mod sys;
#[cfg(test)]
mod tests;

pub use ops::CreateKind;

/// xattr marking an opaque directory (overlay format).
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Prefix of overlayfs' private xattrs, never copied up (as `ovl_copy_xattr` skips them).
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// Symlink hops before ELOOP, as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;
/// Lookup cache entries before the cache is simply dropped.
const CACHE_MAX: usize = 1 << 20;

/// Errors of the union view: always an errno, with the operation and view path.
#[derive(Debug, thiserror::Error)]
pub enum UnionError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("open union view: {0}")]
    Open(String, #[source] io::Error),
}

impl UnionError {
    pub(crate) fn at(op: &'static str, path: &str, errno: i32) -> Self {
        UnionError::Io { op, path: path.to_string(), source: io::Error::from_raw_os_error(errno) }
    }
    pub(crate) fn io(op: &'static str, path: &str, source: io::Error) -> Self {
        UnionError::Io { op, path: path.to_string(), source }
    }
    /// The errno behind this error.
    pub fn raw_errno(&self) -> i32 {
        match self {
            UnionError::Io { source, .. } | UnionError::Open(_, source) => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

impl crate::error::Coded for UnionError {
    /// `Io`, with the errno: the TS view names its errors after the errno (`ENOENT`, ...), as `fs` does.
    fn code(&self) -> ErrorCode {
        ErrorCode::Io
    }
    fn errno(&self) -> Option<i32> {
        Some(self.raw_errno())
    }
    fn path(&self) -> Option<String> {
        match self {
            UnionError::Io { path, .. } => Some(path.clone()),
            UnionError::Open(p, _) => Some(p.clone()),
        }
    }
}

pub type Result<T> = std::result::Result<T, UnionError>;

/// What a lookup found: the type of the topmost hit and the layers holding it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// `st_mode & S_IFMT` of the topmost hit.
    pub fmt: u32,
    /// Non-directory: the single layer it comes from. Directory: every layer where it is a
    /// directory, top first, down to the first opaque one (the kernel's lower stack).
    pub layers: Vec<u16>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.fmt == libc::S_IFDIR
    }
    pub fn top(&self) -> usize {
        self.layers[0] as usize
    }
}

/// A resolved view path: canonical components (no symlinks, no `..`), its parent directory
/// entry, and the entry itself if the name exists.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub canon: Vec<String>,
    pub parent: Arc<Entry>,
    pub entry: Option<Arc<Entry>>,
}

impl Resolved {
    pub fn rel(&self) -> String {
        rel_of(&self.canon)
    }
    pub fn parent_rel(&self) -> String {
        rel_of(&self.canon[..self.canon.len().saturating_sub(1)])
    }
    pub fn name(&self) -> &str {
        self.canon.last().map(String::as_str).unwrap_or(".")
    }
}

pub(crate) fn rel_of(c: &[String]) -> String {
    if c.is_empty() {
        ".".to_string()
    } else {
        c.join("/")
    }
}

/// File metadata as the merged view reports it (from the topmost layer holding the name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 1 for merged directories, as overlayfs reports them.
    pub nlink: u64,
    pub ino: u64,
    pub dev: u64,
    pub rdev: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime_ns: i128,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    /// Index of the layer the metadata comes from (0 = top of the stack, the upper if any).
    pub layer: u32,
}

impl Stat {
    fn from_raw(st: &sys::Stat, merged: bool, layer: usize) -> Self {
        let ns = |s: i64, n: u64| s as i128 * 1_000_000_000 + n as i128;
        Stat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            nlink: if merged { 1 } else { st.st_nlink },
            ino: st.st_ino,
            dev: st.st_dev,
            rdev: st.st_rdev,
            blksize: st.st_blksize as u64,
            blocks: st.st_blocks as u64,
            atime_ns: ns(st.st_atime, st.st_atime_nsec),
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
            layer: layer as u32,
        }
    }
}

/// File type of a directory entry, as Node's `Dirent` distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl FileKind {
    fn from_type(t: FileType) -> Self {
        match t {
            FileType::RegularFile => FileKind::File,
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            FileType::Unknown => FileKind::Unknown,
        }
    }
    /// Lower-case name (`file`, `dir`, ...), used by the binding.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "char",
            FileKind::BlockDevice => "block",
            FileKind::Unknown => "unknown",
        }
    }
}

/// One entry of a merged directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: FileKind,
}

/// A union view over `lowers` (top first) and an optional writable `upper`.
pub struct UnionView {
    /// Layer roots, top first; `layers[0]` is the upper when `has_upper`.
    pub(crate) layers: Vec<OwnedFd>,
    pub(crate) has_upper: bool,
    /// Overlay workdir of the container, if known.
    pub(crate) work: Option<PathBuf>,
    cache: Mutex<HashMap<String, Option<Arc<Entry>>>>,
    root: Arc<Entry>,
    /// Mutations take it exclusively; lookups and reads share it.
    pub(crate) op_lock: RwLock<()>,
    pub(crate) tmp_seq: AtomicU64,
    /// `<work>/work`, holding the shared whiteout inode (see `ops::whiteout_at`).
    pub(crate) whiteout_dir: std::sync::OnceLock<Option<OwnedFd>>,
}

impl UnionView {
    /// Opens a view. `lowers` are layer directories, top first; `upper` makes the view writable.
    pub fn open(lowers: &[PathBuf], upper: Option<&Path>, work: Option<&Path>) -> Result<Self> {
        let mut layers = Vec::new();
        let open = |p: &Path| sys::open_dir_path(p).map_err(|e| UnionError::Open(p.display().to_string(), e));
        if let Some(u) = upper {
            layers.push(open(u)?);
        }
        for l in lowers {
            layers.push(open(l)?);
        }
        if layers.is_empty() {
            return Err(UnionError::Open("(no layers)".into(), io::Error::from_raw_os_error(libc::EINVAL)));
        }
        if layers.len() > u16::MAX as usize {
            return Err(UnionError::Open("(too many layers)".into(), io::Error::from_raw_os_error(libc::EINVAL)));
        }
        let root = Arc::new(Entry { fmt: libc::S_IFDIR, layers: (0..layers.len() as u16).collect() });
        Ok(UnionView {
            layers,
            has_upper: upper.is_some(),
            work: work.map(Path::to_path_buf),
            cache: Mutex::new(HashMap::new()),
            root,
            op_lock: RwLock::new(()),
            tmp_seq: AtomicU64::new(0),
            whiteout_dir: std::sync::OnceLock::new(),
        })
    }

    /// Whether writes are possible (an upper dir was given).
    pub fn writable(&self) -> bool {
        self.has_upper
    }

    /// The overlay workdir this view was opened with (the kernel's, for a later mount).
    /// Staging happens next to the target instead, so a view works on a store that has
    /// never been mounted; the kernel cleans nothing of ours because nothing is left.
    pub fn workdir(&self) -> Option<&Path> {
        self.work.as_deref()
    }

    /// Number of layers including the upper.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    pub(crate) fn fd(&self, layer: usize) -> BorrowedFd<'_> {
        self.layers[layer].as_fd()
    }

    /// Forgets every cached lookup (after layers were changed behind the view's back).
    pub fn invalidate(&self) {
        self.cache.lock().expect("cache lock").clear();
    }

    /// Drops the cached lookups of `canon` and its ancestors (their layer stacks may change
    /// when a copy-up creates them in the upper), and optionally of everything below it.
    pub(crate) fn forget(&self, canon: &[String], subtree: bool) {
        let mut c = self.cache.lock().expect("cache lock");
        if subtree {
            c.clear();
            return;
        }
        for i in 1..=canon.len() {
            c.remove(&canon[..i].join("/"));
        }
    }

    /// `ovl_lookup` of `name` in directory `parent` (at canonical `parent_rel`).
    fn lookup_child(&self, parent: &Entry, parent_rel: &str, name: &str, key: &str) -> Result<Option<Arc<Entry>>> {
        if let Some(hit) = self.cache.lock().expect("cache lock").get(key) {
            return Ok(hit.clone());
        }
        let rel = if parent_rel == "." { name.to_string() } else { format!("{parent_rel}/{name}") };
        let mut found: Option<Entry> = None;
        for &l in &parent.layers {
            let st = match sys::lstat_beneath(self.fd(l as usize), &rel) {
                Ok(st) => st,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG)
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(UnionError::io("lookup", &rel, e)),
            };
            if sys::is_whiteout(&st) {
                break;
            }
            let fmt = st.st_mode & libc::S_IFMT;
            match &mut found {
                None => {
                    found = Some(Entry { fmt, layers: vec![l] });
                    if fmt != libc::S_IFDIR {
                        break;
                    }
                }
                Some(f) => {
                    // A non-directory below a directory ends the merge (ovl_lookup_single).
                    if fmt != libc::S_IFDIR {
                        break;
                    }
                    f.layers.push(l);
                }
            }
            if self.is_opaque(l as usize, &rel)? {
                break;
            }
        }
        let hit = found.map(Arc::new);
        let mut c = self.cache.lock().expect("cache lock");
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(key.to_string(), hit.clone());
        Ok(hit)
    }

    pub(crate) fn is_opaque(&self, layer: usize, rel: &str) -> Result<bool> {
        let fd = match sys::open_dir(self.fd(layer), rel) {
            Ok(fd) => fd,
            Err(e) => return Err(UnionError::io("lookup", rel, e)),
        };
        match sys::fgetxattr(fd.as_fd(), OPAQUE_XATTR) {
            Ok(v) => Ok(v.as_deref() == Some(b"y")),
            Err(e) => Err(UnionError::io("lookup", rel, e)),
        }
    }

    /// Resolves a view path. Intermediate symlinks are always followed, the last one only
    /// with `follow`; a missing last component gives `entry: None` (its parent exists).
    pub(crate) fn resolve(&self, op: &'static str, path: &str, follow: bool) -> Result<Resolved> {
        let mut todo: Vec<String> = Vec::new(); // reversed: pop() gives the next component
        push_components(&mut todo, path);
        let mut canon: Vec<String> = Vec::new();
        let mut entries: Vec<Arc<Entry>> = vec![self.root.clone()];
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                if !entries.last().expect("root").is_dir() {
                    return Err(UnionError::at(op, path, libc::ENOTDIR));
                }
                if !canon.is_empty() {
                    canon.pop();
                    entries.pop();
                }
                continue;
            }
            let parent = entries.last().expect("root").clone();
            if !parent.is_dir() {
                return Err(UnionError::at(op, path, libc::ENOTDIR));
            }
            let parent_rel = rel_of(&canon);
            canon.push(c);
            let key = canon.join("/");
            let child = self.lookup_child(&parent, &parent_rel, canon.last().expect("pushed"), &key)?;
            let last = todo.is_empty();
            match child {
                None => {
                    if !last {
                        return Err(UnionError::at(op, path, libc::ENOENT));
                    }
                    return Ok(Resolved { canon, parent, entry: None });
                }
                Some(e) if e.fmt == libc::S_IFLNK && (!last || follow) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(UnionError::at(op, path, libc::ELOOP));
                    }
                    let target = self.readlink_entry(&e, &key).map_err(|e| UnionError::io(op, path, e))?;
                    canon.pop();
                    if target.starts_with('/') {
                        canon.clear();
                        entries.truncate(1);
                    }
                    push_components(&mut todo, &target);
                    if todo.is_empty() && target.starts_with('/') {
                        // The link points at the root itself.
                        return Ok(Resolved { canon, parent: self.root.clone(), entry: Some(self.root.clone()) });
                    }
                }
                Some(e) => {
                    if last {
                        return Ok(Resolved { canon, parent, entry: Some(e) });
                    }
                    entries.push(e);
                }
            }
        }
        // Path resolved to a directory reached through `..`/`.` or the root.
        let entry = entries.last().expect("root").clone();
        let parent = if entries.len() >= 2 { entries[entries.len() - 2].clone() } else { self.root.clone() };
        Ok(Resolved { canon, parent, entry: Some(entry) })
    }

    fn readlink_entry(&self, e: &Entry, rel: &str) -> io::Result<String> {
        let (dir, name) = split_rel(rel);
        let dfd = sys::open_dir(self.fd(e.top()), dir)?;
        sys::readlinkat(dfd.as_fd(), name)
    }

    pub(crate) fn stat_entry(&self, e: &Entry, rel: &str) -> io::Result<Stat> {
        let st = sys::lstat_beneath(self.fd(e.top()), rel)?;
        Ok(Stat::from_raw(&st, e.is_dir() && e.layers.len() > 1, e.top()))
    }

    fn read_guard(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.op_lock.read().unwrap_or_else(|p| p.into_inner())
    }

    /// `stat(2)`: follows a final symlink.
    pub fn stat(&self, path: &str) -> Result<Stat> {
        let _g = self.read_guard();
        self.stat_inner("stat", path, true)
    }

    /// `lstat(2)`: reports a final symlink itself.
    pub fn lstat(&self, path: &str) -> Result<Stat> {
        let _g = self.read_guard();
        self.stat_inner("lstat", path, false)
    }

    fn stat_inner(&self, op: &'static str, path: &str, follow: bool) -> Result<Stat> {
        let r = self.resolve(op, path, follow)?;
        let e = r.entry.as_ref().ok_or_else(|| UnionError::at(op, path, libc::ENOENT))?;
        self.stat_entry(e, &r.rel()).map_err(|err| UnionError::io(op, path, err))
    }

    /// `readlink(2)`.
    pub fn readlink(&self, path: &str) -> Result<String> {
        let _g = self.read_guard();
        let r = self.resolve("readlink", path, false)?;
        let e = r.entry.as_ref().ok_or_else(|| UnionError::at("readlink", path, libc::ENOENT))?;
        if e.fmt != libc::S_IFLNK {
            return Err(UnionError::at("readlink", path, libc::EINVAL));
        }
        self.readlink_entry(e, &r.rel()).map_err(|err| UnionError::io("readlink", path, err))
    }

    /// Merged directory listing, sorted by name: whited-out names hidden, stops at opaque dirs.
    pub fn readdir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let _g = self.read_guard();
        let r = self.resolve("readdir", path, true)?;
        let e = r.entry.as_ref().ok_or_else(|| UnionError::at("readdir", path, libc::ENOENT))?;
        if !e.is_dir() {
            return Err(UnionError::at("readdir", path, libc::ENOTDIR));
        }
        // Kernel quirk reproduced: a directory that lives in a single layer is not "merged" and
        // overlayfs lists it with the real fs's readdir, so whiteouts inside it show up as
        // character devices (which `stat` then reports as ENOENT). Merged directories filter them.
        self.list_entries(e, &r.rel(), e.layers.len() == 1).map_err(|err| UnionError::io("readdir", path, err))
    }

    /// Merged listing without whiteouts (what rmdir's emptiness check and `rm -r` need).
    pub(crate) fn merged_entries(&self, e: &Entry, rel: &str) -> io::Result<Vec<DirEntry>> {
        self.list_entries(e, rel, false)
    }

    /// The merge itself (ovl_dir_read_merged): topmost entry wins, whiteouts hide lower names.
    fn list_entries(&self, e: &Entry, rel: &str, show_whiteouts: bool) -> io::Result<Vec<DirEntry>> {
        let mut seen: HashMap<String, Option<FileType>> = HashMap::new();
        for &l in &e.layers {
            let dfd = sys::open_dir(self.fd(l as usize), rel)?;
            let ents = sys::read_dir(dfd.as_fd())?;
            seen.reserve(ents.len());
            for (name, mut ty) in ents {
                if seen.contains_key(&name) {
                    continue;
                }
                if ty == FileType::CharacterDevice || ty == FileType::Unknown {
                    let st = sys::lstat_at(dfd.as_fd(), &name)?;
                    if sys::is_whiteout(&st) && !show_whiteouts {
                        seen.insert(name, None);
                        continue;
                    }
                    ty = sys::file_type(&st);
                }
                seen.insert(name, Some(ty));
            }
        }
        let mut out: Vec<DirEntry> = seen
            .into_iter()
            .filter_map(|(name, t)| t.map(|t| DirEntry { name, kind: FileKind::from_type(t) }))
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Opens a file for reading straight from the layer that holds it (follows symlinks).
    pub fn open_read(&self, path: &str) -> Result<OwnedFd> {
        let _g = self.read_guard();
        let r = self.resolve("open", path, true)?;
        let e = r.entry.as_ref().ok_or_else(|| UnionError::at("open", path, libc::ENOENT))?;
        if e.is_dir() {
            return Err(UnionError::at("open", path, libc::EISDIR));
        }
        sys::open_beneath(self.fd(e.top()), &r.rel(), OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK, 0)
            .map_err(|err| UnionError::io("open", path, err))
    }

    /// Reads a whole file.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let fd = self.open_read(path)?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| UnionError::io("read", path, e))?;
        let mut buf = Vec::with_capacity(st.st_size as usize + 1);
        let mut f = std::fs::File::from(fd);
        io::Read::read_to_end(&mut f, &mut buf).map_err(|e| UnionError::io("read", path, e))?;
        Ok(buf)
    }

    /// Lists xattrs of a path (no follow) with values.
    pub fn xattrs(&self, path: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let _g = self.read_guard();
        let r = self.resolve("listxattr", path, false)?;
        let e = r.entry.as_ref().ok_or_else(|| UnionError::at("listxattr", path, libc::ENOENT))?;
        let io = |err| UnionError::io("listxattr", path, err);
        let (dir, name) = split_rel_owned(&r.rel());
        let dfd = sys::open_dir(self.fd(e.top()), &dir).map_err(io)?;
        let p = sys::proc_path(dfd.as_fd(), &name);
        let mut out = Vec::new();
        for n in sys::llistxattr(&p).map_err(io)? {
            if let Some(v) = sys::lgetxattr(&p, &n).map_err(io)? {
                out.push((n.to_string_lossy().into_owned(), v));
            }
        }
        Ok(out)
    }
}

fn push_components(todo: &mut Vec<String>, path: &str) {
    for c in path.split('/').rev() {
        if c.is_empty() || c == "." {
            continue;
        }
        todo.push(c.to_string());
    }
}

/// `a/b/c` → (`a/b`, `c`); `c` → (`.`, `c`).
pub(crate) fn split_rel(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (".", rel),
    }
}

fn split_rel_owned(rel: &str) -> (String, String) {
    let (a, b) = split_rel(rel);
    (a.to_string(), b.to_string())
}
