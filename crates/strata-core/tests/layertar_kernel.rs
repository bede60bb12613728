//! layertar against a real upper dir with every file type. Needs root (mknod, chown,
//! trusted.* and security.* xattrs); on strata's machines it runs, never skips.
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use strata_core::digest::DiffId;
use strata_core::egress::layertar::{write_dir_tar, TarMode};

fn mknod(p: &Path, kind: u32, major: u32, minor: u32) {
    let (ty, mode) = (rustix::fs::FileType::from_raw_mode(kind), rustix::fs::Mode::from_raw_mode(0o644));
    let r = rustix::fs::mknodat(rustix::fs::CWD, p, ty, mode, rustix::fs::makedev(major, minor));
    assert!(r.is_ok(), "mknod {}: {:?}", p.display(), r);
}

fn setx(p: &Path, k: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, k, v, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {k} on {}: {e}", p.display()));
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

const CAP: &[u8] = &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// An overlay-style upper dir with every kind of entry.
fn build_upper(d: &Path) -> Vec<u8> {
    for sub in ["etc", "bin", "a", "z", "run", "dev", "var/cache/apt", "tmp", "long"] {
        fs::create_dir_all(d.join(sub)).unwrap();
    }
    fs::write(d.join("etc/passwd"), "root:x:0:0\n").unwrap();
    chown(&d.join("etc/passwd"), 1000, 1001);
    fs::write(d.join("bin/su"), vec![0x7f; 3000]).unwrap();
    fs::set_permissions(d.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(d.join("bin/ping"), b"ping").unwrap();
    setx(&d.join("bin/ping"), "security.capability", CAP);
    setx(&d.join("bin/ping"), "user.note", b"hello");
    setx(&d.join("bin/ping"), "trusted.overlay.origin", b"\x00\xfb");
    fs::set_permissions(d.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(d.join("a/one"), b"linked").unwrap();
    fs::hard_link(d.join("a/one"), d.join("a/two")).unwrap();
    fs::hard_link(d.join("a/one"), d.join("z/three")).unwrap();
    symlink("usr/lib", d.join("lib")).unwrap();
    let long_target = format!("/{}", "t".repeat(150));
    symlink(&long_target, d.join("longlink")).unwrap();
    mknod(&d.join("run/fifo"), libc::S_IFIFO, 0, 0);
    mknod(&d.join("dev/null"), libc::S_IFCHR, 1, 3);
    mknod(&d.join("dev/loop0"), libc::S_IFBLK, 7, 0);
    // Whiteouts, two of them sharing an inode as overlayfs (≥ 5.8) makes them.
    mknod(&d.join("gone"), libc::S_IFCHR, 0, 0);
    fs::hard_link(d.join("gone"), d.join("etc/removed")).unwrap();
    chown(&d.join("gone"), 0, 0);
    // Opaque dir with a new file.
    setx(&d.join("var/cache/apt"), "trusted.overlay.opaque", b"y");
    fs::set_permissions(d.join("var/cache/apt"), fs::Permissions::from_mode(0o2750)).unwrap();
    fs::write(d.join("var/cache/apt/new"), b"n").unwrap();
    // A socket: skipped.
    let _l = std::os::unix::net::UnixListener::bind(d.join("run/sock")).unwrap();
    // Long and non-UTF-8 names.
    fs::write(d.join("long").join("n".repeat(200)), b"long").unwrap();
    let weird = OsStr::from_bytes(b"bin/\xff\xfeweird");
    fs::write(d.join(weird), b"w").unwrap();
    long_target.into_bytes()
}

#[derive(Debug)]
struct Got {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    link: Option<Vec<u8>>,
    dev: (u32, u32),
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn parse(bytes: &[u8]) -> Vec<(Vec<u8>, Got)> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut xattrs = BTreeMap::new();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for ext in pax {
                let ext = ext.unwrap();
                if let Some(k) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(k.to_string(), ext.value_bytes().to_vec());
                }
            }
        }
        let h = e.header();
        let got = Got {
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            size: e.size(),
            link: e.link_name_bytes().map(|c| c.into_owned()),
            dev: (h.device_major().unwrap().unwrap_or(0), h.device_minor().unwrap().unwrap_or(0)),
            xattrs,
        };
        out.push((e.path_bytes().into_owned(), got));
    }
    out
}

