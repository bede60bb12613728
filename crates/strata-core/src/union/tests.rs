//! Upper-dir effect of each operation (needs root: whiteouts are char 0/0 devices and opaque
//! dirs carry a `trusted.*` xattr; these machines run tests as root).
use super::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fx {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for d in ["l0", "l1", "l2", "up"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        Fx { _dir: dir, root }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    fn file(&self, rel: &str, data: &str) {
        let p = self.p(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    fn dir(&self, rel: &str) {
        fs::create_dir_all(self.p(rel)).unwrap();
    }
    fn whiteout(&self, rel: &str) {
        inspect::make_whiteout(&self.p(rel)).unwrap();
    }
    fn opaque(&self, rel: &str) {
        sys::lsetxattr(&self.p(rel).to_string_lossy(), OPAQUE_XATTR, b"y").unwrap();
    }
    fn view(&self) -> UnionView {
        UnionView::open(&[self.p("l0"), self.p("l1"), self.p("l2")], Some(&self.p("up")), None).unwrap()
    }
    fn is_whiteout(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.p(rel)).map(|m| m.file_type().is_char_device() && m.rdev() == 0).unwrap_or(false)
    }
    fn is_opaque(&self, rel: &str) -> bool {
        sys::lgetxattr(&self.p(rel).to_string_lossy(), OPAQUE_XATTR).unwrap().as_deref() == Some(b"y")
    }
    fn upper_names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(self.p(rel)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }
}

fn names(v: &UnionView, p: &str) -> Vec<String> {
    v.readdir(p).unwrap().into_iter().map(|e| e.name).collect()
}

fn errno<T: std::fmt::Debug>(r: Result<T>) -> i32 {
    r.unwrap_err().raw_errno()
}

#[test]
fn lookup_top_down_whiteouts_and_opaque() {
    let f = Fx::new();
    f.file("l2/a", "a2");
    f.file("l1/a", "a1");
    f.file("l2/gone", "x");
    f.whiteout("l1/gone");
    f.file("l2/d/old", "old");
    f.file("l2/d/keep", "k2");
    f.file("l1/d/new", "new");
    f.file("l0/o/top", "t");
    f.opaque("l0/o");
    f.file("l1/o/hidden", "h");
    let v = f.view();
    assert_eq!(v.read_file("a").unwrap(), b"a1");
    assert_eq!(errno(v.stat("gone")), libc::ENOENT);
    assert_eq!(names(&v, "/"), ["a", "d", "o"]);
    assert_eq!(names(&v, "d"), ["keep", "new", "old"]);
    assert_eq!(names(&v, "o"), ["top"]);
    assert_eq!(errno(v.stat("o/hidden")), libc::ENOENT);
    assert_eq!(v.stat("d").unwrap().nlink, 1, "merged dirs report nlink 1");
    assert_eq!(errno(v.readdir("a")), libc::ENOTDIR);
    assert_eq!(errno(v.stat("a/x")), libc::ENOTDIR);
}

#[test]
fn symlinks_stay_inside_the_view() {
    let f = Fx::new();
    f.file("l1/etc/passwd", "view-passwd");
    f.dir("l0/x");
    std::os::unix::fs::symlink("/etc/passwd", f.p("l0/abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../etc/passwd", f.p("l0/x/rel")).unwrap();
    std::os::unix::fs::symlink("loop", f.p("l0/loop")).unwrap();
    let v = f.view();
    assert_eq!(v.read_file("abs").unwrap(), b"view-passwd");
    assert_eq!(v.read_file("x/rel").unwrap(), b"view-passwd");
    assert_eq!(v.readlink("abs").unwrap(), "/etc/passwd");
    assert_eq!(errno(v.stat("loop")), libc::ELOOP);
    assert_eq!(v.lstat("abs").unwrap().mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(v.read_file("../../etc/passwd").unwrap(), b"view-passwd");
}

#[test]
fn write_copies_up_with_metadata_and_parents() {
    let f = Fx::new();
    f.file("l1/d/e/f", "lower");
    fs::set_permissions(f.p("l1/d/e/f"), fs::Permissions::from_mode(0o4751)).unwrap();
    std::os::unix::fs::chown(f.p("l1/d/e/f"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::chown(f.p("l1/d"), Some(42), Some(43)).unwrap();
    let c = f.p("l1/d/e/f").to_string_lossy().into_owned();
    sys::lsetxattr(&c, "user.k", b"v").unwrap();
    sys::lsetxattr(&c, "trusted.overlay.origin", b"junk").unwrap();
    let v = f.view();
    v.chmod("d/e/f", 0o4755).unwrap();
    let m = fs::symlink_metadata(f.p("up/d/e/f")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert_eq!(fs::read(f.p("up/d/e/f")).unwrap(), b"lower");
    assert_eq!(m.mtime(), fs::metadata(f.p("l1/d/e/f")).unwrap().mtime(), "chmod keeps times");
    let up = f.p("up/d/e/f").to_string_lossy().into_owned();
    assert_eq!(sys::lgetxattr(&up, "user.k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(sys::lgetxattr(&up, "trusted.overlay.origin").unwrap(), None);
    let dm = fs::metadata(f.p("up/d")).unwrap();
    assert_eq!((dm.uid(), dm.gid()), (42, 43));
    v.write_file("d/e/f", b"new", true, 0o666).unwrap();
    assert_eq!(fs::read(f.p("up/d/e/f")).unwrap(), b"lowernew");
    assert_eq!(fs::read(f.p("l1/d/e/f")).unwrap(), b"lower", "lower untouched");
    v.truncate("d/e/f", 2).unwrap();
    assert_eq!(v.read_file("d/e/f").unwrap(), b"lo");
}

#[test]
fn truncate_and_write_of_lower_file() {
    let f = Fx::new();
    f.file("l2/t", "0123456789");
    f.file("l2/w", "old");
    let v = f.view();
    v.truncate("t", 4).unwrap();
    assert_eq!(fs::read(f.p("up/t")).unwrap(), b"0123");
    v.write_file("w", b"N", false, 0o666).unwrap();
    assert_eq!(fs::read(f.p("up/w")).unwrap(), b"N");
    assert_eq!(errno(v.truncate("nope", 0)), libc::ENOENT);
}

#[test]
fn unlink_and_rmdir_leave_whiteouts_only_over_lower_names() {
    let f = Fx::new();
    f.file("l1/lowfile", "x");
    f.dir("l2/lowdir");
    f.file("l1/full/x", "x");
    let v = f.view();
    v.unlink("lowfile").unwrap();
    assert!(f.is_whiteout("up/lowfile"));
    assert_eq!(errno(v.stat("lowfile")), libc::ENOENT);
    v.rmdir("lowdir").unwrap();
    assert!(f.is_whiteout("up/lowdir"));
    v.write_file("fresh", b"1", false, 0o644).unwrap();
    v.unlink("fresh").unwrap();
    assert!(!f.p("up/fresh").exists() && !f.is_whiteout("up/fresh"), "pure upper names just go");
    assert_eq!(errno(v.rmdir("full")), libc::ENOTEMPTY);
    assert_eq!(errno(v.unlink("full")), libc::EISDIR);
    assert_eq!(errno(v.rmdir("lowfile")), libc::ENOENT);
    v.unlink("full/x").unwrap();
    assert!(f.is_whiteout("up/full/x"));
    v.rmdir("full").unwrap();
    assert!(f.is_whiteout("up/full"), "merged dir with only whiteouts in upper → whiteout");
}

#[test]
fn mkdir_over_whiteout_is_opaque_and_create_over_whiteout_replaces() {
    let f = Fx::new();
    f.file("l1/d/inner", "x");
    f.file("l1/g", "x");
    let v = f.view();
    v.rm("d", true, false).unwrap();
    assert!(f.is_whiteout("up/d"));
    v.create("d", &CreateKind::Dir { mode: 0o755 }).unwrap();
    assert!(f.is_opaque("up/d"));
    assert!(names(&v, "d").is_empty());
    v.unlink("g").unwrap();
    v.write_file("g", b"new", false, 0o644).unwrap();
    assert!(fs::symlink_metadata(f.p("up/g")).unwrap().is_file());
    assert_eq!(errno(v.create("g", &CreateKind::Dir { mode: 0o755 })), libc::EEXIST);
    v.create("plain", &CreateKind::Dir { mode: 0o755 }).unwrap();
    assert!(!f.is_opaque("up/plain"));
}

#[test]
fn rename_rules() {
    let f = Fx::new();
    f.file("l1/a", "A");
    f.file("l1/ld/x", "x");
    f.dir("l1/tgt");
    let v = f.view();
    v.rename("a", "b").unwrap();
    assert!(f.is_whiteout("up/a"));
    assert_eq!(fs::read(f.p("up/b")).unwrap(), b"A");
    assert_eq!(errno(v.rename("ld", "ld2")), libc::EXDEV);
    v.create("nd", &CreateKind::Dir { mode: 0o755 }).unwrap();
    v.write_file("nd/y", b"y", false, 0o644).unwrap();
    v.rename("nd", "nd2").unwrap();
    assert!(!f.p("up/nd").exists());
    assert!(f.is_opaque("up/nd2"), "pure upper dir moved into a merged dir becomes opaque");
    assert_eq!(errno(v.rename("nd2", "b")), libc::ENOTDIR);
    assert_eq!(errno(v.rename("b", "nd2")), libc::EISDIR);
    assert_eq!(errno(v.rename("nd2", "nd2/sub")), libc::EINVAL);
    assert_eq!(errno(v.rename("b", "ld")), libc::EISDIR);
    assert_eq!(errno(v.rename("nope", "x")), libc::ENOENT);
    v.rename("nd2", "tgt").unwrap();
    assert_eq!(names(&v, "tgt"), ["y"]);
    v.rename("ld", "ld").unwrap();
    assert!(!f.p("up/ld").exists(), "rename onto itself is a no-op");
}

#[test]
fn link_symlink_fifo_setxattr_chown_utimes() {
    let f = Fx::new();
    f.file("l2/src", "S");
    let v = f.view();
    v.link("src", "hard").unwrap();
    let a = fs::symlink_metadata(f.p("up/src")).unwrap();
    let b = fs::symlink_metadata(f.p("up/hard")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    assert_eq!(errno(v.link("src", "hard")), libc::EEXIST);
    v.create("dir", &CreateKind::Dir { mode: 0o755 }).unwrap();
    assert_eq!(errno(v.link("dir", "dir2")), libc::EPERM);
    v.create("sl", &CreateKind::Symlink { target: "src".into() }).unwrap();
    assert_eq!(fs::read_link(f.p("up/sl")).unwrap().to_str(), Some("src"));
    assert_eq!(v.read_file("sl").unwrap(), b"S");
    v.create("fifo", &CreateKind::Fifo { mode: 0o640 }).unwrap();
    assert!(fs::symlink_metadata(f.p("up/fifo")).unwrap().file_type().is_fifo());
    v.create("null", &CreateKind::Device { mode: 0o666, block: false, major: 1, minor: 3 }).unwrap();
    let n = fs::symlink_metadata(f.p("up/null")).unwrap();
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), libc::makedev(1, 3));
    f.file("l2/x", "x");
    v.setxattr("x", "user.a", b"1").unwrap();
    assert!(f.p("up/x").exists());
    assert_eq!(errno(v.setxattr("x", "trusted.overlay.opaque", b"y")), libc::EOPNOTSUPP);
    f.file("l2/o", "o");
    v.chown("o", 7, 8, true).unwrap();
    let m = fs::metadata(f.p("up/o")).unwrap();
    assert_eq!((m.uid(), m.gid()), (7, 8));
    f.file("l2/t", "t");
    v.utimes("t", 1_000_000_000_000_000_000, 1_500_000_000_123_000_000, true).unwrap();
    assert_eq!(fs::metadata(f.p("up/t")).unwrap().mtime(), 1_500_000_000);
}

#[test]
fn read_only_view_refuses_writes() {
    let f = Fx::new();
    f.file("l0/a", "a");
    let v = UnionView::open(&[f.p("l0")], None, None).unwrap();
    assert_eq!(errno(v.write_file("a", b"x", false, 0o644)), libc::EROFS);
    assert_eq!(errno(v.unlink("a")), libc::EROFS);
    assert_eq!(v.read_file("a").unwrap(), b"a");
}

#[test]
fn copy_up_restores_parent_times() {
    let f = Fx::new();
    f.file("l1/d/f", "x");
    let t = rustix::fs::Timespec { tv_sec: 1_000_000_000, tv_nsec: 0 };
    let d = sys::open_dir(rustix::fs::CWD, &f.p("l1/d").to_string_lossy());
    // open_dir is beneath-only; use a plain utimensat instead.
    drop(d);
    let times = rustix::fs::Timestamps { last_access: t, last_modification: t };
    rustix::fs::utimensat(rustix::fs::CWD, f.p("l1/d"), &times, rustix::fs::AtFlags::empty()).unwrap();
    let v = f.view();
    v.chmod("d/f", 0o600).unwrap();
    assert_eq!(fs::metadata(f.p("up/d")).unwrap().mtime(), 1_000_000_000);
    assert_eq!(f.upper_names("up/d"), ["f"]);
}

#[test]
fn rename_onto_upper_whiteout_swaps_it_to_the_source() {
    let f = Fx::new();
    f.file("l1/src", "S");
    f.file("l1/dst", "D");
    let v = f.view();
    v.unlink("dst").unwrap();
    assert!(f.is_whiteout("up/dst"));
    v.rename("src", "dst").unwrap();
    assert_eq!(fs::read(f.p("up/dst")).unwrap(), b"S");
    assert!(f.is_whiteout("up/src"), "lower-positive source ends as a whiteout");
    v.create("nd", &CreateKind::Dir { mode: 0o755 }).unwrap();
    v.unlink("dst").unwrap();
    v.rename("nd", "dst").unwrap();
    assert!(!f.p("up/nd").exists(), "pure-upper source needs no whiteout");
    assert!(f.is_opaque("up/dst"));
}

#[test]
fn copy_up_of_symlink_keeps_owner_and_target_and_shares_whiteouts() {
    let f = Fx::new();
    f.dir("l1/d");
    std::os::unix::fs::symlink("../t", f.p("l1/d/ln")).unwrap();
    std::os::unix::fs::lchown(f.p("l1/d/ln"), Some(55), Some(66)).unwrap();
    f.file("l1/a", "a");
    f.file("l1/b", "b");
    fs::create_dir(f.p("work")).unwrap();
    let v = UnionView::open(&[f.p("l1")], Some(&f.p("up")), Some(&f.p("work"))).unwrap();
    v.link("d/ln", "d/ln2").unwrap();
    let m = fs::symlink_metadata(f.p("up/d/ln")).unwrap();
    assert!(m.file_type().is_symlink());
    assert_eq!((m.uid(), m.gid(), m.nlink()), (55, 66, 2));
    assert_eq!(fs::read_link(f.p("up/d/ln")).unwrap().to_str(), Some("../t"));
    v.unlink("a").unwrap();
    v.unlink("b").unwrap();
    let (wa, wb) = (fs::symlink_metadata(f.p("up/a")).unwrap(), fs::symlink_metadata(f.p("up/b")).unwrap());
    assert!(f.is_whiteout("up/a") && f.is_whiteout("up/b"));
    assert_eq!(wa.ino(), wb.ino(), "whiteouts are links of one inode in <work>/work, like the kernel's");
}
