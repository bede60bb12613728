//! commit_layer: an upper dir becomes a layer whose diff/ is the same tree and whose DiffID
//! is the sha256 of the OCI layer tar the walker writes.
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use strata_core::egress::commit::commit_layer;
use strata_core::egress::layertar::{write_dir_tar, TarMode};

fn mknod_whiteout(p: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, p, rustix::fs::FileType::CharacterDevice, rustix::fs::Mode::empty(), 0)
        .unwrap();
}

#[test]
fn commit_reproduces_the_upper_dir_as_a_layer() {
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let upper = t.path().join("upper");
    fs::create_dir_all(upper.join("etc/app")).unwrap();
    fs::write(upper.join("greeting"), "hi\n").unwrap();
    fs::write(upper.join("etc/app/conf"), "x=1\n").unwrap();
    fs::set_permissions(upper.join("etc/app/conf"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("/greeting", upper.join("link")).unwrap();
    mknod_whiteout(&upper.join("etc/motd"));
    fs::create_dir(upper.join("opt")).unwrap();
    rustix::fs::setxattr(upper.join("opt"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty()).unwrap();
    fs::write(upper.join("opt/new"), vec![7u8; 300_000]).unwrap();

    let mut tar = Vec::new();
    let stats = write_dir_tar(&upper, TarMode::Layer, &mut tar, &AtomicBool::new(false)).unwrap();
    let dest = t.path().join("layer/diff");
    fs::create_dir(t.path().join("layer")).unwrap();
    let ts = t.path().join("layer.tar-split.json.gz");
    let res = commit_layer(&upper, &dest, &ts, &AtomicBool::new(false)).unwrap();
    assert_eq!(res.diff_id, stats.diff_id);
    assert_eq!(res.tar_size, tar.len() as u64);
    // Docker's layer size: file contents and symlink targets (`/greeting`), as overlay2 counts them.
    assert_eq!(res.size, 3 + 4 + 300_000 + 9);
    assert_eq!(fs::read_to_string(dest.join("greeting")).unwrap(), "hi\n");
    assert_eq!(fs::metadata(dest.join("etc/app/conf")).unwrap().permissions().mode() & 0o7777, 0o600);
    assert_eq!(fs::read_link(dest.join("link")).unwrap(), Path::new("/greeting"));
    let wh = rustix::fs::lstat(dest.join("etc/motd")).unwrap();
    assert_eq!(rustix::fs::FileType::from_raw_mode(wh.st_mode), rustix::fs::FileType::CharacterDevice);
    assert_eq!(wh.st_rdev, 0);
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(dest.join("opt"), "trusted.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(ts.exists());
}

#[test]
fn a_cancelled_commit_leaves_nothing() {
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    fs::write(upper.join("f"), "x").unwrap();
    let dest = t.path().join("diff");
    let ts = t.path().join("ts.gz");
    let err = commit_layer(&upper, &dest, &ts, &AtomicBool::new(true)).unwrap_err();
    assert_eq!(strata_core::error::Coded::code(&err), "Aborted", "{err:?}");
    assert!(!dest.exists() && !ts.exists());
}

#[test]
fn a_missing_upper_dir_is_an_error_and_leaves_nothing() {
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let dest = t.path().join("diff");
    let ts = t.path().join("ts.gz");
    assert!(commit_layer(&t.path().join("nope"), &dest, &ts, &AtomicBool::new(false)).is_err());
    assert!(!dest.exists() && !ts.exists());
}

/// The extractor runs out of space while the walker is still writing: the error is the
/// extractor's ENOSPC (what went wrong), not the walker's EPIPE (what followed), and nothing is
/// left behind. Needs root (a tmpfs of its own).
#[test]
fn a_full_disk_reports_enospc_not_the_broken_pipe() {
    use strata_core::error::{Coded, ErrorCode};
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    for i in 0..8 {
        fs::write(upper.join(format!("big-{i}")), vec![i as u8; 1 << 20]).unwrap();
    }
    let small = t.path().join("small");
    fs::create_dir(&small).unwrap();
    rustix::mount::mount("tmpfs", &small, "tmpfs", rustix::mount::MountFlags::empty(), c"size=2m").unwrap();
    let unmount = scopeguard(&small);
    fs::create_dir(small.join("layer")).unwrap();
    let dest = small.join("layer/diff");
    let ts = small.join("layer.tar-split.json.gz");
    let e = commit_layer(&upper, &dest, &ts, &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    assert_eq!(e.errno(), Some(libc::ENOSPC), "{e}");
    assert!(!dest.exists() && !ts.exists());
    drop(unmount);
}

/// Unmounts `dir` (lazily) when dropped, also when an assertion fails first.
fn scopeguard(dir: &Path) -> impl Drop + '_ {
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
    Unmount(dir)
}