#[test]
fn layer_mode_converts_and_preserves_everything() {
    let t = tempfile::tempdir().unwrap();
    let up = t.path().join("upper");
    fs::create_dir(&up).unwrap();
    let long_target = build_upper(&up);
    let no = AtomicBool::new(false);
    let mut bytes = Vec::new();
    let stats = write_dir_tar(&up, TarMode::Layer, &mut bytes, &no).unwrap();
    assert_eq!(stats.bytes, bytes.len() as u64);
    assert_eq!(stats.diff_id, DiffId::of(&bytes));
    assert_eq!(bytes.len() % 512, 0);

    let entries = parse(&bytes);
    assert_eq!(stats.entries, entries.len() as u64);
    let names: Vec<String> = entries.iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect();
    let long_name = format!("long/{}", "n".repeat(200));
    let expected = [
        "a/",
        "a/one",
        "a/two",
        "bin/",
        "bin/ping",
        "bin/su",
        "bin/\u{fffd}\u{fffd}weird",
        "dev/",
        "dev/loop0",
        "dev/null",
        "etc/",
        "etc/passwd",
        "etc/.wh.removed",
        ".wh.gone",
        "lib",
        "long/",
        &long_name,
        "longlink",
        "run/",
        "run/fifo",
        "tmp/",
        "var/",
        "var/cache/",
        "var/cache/apt/",
        "var/cache/apt/.wh..wh..opq",
        "var/cache/apt/new",
        "z/",
        "z/three",
    ];
    assert_eq!(names, expected, "order: per-directory byte-wise sort of the on-disk names, parents first");
    let by: BTreeMap<Vec<u8>, &Got> = entries.iter().map(|(n, g)| (n.clone(), g)).collect();
    let g = |n: &str| *by.get(n.as_bytes()).unwrap_or_else(|| panic!("missing {n}"));

    assert_eq!(g("etc/passwd").kind, tar::EntryType::Regular);
    assert_eq!((g("etc/passwd").uid, g("etc/passwd").gid, g("etc/passwd").size), (1000, 1001, 11));
    assert_eq!(g("bin/su").mode, 0o4755);
    assert_eq!(g("bin/su").size, 3000);
    assert_eq!(g("tmp/").mode, 0o1777);
    assert_eq!(g("tmp/").kind, tar::EntryType::Directory);

    // Whiteouts: empty regular files, mode 0600, never hardlinks even though they share an inode.
    for w in [".wh.gone", "etc/.wh.removed"] {
        assert_eq!(g(w).kind, tar::EntryType::Regular, "{w}");
        assert_eq!((g(w).mode, g(w).size), (0o600, 0), "{w}");
    }
    // Opaque dir: the dir (without overlay xattrs), then the marker with the dir's perms.
    assert_eq!(g("var/cache/apt/").mode, 0o2750);
    assert!(g("var/cache/apt/").xattrs.is_empty(), "{:?}", g("var/cache/apt/").xattrs);
    let opq = g("var/cache/apt/.wh..wh..opq");
    assert_eq!((opq.kind, opq.mode, opq.size), (tar::EntryType::Regular, 0o750, 0));

    // Hardlinks: the first path in walk order carries the data, the others link to it.
    assert_eq!(g("a/one").kind, tar::EntryType::Regular);
    assert_eq!(g("a/one").size, 6);
    for l in ["a/two", "z/three"] {
        assert_eq!(g(l).kind, tar::EntryType::Link);
        assert_eq!(g(l).link.as_deref(), Some(&b"a/one"[..]));
        assert_eq!(g(l).size, 0);
    }
    // Symlinks, short and long targets.
    assert_eq!(g("lib").kind, tar::EntryType::Symlink);
    assert_eq!(g("lib").link.as_deref(), Some(&b"usr/lib"[..]));
    assert_eq!(g("longlink").link.as_deref(), Some(&long_target[..]));
    // Special files.
    assert_eq!(g("run/fifo").kind, tar::EntryType::Fifo);
    assert_eq!((g("dev/null").kind, g("dev/null").dev), (tar::EntryType::Char, (1, 3)));
    assert_eq!((g("dev/loop0").kind, g("dev/loop0").dev), (tar::EntryType::Block, (7, 0)));
    assert!(!names.iter().any(|n| n.contains("sock")), "sockets are skipped");
    // Xattrs: security.capability and user.* kept, trusted.overlay.* dropped.
    let x = &g("bin/ping").xattrs;
    assert_eq!(x.get("security.capability").map(Vec::as_slice), Some(CAP));
    assert_eq!(x.get("user.note").map(Vec::as_slice), Some(&b"hello"[..]));
    assert!(!x.keys().any(|k| k.contains("overlay")), "{x:?}");
    assert!(!entries.iter().any(|(_, g)| g.xattrs.keys().any(|k| k.starts_with("trusted.overlay."))));
    // Long name via PAX, non-UTF-8 name as raw bytes.
    assert_eq!(g(&long_name).size, 4);
    assert!(by.contains_key(&b"bin/\xff\xfeweird"[..]));

    // Deterministic: a second run gives the same bytes.
    let mut again = Vec::new();
    let s2 = write_dir_tar(&up, TarMode::Layer, &mut again, &no).unwrap();
    assert_eq!(s2.diff_id, stats.diff_id);
    assert_eq!(again, bytes);
}

