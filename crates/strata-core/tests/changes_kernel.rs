//! `docker diff` semantics, as the Docker Engine prints them, against real overlay upper dirs.
//! Needs root (mknod, trusted.* xattrs, mounts); on strata's machines it runs, never skips.
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use strata_core::egress::changes::{changes, format_changes};
use strata_core::kernel::mount::{mount_overlay, unmount, MountPlan};

fn mknod_whiteout(p: &Path) {
    let mode = rustix::fs::Mode::from_raw_mode(0o600);
    rustix::fs::mknodat(rustix::fs::CWD, p, rustix::fs::FileType::CharacterDevice, mode, 0).unwrap();
}

fn files(root: &Path, list: &[&str]) {
    for f in list {
        let p = root.join(f);
        if f.ends_with('/') {
            fs::create_dir_all(&p).unwrap();
        } else {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f.as_bytes()).unwrap();
        }
    }
}

/// Sets every directory's mtime under `root` to a fixed value, so that "unchanged
/// directory" comparisons are deterministic.
fn pin_dir_times(root: &Path) {
    let t = filetime_fixed();
    for e in walk(root) {
        if fs::symlink_metadata(&e).unwrap().is_dir() {
            set_mtime(&e, t);
        }
    }
}

fn filetime_fixed() -> i64 {
    1_600_000_000
}

fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timespec { tv_sec: secs, tv_nsec: 0 };
    let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
    rustix::fs::utimensat(rustix::fs::CWD, p, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    out
}

fn lines(v: &[strata_core::egress::changes::Change]) -> Vec<String> {
    format_changes(v).lines().map(str::to_string).collect()
}

/// Hand-built layers: opaque dirs and whiteouts in a lower, a file replacing a directory,
/// whiteouts in the upper, unchanged parent directories.
#[test]
fn synthetic_layers() {
    let t = tempfile::tempdir().unwrap();
    let (l0, l1, up) = (t.path().join("l0"), t.path().join("l1"), t.path().join("up"));
    files(&l0, &["a/x", "a/keep", "b/y", "b/old", "c/z", "d/e/f/g", "h/i"]);
    files(&l1, &["b/w", "c", "h/"]);
    rustix::fs::setxattr(l1.join("b"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty()).unwrap();
    mknod_whiteout(&l1.join("h/i"));
    // Upper: delete /a/x; add /b/y (hidden below the opaque /b of l1 → new); /c becomes a
    // dir with a file (l1's /c is a file → everything under it is new); deep add under
    // unchanged parents; recreate /h/i that l1 deleted; modify /a/keep.
    files(&up, &["a/keep", "b/y", "c/q", "d/e/f/new/deeper", "h/i"]);
    mknod_whiteout(&up.join("a/x"));
    for d in [&l0, &l1, &up] {
        pin_dir_times(d);
    }
    let got = changes(&up, &[l1.clone(), l0.clone()]).unwrap();
    let want = [
        "C /a",
        "C /a/keep",
        "D /a/x",
        "C /b",
        "A /b/y",
        "C /c",
        "A /c/q",
        "C /d",
        "C /d/e",
        "C /d/e/f",
        "A /d/e/f/new",
        "A /d/e/f/new/deeper",
        "C /h",
        "A /h/i",
    ];
    assert_eq!(lines(&got), want);
}

/// A container's life through a real overlay mount, then `docker diff` of its upper dir.
#[test]
fn through_a_real_overlay() {
    let t = tempfile::tempdir().unwrap();
    let mk = |n: &str| {
        let p = t.path().join(n);
        fs::create_dir_all(&p).unwrap();
        p
    };
    let (l0, l1, up, work, m) = (mk("l0"), mk("l1"), mk("up"), mk("work"), mk("m"));
    files(
        &l0,
        &[
            "etc/passwd",
            "etc/hosts",
            "usr/bin/ls",
            "var/cache/apt/pkg1",
            "var/cache/apt/pkg2",
            "home/user/.bashrc",
            "opt/a/b/c/deep",
        ],
    );
    files(&l1, &["etc/motd", "home/user/"]);
    mknod_whiteout(&l1.join("home/user/.bashrc"));
    mount_overlay(&MountPlan::container(vec![l1.clone(), l0.clone()], up.clone(), work, m.clone())).unwrap();
    let r = (|| -> std::io::Result<()> {
        fs::write(m.join("etc/passwd"), "root")?; // C
        fs::write(m.join("etc/new.conf"), "x")?; // A
        fs::remove_file(m.join("etc/hosts"))?; // D
        fs::remove_dir_all(m.join("var/cache/apt"))?; // opaque dir: C, D for each old child, A the new
        fs::create_dir(m.join("var/cache/apt"))?;
        fs::write(m.join("var/cache/apt/new"), "n")?;
        fs::create_dir_all(m.join("opt/a/b/c/newdir/x"))?;
        fs::write(m.join("opt/a/b/c/newdir/x/file"), "f")?;
        fs::write(m.join("home/user/.bashrc"), "again")?; // deleted in l1 → A
        fs::set_permissions(m.join("usr/bin/ls"), fs::Permissions::from_mode(0o700))?; // C
        symlink("/etc/passwd", m.join("newlink"))?; // A
        Ok(())
    })();
    unmount(&m, false).unwrap();
    r.unwrap();
    let got = lines(&changes(&up, &[l1, l0]).unwrap());
    // As the Docker Engine prints it (__test__/cli-diff-docker.spec.ts compares with it): every
    // ancestor dir of a change is C; the re-created /var/cache/apt is C with D for each old child.
    let want = [
        "C /etc",
        "D /etc/hosts",
        "A /etc/new.conf",
        "C /etc/passwd",
        "C /home",
        "C /home/user",
        "A /home/user/.bashrc",
        "A /newlink",
        "C /opt",
        "C /opt/a",
        "C /opt/a/b",
        "C /opt/a/b/c",
        "A /opt/a/b/c/newdir",
        "A /opt/a/b/c/newdir/x",
        "A /opt/a/b/c/newdir/x/file",
        "C /usr",
        "C /usr/bin",
        "C /usr/bin/ls",
        "C /var",
        "C /var/cache",
        "C /var/cache/apt",
        "A /var/cache/apt/new",
        "D /var/cache/apt/pkg1",
        "D /var/cache/apt/pkg2",
    ];
    assert_eq!(got, want);
}
