//! Writes through the union view, with copy-up into the upper dir exactly as overlayfs does it
//! (`redirect_dir=off,index=off,metacopy=off`):
//!
//! - copy-up (`ovl_copy_up_one`): a regular file is built as an `O_TMPFILE` in the upper parent
//!   (data by FICLONE or `copy_file_range`, fsync, owner, xattrs minus `trusted.overlay.*`,
//!   mode, atime/mtime) and published with one `linkat`; directories, symlinks and special
//!   files are built under a temporary name and renamed into place. The parent's timestamps
//!   are restored afterwards (the kernel restores them too, so a copy-up is not a visible
//!   change of the parent). Parents first.
//! - removal (`ovl_do_remove`): a name that is still visible in a lower layer of the parent
//!   ("lower positive") is replaced by a whiteout; otherwise the upper entry is just removed.
//! - creation over an upper whiteout (`ovl_create_over_whiteout`): the new object replaces the
//!   whiteout; a new directory there is made opaque.
//! - rename (`ovl_rename`): directories that exist in a lower layer fail with EXDEV (no
//!   redirect_dir); files are copied up first; a lower-positive source leaves a whiteout; a
//!   pure-upper directory moved into a merged directory is made opaque.
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::RwLockWriteGuard;

use rustix::fs::{FileType, OFlags, RenameFlags, Timestamps};

use super::sys;
use super::{rel_of, Entry, Resolved, Result, UnionError, UnionView, OPAQUE_XATTR, OVERLAY_XATTR_PREFIX};

/// What [`UnionView::create`] makes.
#[derive(Debug, Clone)]
pub enum CreateKind {
    Dir {
        mode: u32,
    },
    Symlink {
        target: String,
    },
    Fifo {
        mode: u32,
    },
    /// A character (`block: false`) or block device `major:minor`.
    Device {
        mode: u32,
        block: bool,
        major: u32,
        minor: u32,
    },
}

const UPPER: usize = 0;
/// Name of the shared whiteout inode in `<work>/work`.
const SHARED_WHITEOUT: &str = "strata-whiteout";