#[test]
fn plain_mode_converts_nothing() {
    let t = tempfile::tempdir().unwrap();
    let up = t.path().join("upper");
    fs::create_dir(&up).unwrap();
    build_upper(&up);
    let mut bytes = Vec::new();
    write_dir_tar(&up, TarMode::Plain, &mut bytes, &AtomicBool::new(false)).unwrap();
    let entries = parse(&bytes);
    let names: Vec<String> = entries.iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains(".wh.")), "{names:?}");
    let removed = &entries.iter().find(|(n, _)| n == b"etc/removed").unwrap().1;
    assert_eq!((removed.kind, removed.dev), (tar::EntryType::Char, (0, 0)));
    // The second name of the same inode is a hardlink to the first in plain mode.
    let gone = &entries.iter().find(|(n, _)| n == b"gone").unwrap().1;
    assert_eq!((gone.kind, gone.link.as_deref()), (tar::EntryType::Link, Some(&b"etc/removed"[..])));
}

#[test]
fn cancel_stops_with_typed_error() {
    use strata_core::error::Coded;
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("f"), b"x").unwrap();
    let e = write_dir_tar(t.path(), TarMode::Layer, std::io::sink(), &AtomicBool::new(true)).unwrap_err();
    assert_eq!(e.code(), "Aborted");
}

#[test]
fn upper_of_a_real_overlay_mount() {
    use strata_core::kernel::mount::{mount_overlay, unmount, MountPlan};
    let t = tempfile::tempdir().unwrap();
    let mk = |n: &str| {
        let p = t.path().join(n);
        fs::create_dir_all(&p).unwrap();
        p
    };
    let (low, up, work, m) = (mk("low"), mk("up"), mk("work"), mk("m"));
    fs::create_dir_all(low.join("d/sub")).unwrap();
    fs::write(low.join("d/sub/x"), b"x").unwrap();
    fs::write(low.join("d/keep"), b"k").unwrap();
    fs::write(low.join("f"), b"f").unwrap();
    mount_overlay(&MountPlan::container(vec![low], up.clone(), work, m.clone())).unwrap();
    fs::remove_file(m.join("f")).unwrap();
    fs::remove_dir_all(m.join("d/sub")).unwrap();
    fs::create_dir(m.join("d/sub")).unwrap(); // recreated over a whiteout → opaque
    fs::write(m.join("d/sub/y"), b"y").unwrap();
    fs::write(m.join("d/keep"), b"changed").unwrap();
    unmount(&m, false).unwrap();
    let mut bytes = Vec::new();
    write_dir_tar(&up, TarMode::Layer, &mut bytes, &AtomicBool::new(false)).unwrap();
    let names: Vec<String> = parse(&bytes).iter().map(|(n, _)| String::from_utf8_lossy(n).into_owned()).collect();
    assert_eq!(names, ["d/", "d/keep", "d/sub/", "d/sub/.wh..wh..opq", "d/sub/y", ".wh.f"]);
}
