//! Disk usage of a tree as Docker reports it (moby `pkg/directory.Size`, what overlay2's
//! `DiffSize` returns for a container's writable layer): the sum of `st_size` of every entry
//! that is not a directory (symlinks count their target's length, whiteouts nothing), a file
//! with several links once (by inode number). The walk is fd-relative and follows no symlink.
use crate::error::IoAt;
use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags};
use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The size of the tree at `root` (0 for a missing root).
pub fn tree_size(root: &Path) -> Result<u64, IoAt> {
    let fd = match openat(rustix::fs::CWD, root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(0),
        Err(e) => return Err(IoAt::new("open", root, e.into())),
    };
    let mut seen = HashSet::new();
    let mut total = 0u64;
    walk(fd, root, &mut seen, &mut total)?;
    Ok(total)
}

fn walk(dir: OwnedFd, path: &Path, seen: &mut HashSet<u64>, total: &mut u64) -> Result<(), IoAt> {
    let mut names = Vec::new();
    {
        let mut d = Dir::read_from(dir.as_fd()).map_err(|e| IoAt::new("readdir", path, e.into()))?;
        while let Some(ent) = d.read() {
            let ent = ent.map_err(|e| IoAt::new("readdir", path, e.into()))?;
            let name = ent.file_name().to_owned();
            if name.as_bytes() != b"." && name.as_bytes() != b".." {
                names.push(name);
            }
        }
    }
    for name in names {
        let child = path.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        // Gone while we walked: moby ignores it too.
        let st = match statat(dir.as_fd(), name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(IoAt::new("lstat", &child, e.into())),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            match openat(
                dir.as_fd(),
                name.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => walk(fd, &child, seen, total)?,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(IoAt::new("open", &child, e.into())),
            }
            continue;
        }
        if st.st_size == 0 || !seen.insert(st.st_ino) {
            continue;
        }
        *total += st.st_size as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn counts_files_and_symlinks_once_each_and_no_directories() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), b"12345").unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/b"), b"xy").unwrap();
        fs::hard_link(d.path().join("a"), d.path().join("sub/a2")).unwrap();
        std::os::unix::fs::symlink("target-of-9", d.path().join("l")).unwrap();
        fs::write(d.path().join("empty"), b"").unwrap();
        assert_eq!(tree_size(d.path()).unwrap(), 5 + 2 + 11);
        assert_eq!(tree_size(&d.path().join("missing")).unwrap(), 0);
    }
}