impl UnionView {
    fn write_guard(&self, op: &'static str, path: &str) -> Result<RwLockWriteGuard<'_, ()>> {
        if !self.has_upper {
            return Err(UnionError::at(op, path, libc::EROFS));
        }
        Ok(self.op_lock.write().unwrap_or_else(|p| p.into_inner()))
    }

    fn tmp_name(&self) -> String {
        format!(".strata-tmp-{}-{}", std::process::id(), self.tmp_seq.fetch_add(1, Ordering::Relaxed))
    }

    fn upper_dir(&self, rel: &str) -> std::io::Result<OwnedFd> {
        sys::open_dir(self.fd(UPPER), rel)
    }

    /// Makes sure every component of `canon` exists in the upper dir, copying up as needed.
    pub(crate) fn copy_up(&self, op: &'static str, path: &str, canon: &[String]) -> Result<()> {
        let mut parent = self.resolve(op, "/", false)?.entry.expect("root");
        for i in 1..=canon.len() {
            let prefix = &canon[..i];
            let key = prefix.join("/");
            let prel = rel_of(&canon[..i - 1]);
            let e = self
                .lookup_child(&parent, &prel, &canon[i - 1], &key)?
                .ok_or_else(|| UnionError::at(op, path, libc::ENOENT))?;
            let e = if e.top() != UPPER {
                self.copy_up_one(prefix, &e).map_err(|err| UnionError::io(op, path, err))?;
                self.forget(prefix, false);
                self.lookup_child(&parent, &prel, &canon[i - 1], &key)?
                    .ok_or_else(|| UnionError::at(op, path, libc::ENOENT))?
            } else {
                e
            };
            parent = e;
        }
        Ok(())
    }

    /// `ovl_copy_up_one` for one object whose parent is already in the upper dir.
    fn copy_up_one(&self, canon: &[String], e: &Entry) -> std::io::Result<()> {
        let prel = rel_of(&canon[..canon.len() - 1]);
        let name = canon.last().expect("non-root").as_str();
        let up = self.upper_dir(&prel)?;
        let upfd = up.as_fd();
        let pst = sys::fstat(upfd)?;
        let lo = sys::open_dir(self.fd(e.top()), &prel)?;
        let lofd = lo.as_fd();
        let st = sys::lstat_at(lofd, name)?;
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFREG {
            match self.copy_up_file_tmpfile(lofd, name, upfd, &st) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR)) => {}
                r => {
                    let _ = sys::futimens(upfd, &sys::times_of(&pst));
                    return r;
                }
            }
        }
        let tmp = self.tmp_name();
        let build = || -> std::io::Result<()> {
            match fmt {
                libc::S_IFDIR => sys::mkdirat(upfd, &tmp, 0o700)?,
                libc::S_IFREG => {
                    let src = sys::open_beneath(lofd, name, OFlags::RDONLY | OFlags::NOFOLLOW, 0)?;
                    let dst = sys::open_beneath(
                        upfd,
                        &tmp,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                        0o600,
                    )?;
                    sys::copy_data(src.as_fd(), dst.as_fd(), st.st_size as u64)?;
                    // overlayfs fsyncs copied-up data before renaming it into place (unless
                    // mounted `volatile`), so a crash never leaves a short file in the upper.
                    sys::fsync(dst.as_fd())?;
                }
                libc::S_IFLNK => sys::symlinkat(&sys::readlinkat(lofd, name)?, upfd, &tmp)?,
                _ => sys::mknodat(upfd, &tmp, st.st_mode, st.st_rdev)?,
            }
            // Owner before mode: chown(2) clears set-id bits, the mode set afterwards keeps them.
            sys::fchownat(upfd, &tmp, st.st_uid, st.st_gid)?;
            copy_xattrs(lofd, name, upfd, &tmp)?;
            if fmt != libc::S_IFLNK {
                sys::fchmodat(upfd, &tmp, st.st_mode & 0o7777)?;
            }
            sys::utimensat(upfd, &tmp, &sys::times_of(&st))?;
            sys::renameat2(upfd, &tmp, upfd, name, RenameFlags::NOREPLACE)
        };
        let res = build();
        if res.is_err() {
            let _ = sys::unlinkat(upfd, &tmp, fmt == libc::S_IFDIR);
        }
        // The kernel restores the parent's times after a copy-up (best effort), so do we.
        let _ = sys::futimens(upfd, &sys::times_of(&pst));
        res
    }

    /// Regular-file copy-up through an `O_TMPFILE` in the upper parent, as overlayfs does
    /// (`ovl_copy_up_tmpfile`): data, fsync, owner, xattrs, mode, times on the anonymous inode,
    /// then one `linkat` publishes it. The fsync of an unlinked inode does not drag the parent
    /// directory into the journal commit, and a crash leaves nothing behind.
    fn copy_up_file_tmpfile(
        &self,
        lofd: BorrowedFd<'_>,
        name: &str,
        upfd: BorrowedFd<'_>,
        st: &sys::Stat,
    ) -> std::io::Result<()> {
        let src = sys::open_beneath(lofd, name, OFlags::RDONLY | OFlags::NOFOLLOW, 0)?;
        let dst = sys::open_beneath(upfd, ".", OFlags::WRONLY | OFlags::TMPFILE, 0o600)?;
        let d = dst.as_fd();
        sys::copy_data(src.as_fd(), d, st.st_size as u64)?;
        // overlayfs fsyncs copied-up data (unless mounted `volatile`): no short file after a crash.
        sys::fsync(d)?;
        // Owner before mode: chown(2) clears set-id bits, the mode set afterwards keeps them.
        sys::fchown(d, st.st_uid, st.st_gid)?;
        copy_xattrs_to(lofd, name, &sys::fd_path(d))?;
        sys::fchmod(d, st.st_mode & 0o7777)?;
        sys::futimens(d, &sys::times_of(st))?;
        sys::link_fd(d, upfd, name)
    }

    /// Creates a whiteout at `name`. Like overlayfs (`ovl_whiteout`), whiteouts are hard links
    /// of one shared whiteout inode kept in the workdir when there is one: a link is ~30× cheaper
    /// than allocating an inode on ext4. Falls back to `mknod` (no workdir, EMLINK, EXDEV).
    fn whiteout_at(&self, dirfd: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
        if let Some(w) = self.shared_whiteout() {
            if sys::linkat(w.as_fd(), SHARED_WHITEOUT, dirfd, name).is_ok() {
                return Ok(());
            }
        }
        sys::mknodat(dirfd, name, libc::S_IFCHR, 0)
    }

    /// The `<work>/work` dir holding the shared whiteout, created on first use.
    fn shared_whiteout(&self) -> Option<&OwnedFd> {
        self.whiteout_dir
            .get_or_init(|| {
                let wfd = sys::open_dir_path(self.work.as_ref()?).ok()?;
                let _ = sys::mkdirat(wfd.as_fd(), "work", 0o700);
                let dir = sys::open_dir(wfd.as_fd(), "work").ok()?;
                match sys::lstat_at(dir.as_fd(), SHARED_WHITEOUT) {
                    Ok(st) if sys::is_whiteout(&st) => {}
                    Ok(_) => return None,
                    Err(_) => sys::mknodat(dir.as_fd(), SHARED_WHITEOUT, libc::S_IFCHR, 0).ok()?,
                }
                // Same filesystem as the upper, or links cannot work.
                let a = sys::fstat(dir.as_fd()).ok()?;
                let b = sys::fstat(self.fd(UPPER)).ok()?;
                (a.st_dev == b.st_dev).then_some(dir)
            })
            .as_ref()
    }

    /// `ovl_lower_positive`: is `name` visible in the lower layers of its parent directory?
    fn lower_positive(&self, parent: &Entry, prel: &str, name: &str) -> std::io::Result<bool> {
        let rel = if prel == "." { name.to_string() } else { format!("{prel}/{name}") };
        for &l in &parent.layers {
            if l as usize == UPPER {
                continue;
            }
            match sys::lstat_beneath(self.fd(l as usize), &rel) {
                Ok(st) => return Ok(!sys::is_whiteout(&st)),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENAMETOOLONG)
                    ) => {}
                Err(_) => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Creates an object at a missing name: replaces an upper whiteout if there is one (a
    /// directory created there is opaque), otherwise creates it directly.
    fn create_at(
        &self,
        op: &'static str,
        path: &str,
        r: &Resolved,
        is_dir: bool,
        make: &mut dyn FnMut(BorrowedFd<'_>, &str) -> std::io::Result<()>,
    ) -> Result<()> {
        let parent_canon = &r.canon[..r.canon.len() - 1];
        self.copy_up(op, path, parent_canon)?;
        let io = |e| UnionError::io(op, path, e);
        let up = self.upper_dir(&r.parent_rel()).map_err(io)?;
        let upfd = up.as_fd();
        let name = r.name();
        let over_whiteout = matches!(sys::lstat_at(upfd, name), Ok(st) if sys::is_whiteout(&st));
        if over_whiteout {
            let tmp = self.tmp_name();
            make(upfd, &tmp).map_err(io)?;
            let res = (|| {
                if is_dir {
                    set_opaque(upfd, &tmp)?;
                    sys::renameat2(upfd, &tmp, upfd, name, RenameFlags::EXCHANGE)?;
                    sys::unlinkat(upfd, &tmp, false)
                } else {
                    sys::renameat2(upfd, &tmp, upfd, name, RenameFlags::empty())
                }
            })();
            if res.is_err() {
                let _ = sys::unlinkat(upfd, &tmp, is_dir);
            }
            res.map_err(io)?;
        } else {
            make(upfd, name).map_err(io)?;
        }
        self.forget(&r.canon, is_dir);
        Ok(())
    }

    /// Creates a directory, symlink, fifo or device (`mkdir`, `symlink`, `mknod`). EEXIST if the name exists.
    pub fn create(&self, path: &str, kind: &CreateKind) -> Result<()> {
        let op = match kind {
            CreateKind::Dir { .. } => "mkdir",
            CreateKind::Symlink { .. } => "symlink",
            CreateKind::Fifo { .. } | CreateKind::Device { .. } => "mknod",
        };
        let _g = self.write_guard(op, path)?;
        self.create_locked(op, path, kind)
    }

    fn create_locked(&self, op: &'static str, path: &str, kind: &CreateKind) -> Result<()> {
        let r = self.resolve(op, path, false)?;
        if r.entry.is_some() {
            return Err(UnionError::at(op, path, libc::EEXIST));
        }
        let is_dir = matches!(kind, CreateKind::Dir { .. });
        self.create_at(op, path, &r, is_dir, &mut |fd, name| match kind {
            CreateKind::Dir { mode } => sys::mkdirat(fd, name, *mode),
            CreateKind::Symlink { target } => sys::symlinkat(target, fd, name),
            CreateKind::Fifo { mode } => sys::mknodat(fd, name, libc::S_IFIFO | (mode & 0o7777), 0),
            CreateKind::Device { mode, block, major, minor } => {
                let fmt = if *block { libc::S_IFBLK } else { libc::S_IFCHR };
                sys::mknodat(fd, name, fmt | (mode & 0o7777), libc::makedev(*major, *minor))
            }
        })
    }

    /// `mkdir -p`: creates missing directories along `path` (following symlinks to directories).
    pub fn mkdir_all(&self, path: &str, mode: u32) -> Result<()> {
        let _g = self.write_guard("mkdir", path)?;
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for i in 1..=comps.len() {
            let p = comps[..i].join("/");
            let r = self.resolve("mkdir", &p, true)?;
            match &r.entry {
                Some(e) if e.is_dir() => continue,
                Some(_) => {
                    return Err(UnionError::at(
                        "mkdir",
                        path,
                        if i == comps.len() { libc::EEXIST } else { libc::ENOTDIR },
                    ))
                }
                None => self.create_locked("mkdir", &p, &CreateKind::Dir { mode })?,
            }
        }
        Ok(())
    }

    /// `open(O_WRONLY|O_CREAT|(O_TRUNC or O_APPEND))` + write: copies a lower file up first.
    pub fn write_file(&self, path: &str, data: &[u8], append: bool, mode: u32) -> Result<()> {
        let op = if append { "appendFile" } else { "writeFile" };
        let _g = self.write_guard(op, path)?;
        let r = self.resolve(op, path, true)?;
        let io = |e| UnionError::io(op, path, e);
        let fd = match &r.entry {
            None => {
                let mut out: Option<OwnedFd> = None;
                self.create_at(op, path, &r, false, &mut |dfd, name| {
                    out = Some(sys::open_beneath(
                        dfd,
                        name,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                        mode,
                    )?);
                    Ok(())
                })?;
                out.expect("created")
            }
            Some(e) if e.is_dir() => return Err(UnionError::at(op, path, libc::EISDIR)),
            Some(e) if e.fmt != libc::S_IFREG => return Err(UnionError::at(op, path, libc::EINVAL)),
            Some(_) => {
                self.copy_up(op, path, &r.canon)?;
                let flags = OFlags::WRONLY | OFlags::NOFOLLOW | if append { OFlags::APPEND } else { OFlags::TRUNC };
                sys::open_beneath(self.fd(UPPER), &r.rel(), flags, 0).map_err(io)?
            }
        };
        sys::write_all(fd.as_fd(), data).map_err(io)?;
        self.forget(&r.canon, false);
        Ok(())
    }

    /// `truncate(2)`: copies up, then truncates.
    pub fn truncate(&self, path: &str, len: u64) -> Result<()> {
        let _g = self.write_guard("truncate", path)?;
        let r = self.resolve("truncate", path, true)?;
        match &r.entry {
            None => return Err(UnionError::at("truncate", path, libc::ENOENT)),
            Some(e) if e.is_dir() => return Err(UnionError::at("truncate", path, libc::EISDIR)),
            Some(e) if e.fmt != libc::S_IFREG => return Err(UnionError::at("truncate", path, libc::EINVAL)),
            Some(_) => {}
        }
        self.copy_up("truncate", path, &r.canon)?;
        let io = |e| UnionError::io("truncate", path, e);
        let fd = sys::open_beneath(self.fd(UPPER), &r.rel(), OFlags::WRONLY | OFlags::NOFOLLOW, 0).map_err(io)?;
        sys::ftruncate(fd.as_fd(), len).map_err(io)?;
        self.forget(&r.canon, false);
        Ok(())
    }

    /// Resolves, copies up, and runs `f` on (upper parent dir, name) of the object.
    fn setattr(
        &self,
        op: &'static str,
        path: &str,
        follow: bool,
        f: &dyn Fn(BorrowedFd<'_>, &str) -> std::io::Result<()>,
    ) -> Result<()> {
        let _g = self.write_guard(op, path)?;
        let r = self.resolve(op, path, follow)?;
        if r.entry.is_none() {
            return Err(UnionError::at(op, path, libc::ENOENT));
        }
        self.copy_up(op, path, &r.canon)?;
        let io = |e| UnionError::io(op, path, e);
        if r.canon.is_empty() {
            f(self.fd(UPPER), ".").map_err(io)?;
        } else {
            let up = self.upper_dir(&r.parent_rel()).map_err(io)?;
            f(up.as_fd(), r.name()).map_err(io)?;
        }
        self.forget(&r.canon, false);
        Ok(())
    }

    /// `chmod(2)` (follows symlinks).
    pub fn chmod(&self, path: &str, mode: u32) -> Result<()> {
        self.setattr("chmod", path, true, &|d, n| sys::fchmodat(d, n, mode & 0o7777))
    }

    /// `chown(2)` / `lchown(2)`; `u32::MAX` leaves an id unchanged.
    pub fn chown(&self, path: &str, uid: u32, gid: u32, follow: bool) -> Result<()> {
        self.setattr(if follow { "chown" } else { "lchown" }, path, follow, &|d, n| sys::fchownat(d, n, uid, gid))
    }

    /// `utimensat(2)` with explicit times in nanoseconds (follows symlinks when `follow`).
    pub fn utimes(&self, path: &str, atime_ns: i128, mtime_ns: i128, follow: bool) -> Result<()> {
        let times =
            Timestamps { last_access: sys::timespec_ns(atime_ns), last_modification: sys::timespec_ns(mtime_ns) };
        self.setattr("utimes", path, follow, &|d, n| sys::utimensat(d, n, &times))
    }

    /// `lsetxattr(2)`; overlay's own `trusted.overlay.*` names are refused as the kernel does.
    pub fn setxattr(&self, path: &str, name: &str, value: &[u8]) -> Result<()> {
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            return Err(UnionError::at("setxattr", path, libc::EOPNOTSUPP));
        }
        self.setattr("setxattr", path, false, &|d, n| sys::lsetxattr(&sys::proc_path(d, n), name, value))
    }

    /// `unlink(2)`.
    pub fn unlink(&self, path: &str) -> Result<()> {
        let _g = self.write_guard("unlink", path)?;
        self.unlink_locked(path)
    }

    fn unlink_locked(&self, path: &str) -> Result<()> {
        let r = self.resolve("unlink", path, false)?;
        match &r.entry {
            None => Err(UnionError::at("unlink", path, libc::ENOENT)),
            Some(e) if e.is_dir() => Err(UnionError::at("unlink", path, libc::EISDIR)),
            Some(_) => self.remove("unlink", path, &r, false),
        }
    }

    /// `rmdir(2)`: ENOTEMPTY unless the merged directory is empty.
    pub fn rmdir(&self, path: &str) -> Result<()> {
        let _g = self.write_guard("rmdir", path)?;
        self.rmdir_locked(path)
    }

    fn rmdir_locked(&self, path: &str) -> Result<()> {
        let r = self.resolve("rmdir", path, false)?;
        let e = match &r.entry {
            None => return Err(UnionError::at("rmdir", path, libc::ENOENT)),
            Some(e) if !e.is_dir() => return Err(UnionError::at("rmdir", path, libc::ENOTDIR)),
            Some(e) => e.clone(),
        };
        if r.canon.is_empty() {
            return Err(UnionError::at("rmdir", path, libc::EBUSY));
        }
        if !self.merged_entries(&e, &r.rel()).map_err(|err| UnionError::io("rmdir", path, err))?.is_empty() {
            return Err(UnionError::at("rmdir", path, libc::ENOTEMPTY));
        }
        self.remove("rmdir", path, &r, true)
    }

    /// `rm`, optionally recursive; `force` ignores a missing path.
    pub fn rm(&self, path: &str, recursive: bool, force: bool) -> Result<()> {
        let _g = self.write_guard("rm", path)?;
        let r = self.resolve("rm", path, false)?;
        match &r.entry {
            None if force => Ok(()),
            None => Err(UnionError::at("rm", path, libc::ENOENT)),
            Some(e) if e.is_dir() => {
                if !recursive {
                    return Err(UnionError::at("rm", path, libc::EISDIR));
                }
                self.rm_tree(&r.rel())
            }
            Some(_) => self.unlink_locked(path),
        }
    }

    fn rm_tree(&self, rel: &str) -> Result<()> {
        let r = self.resolve("rm", rel, false)?;
        let e = r.entry.clone().ok_or_else(|| UnionError::at("rm", rel, libc::ENOENT))?;
        for child in self.merged_entries(&e, &r.rel()).map_err(|err| UnionError::io("rm", rel, err))? {
            let p = format!("{}/{}", r.rel(), child.name);
            if child.kind == super::FileKind::Dir {
                self.rm_tree(&p)?;
            } else {
                self.unlink_locked(&p)?;
            }
        }
        self.rmdir_locked(rel)
    }

    /// Removes a resolved, existing object (checks done by the caller).
    fn remove(&self, op: &'static str, path: &str, r: &Resolved, is_dir: bool) -> Result<()> {
        self.copy_up(op, path, &r.canon[..r.canon.len() - 1])?;
        let io = |e| UnionError::io(op, path, e);
        let prel = r.parent_rel();
        let name = r.name();
        let up = self.upper_dir(&prel).map_err(io)?;
        let upfd = up.as_fd();
        let lp = self.lower_positive(&r.parent, &prel, name).map_err(io)?;
        let in_upper = r.entry.as_ref().expect("exists").top() == UPPER;
        let res = (|| {
            if in_upper && is_dir {
                clear_whiteouts(upfd, name)?;
            }
            if lp && !in_upper {
                // Nothing of ours at the name: the whiteout can be made in place, atomically.
                self.whiteout_at(upfd, name)
            } else if lp {
                let tmp = self.tmp_name();
                self.whiteout_at(upfd, &tmp)?;
                let r = if in_upper && is_dir {
                    sys::renameat2(upfd, &tmp, upfd, name, RenameFlags::EXCHANGE)
                        .and_then(|_| sys::unlinkat(upfd, &tmp, true))
                } else {
                    sys::renameat2(upfd, &tmp, upfd, name, RenameFlags::empty())
                };
                if r.is_err() {
                    let _ = sys::unlinkat(upfd, &tmp, false);
                }
                r
            } else {
                sys::unlinkat(upfd, name, is_dir)
            }
        })();
        res.map_err(io)?;
        self.forget(&r.canon, is_dir);
        Ok(())
    }

    /// `link(2)` (does not follow a symlink at `existing`): copies `existing` up, links in upper.
    pub fn link(&self, existing: &str, new: &str) -> Result<()> {
        let _g = self.write_guard("link", new)?;
        let o = self.resolve("link", existing, false)?;
        let oe = o.entry.clone().ok_or_else(|| UnionError::at("link", existing, libc::ENOENT))?;
        let n = self.resolve("link", new, false)?;
        if n.entry.is_some() {
            return Err(UnionError::at("link", new, libc::EEXIST));
        }
        if oe.is_dir() {
            return Err(UnionError::at("link", existing, libc::EPERM));
        }
        self.copy_up("link", existing, &o.canon)?;
        let src = self.upper_dir(&o.parent_rel()).map_err(|e| UnionError::io("link", existing, e))?;
        let oname = o.name().to_string();
        // The new name's parent may have been copied up above; resolve it afresh.
        let n = self.resolve("link", new, false)?;
        self.create_at("link", new, &n, false, &mut |fd, name| sys::linkat(src.as_fd(), &oname, fd, name))?;
        self.forget(&o.canon, false);
        Ok(())
    }

    /// `rename(2)` with overlayfs' rules (see the module comment).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let _g = self.write_guard("rename", from)?;
        let op = "rename";
        // Both parents are walked before either last component is looked up (do_renameat2).
        let o = self.resolve(op, from, false)?;
        let n = self.resolve(op, to, false)?;
        let oe = o.entry.clone().ok_or_else(|| UnionError::at(op, from, libc::ENOENT))?;
        if o.canon.is_empty() || n.canon.is_empty() {
            return Err(UnionError::at(op, from, libc::EBUSY));
        }
        let ioe = |e| UnionError::io(op, from, e);
        if let Some(ne) = &n.entry {
            let a = self.stat_entry(&oe, &o.rel()).map_err(ioe)?;
            let b = self.stat_entry(ne, &n.rel()).map_err(ioe)?;
            if a.dev == b.dev && a.ino == b.ino {
                return Ok(());
            }
        }
        if n.canon.len() > o.canon.len() && n.canon.starts_with(&o.canon) {
            return Err(UnionError::at(op, from, libc::EINVAL));
        }
        if o.canon.len() > n.canon.len() && o.canon.starts_with(&n.canon) {
            return Err(UnionError::at(op, to, libc::ENOTEMPTY));
        }
        let o_dir = oe.is_dir();
        if let Some(ne) = &n.entry {
            if o_dir && !ne.is_dir() {
                return Err(UnionError::at(op, to, libc::ENOTDIR));
            }
            if !o_dir && ne.is_dir() {
                return Err(UnionError::at(op, to, libc::EISDIR));
            }
        }
        let pure_upper = |e: &Entry| e.layers.len() == 1 && e.top() == UPPER;
        // Without redirect_dir the kernel refuses to move a directory that has lower parts.
        if o_dir && !pure_upper(&oe) {
            return Err(UnionError::at(op, from, libc::EXDEV));
        }
        if let Some(ne) = &n.entry {
            if ne.is_dir()
                && !pure_upper(ne)
                && !self.merged_entries(ne, &n.rel()).map_err(|e| UnionError::io(op, to, e))?.is_empty()
            {
                return Err(UnionError::at(op, to, libc::ENOTEMPTY));
            }
        }
        self.copy_up(op, from, &o.canon)?;
        self.copy_up(op, to, &n.canon[..n.canon.len() - 1])?;
        let oprel = o.parent_rel();
        let nprel = n.parent_rel();
        let lp_old = self.lower_positive(&o.parent, &oprel, o.name()).map_err(ioe)?;
        let new_parent_merged = n.parent.layers.iter().any(|&l| l as usize != UPPER);
        let oup = self.upper_dir(&oprel).map_err(ioe)?;
        let nup = self.upper_dir(&nprel).map_err(ioe)?;
        let (ofd, nfd) = (oup.as_fd(), nup.as_fd());
        let (oname, nname) = (o.name(), n.name());
        let res = (|| -> std::io::Result<()> {
            if o_dir && new_parent_merged && !self.is_opaque(UPPER, &o.rel()).map_err(to_io)? {
                set_opaque(ofd, oname)?;
            }
            let target = sys::lstat_at(nfd, nname).ok();
            let target_whiteout = target.as_ref().is_some_and(sys::is_whiteout);
            if target.as_ref().is_some_and(sys::is_dir) {
                clear_whiteouts(nfd, nname)?;
            }
            if target_whiteout {
                // Swap the whiteout into the source's place, then drop it if not needed there.
                sys::renameat2(ofd, oname, nfd, nname, RenameFlags::EXCHANGE)?;
                if !lp_old {
                    sys::unlinkat(ofd, oname, false)?;
                }
                Ok(())
            } else if lp_old {
                sys::renameat2(ofd, oname, nfd, nname, RenameFlags::WHITEOUT)
            } else {
                sys::renameat2(ofd, oname, nfd, nname, RenameFlags::empty())
            }
        })();
        self.forget(&o.canon, true);
        res.map_err(ioe)
    }
}

fn to_io(e: UnionError) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_errno())
}

