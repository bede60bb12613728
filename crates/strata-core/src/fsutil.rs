//! Small filesystem primitives for making things visible atomically and durably.
//!
//! It must not know the store's layout.
use rustix::fd::BorrowedFd;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Gives the file open at `fd` the owner `uid`:`gid` and the mode `mode` (permission and special
/// bits), skipping a `chown` or `chmod` whose result `fstat` shows already (a file root just
/// created in a directory without setgid is root's; one created with its permission bits, less
/// a umask that took none of them, has them). Each saved call is a metadata update of the inode
/// (through overlayfs: a setattr of the upper inode too). On failure, the call that failed
/// (`"stat"`, `"chown"`, `"chmod"`) and its error.
pub fn set_owner_mode(fd: BorrowedFd<'_>, uid: u32, gid: u32, mode: u32) -> Result<(), (&'static str, io::Error)> {
    let st = rustix::fs::fstat(fd).map_err(|e| ("stat", e.into()))?;
    let chown = st.st_uid != uid || st.st_gid != gid;
    if chown {
        rustix::fs::fchown(fd, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| ("chown", e.into()))?;
    }
    // chown clears setuid/setgid, so after one the mode is always set again.
    if chown || st.st_mode & 0o7777 != mode & 0o7777 {
        rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(mode & 0o7777)).map_err(|e| ("chmod", e.into()))?;
    }
    Ok(())
}

/// fsync a directory so that renames/creates inside it survive a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `data` to `path` atomically: temp file in the same dir, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{}.tmp-{}-{}", name, std::process::id(), nanos()));
    {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_owner_mode_sets_what_differs_and_special_bits_after_the_owner() {
        use std::os::fd::AsFd;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = File::create(&p).unwrap();
        f.set_permissions(fs::Permissions::from_mode(0o600)).unwrap();
        set_owner_mode(f.as_fd(), 0, 0, 0o600).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        // A new owner (root may give one) and setuid: chown would clear the bit, so it comes after.
        set_owner_mode(f.as_fd(), 1234, 5678, 0o4750).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 5678, 0o4750));
        set_owner_mode(f.as_fd(), 0, 0, 0o644).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o644));
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