fn set_opaque(dirfd: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
    sys::lsetxattr(&sys::proc_path(dirfd, name), OPAQUE_XATTR, b"y")
}

/// Copies every xattr except overlayfs' private ones (`ovl_copy_xattr`).
fn copy_xattrs(srcdir: BorrowedFd<'_>, src: &str, dstdir: BorrowedFd<'_>, dst: &str) -> std::io::Result<()> {
    let sp = sys::proc_path(srcdir, src);
    let names = sys::llistxattr(&sp)?;
    if names.is_empty() {
        return Ok(());
    }
    let dp = sys::proc_path(dstdir, dst);
    for n in names {
        if n.to_bytes().starts_with(OVERLAY_XATTR_PREFIX.as_bytes()) {
            continue;
        }
        if let Some(v) = sys::lgetxattr(&sp, &n)? {
            sys::lsetxattr(&dp, &n, &v)?;
        }
    }
    Ok(())
}

/// Like [`copy_xattrs`], onto an already-open file named by its `/proc/self/fd` path.
fn copy_xattrs_to(srcdir: BorrowedFd<'_>, src: &str, dst: &str) -> std::io::Result<()> {
    let sp = sys::proc_path(srcdir, src);
    for n in sys::llistxattr(&sp)? {
        if n.to_bytes().starts_with(OVERLAY_XATTR_PREFIX.as_bytes()) {
            continue;
        }
        if let Some(v) = sys::lgetxattr(&sp, &n)? {
            sys::setxattr_follow(dst, &n, &v)?;
        }
    }
    Ok(())
}

/// Removes whiteouts left inside an upper directory that is about to be removed/replaced
/// (the merged directory is empty, so whiteouts are all it can hold).
fn clear_whiteouts(dirfd: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
    let d = sys::open_dir(dirfd, name)?;
    for (n, t) in sys::read_dir(d.as_fd())? {
        if t == FileType::CharacterDevice || t == FileType::Unknown {
            let st = sys::lstat_at(d.as_fd(), &n)?;
            if sys::is_whiteout(&st) {
                sys::unlinkat(d.as_fd(), &n, false)?;
            }
        }
    }
    Ok(())
}
