//! Every entry type of a legitimate layer lands on disk as Docker's overlay2 would have it,
//! and the tar-split reproduces the exact tar. Needs root (chown, mknod, trusted.* xattrs).
mod common;
use common::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use strata_core::compress::Compression;
use strata_core::digest::Digest;
use strata_core::tarsplit::{assemble, assembled_size};

fn long_name(prefix: &str) -> String {
    format!("{prefix}/{}/{}", "d".repeat(120), "f".repeat(150))
}

/// A layer with one of everything.
pub fn full_layer() -> Vec<u8> {
    let mut t = Tar::new();
    t.entry(H::new("./", b'5').mode(0o755), b"");
    t.entry(H::new("./etc/", b'5').mode(0o755).mtime(1_500_000_000), b"");
    t.entry(H::new("./etc/passwd", b'0').mode(0o644).owner(0, 0).mtime(1_500_000_001), b"root:x:0:0::/root:/bin/sh\n");
    t.entry(H::new("usr/", b'5').mode(0o755), b"");
    t.entry(H::new("usr/bin/", b'5').mode(0o755).owner(1000, 1001).mtime(1_400_000_000), b"");
    t.entry(H::new("usr/bin/su", b'0').mode(0o4755).owner(0, 0), b"#!/bin/sh\n");
    t.entry(H::new("usr/bin/wall", b'0').mode(0o2755).owner(0, 5), b"wall");
    t.entry(H::new("tmp/", b'5').mode(0o1777), b"");
    t.pax(&[
        (b"SCHILY.xattr.security.capability", &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (b"SCHILY.xattr.user.comment", b"hello"),
        (b"SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        (b"SCHILY.xattr.user.overlay.opaque", b"y"),
        (b"mtime", b"1600000000.123456789"),
    ]);
    t.entry(H::new("usr/bin/ping", b'0').mode(0o755).owner(0, 0), b"ping-binary");
    t.hardlink("usr/bin/ping6", "usr/bin/ping");
    t.hardlink("./usr/bin/ping4", "./usr/bin/ping");
    t.symlink("usr/bin/abs", "/etc/passwd");
    t.symlink("usr/bin/rel", "../../etc/passwd");
    t.symlink("usr/bin/dangling", "/nonexistent/target");
    t.entry(H::new("dev/", b'5'), b"");
    t.entry(H::new("dev/null", b'3').mode(0o666).dev(1, 3), b"");
    t.entry(H::new("dev/loop0", b'4').mode(0o660).owner(0, 6).dev(7, 0), b"");
    t.entry(H::new("run/fifo", b'6').mode(0o620).owner(12, 34), b"");
    t.entry(H::new("gone/.wh.deleted", b'0').owner(3, 4), b"");
    t.entry(H::new("opaque/", b'5').mode(0o750), b"");
    t.entry(H::new("opaque/.wh..wh..opq", b'0'), b"");
    t.entry(H::new("opaque/kept", b'0'), b"kept");
    t.entry(H::new(".wh..wh.plnk/", b'5'), b"");
    t.entry(H::new(".wh..wh.plnk/123.456", b'0'), b"aufs hardlink store");
    t.entry(H::new(".wh..wh.aufs", b'0'), b"");
    let pax_long = long_name("pax");
    t.pax(&[(b"path", pax_long.as_bytes())]);
    t.entry(H::new("placeholder-name", b'0'), b"long via pax");
    let gnu_long = long_name("gnu");
    t.gnu_longname(gnu_long.as_bytes());
    t.entry(H::new(&gnu_long.as_bytes()[..100], b'0'), b"long via gnu");
    t.gnu_longname(b"gnu-link-long-name");
    t.gnu_longlink(gnu_long.as_bytes());
    t.entry(H::new("x", b'1').link(&gnu_long.as_bytes()[..100]), b"");
    t.entry(H::new(b"latin1-\xe9t\xe9", b'0'), b"not utf-8");
    t.entry(H::new("dup", b'0'), b"first");
    t.entry(H::new("dupdir/", b'5').mode(0o700), b"");
    t.entry(H::new("dupdir/child", b'0'), b"c");
    t.entry(H::new("dupdir/", b'5').mode(0o711).owner(7, 7), b"");
    t.entry(H::new("empty", b'0').mode(0o600), b"");
    t.entry(H::new("v7dir/", 0).mode(0o700), b"");
    t.entry(H::new("v7dir/f", 0), b"v7");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    t.entry(H::new("big.bin", b'0'), &big);
    t.finish()
}

fn md(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check_full_layer(d: &Path) {
    let passwd = md(&d.join("etc/passwd"));
    assert_eq!(passwd.mode() & 0o7777, 0o644);
    assert_eq!(passwd.mtime(), 1_500_000_001);
    assert_eq!(std::fs::read(d.join("etc/passwd")).unwrap(), b"root:x:0:0::/root:/bin/sh\n");
    // Directory times survive the children created after them.
    assert_eq!(md(&d.join("etc")).mtime(), 1_500_000_000);
    let bin = md(&d.join("usr/bin"));
    assert_eq!((bin.uid(), bin.gid(), bin.mtime()), (1000, 1001, 1_400_000_000));
    // setuid/setgid/sticky survive chown.
    assert_eq!(md(&d.join("usr/bin/su")).mode() & 0o7777, 0o4755);
    let wall = md(&d.join("usr/bin/wall"));
    assert_eq!((wall.mode() & 0o7777, wall.gid()), (0o2755, 5));
    assert_eq!(md(&d.join("tmp")).mode() & 0o7777, 0o1777);
    // xattrs: capability kept, overlay ones never applied.
    let ping = d.join("usr/bin/ping");
    assert!(lgetxattr(&ping, "security.capability").is_some());
    assert_eq!(lgetxattr(&ping, "user.comment").as_deref(), Some(&b"hello"[..]));
    assert_eq!(lgetxattr(&ping, "trusted.overlay.redirect"), None);
    assert_eq!(lgetxattr(&ping, "user.overlay.opaque"), None);
    let pm = md(&ping);
    assert_eq!((pm.mtime(), pm.mtime_nsec()), (1_600_000_000, 123_456_789));
    // Hard links share the inode.
    assert_eq!(md(&d.join("usr/bin/ping6")).ino(), pm.ino());
    assert_eq!(md(&d.join("usr/bin/ping4")).ino(), pm.ino());
    assert_eq!(pm.nlink(), 3);
    // Symlinks as-is.
    assert_eq!(std::fs::read_link(d.join("usr/bin/abs")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(std::fs::read_link(d.join("usr/bin/rel")).unwrap(), Path::new("../../etc/passwd"));
    assert_eq!(std::fs::read_link(d.join("usr/bin/dangling")).unwrap(), Path::new("/nonexistent/target"));
    assert_eq!(md(&d.join("usr/bin/abs")).mtime(), 1_600_000_000);
    // Devices and fifos.
    let null = md(&d.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode() & 0o7777), (rustix::fs::makedev(1, 3), 0o666));
    let lp = md(&d.join("dev/loop0"));
    assert!(lp.file_type().is_block_device());
    assert_eq!((lp.rdev(), lp.mode() & 0o7777, lp.gid()), (rustix::fs::makedev(7, 0), 0o660, 6));
    let fifo = md(&d.join("run/fifo"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!((fifo.mode() & 0o7777, fifo.uid(), fifo.gid()), (0o620, 12, 34));
    assert_eq!(md(&d.join("run")).mode() & 0o7777, 0o755, "implicit parents are 0755");
    // Whiteouts and opaque dirs in overlay format.
    let wh = md(&d.join("gone/deleted"));
    assert!(wh.file_type().is_char_device());
    assert_eq!((wh.rdev(), wh.uid(), wh.gid()), (0, 3, 4));
    assert!(!d.join("gone/.wh.deleted").exists());
    assert_eq!(lgetxattr(&d.join("opaque"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(!d.join("opaque/.wh..wh..opq").exists());
    assert_eq!(md(&d.join("opaque")).mode() & 0o7777, 0o750);
    assert!(!d.join(".wh..wh.plnk").exists() && !d.join(".wh..wh.aufs").exists());
    // Long and non-UTF-8 names.
    assert_eq!(std::fs::read(d.join(long_name("pax"))).unwrap(), b"long via pax");
    assert_eq!(std::fs::read(d.join(long_name("gnu"))).unwrap(), b"long via gnu");
    assert_eq!(md(&d.join("gnu-link-long-name")).ino(), md(&d.join(long_name("gnu"))).ino());
    let latin = d.join(OsStr::from_bytes(b"latin1-\xe9t\xe9"));
    assert_eq!(std::fs::read(latin).unwrap(), b"not utf-8");
    // Duplicates: dir over dir merges, the second header's metadata wins.
    let dd = md(&d.join("dupdir"));
    assert_eq!((dd.mode() & 0o7777, dd.uid()), (0o711, 7));
    assert!(d.join("dupdir/child").exists());
    assert_eq!(std::fs::read(d.join("dup")).unwrap(), b"first");
    assert_eq!(md(&d.join("empty")).len(), 0);
    assert!(md(&d.join("v7dir")).is_dir());
    assert_eq!(md(&d.join("v7dir")).mode() & 0o7777, 0o700);
    assert_eq!(std::fs::read(d.join("v7dir/f")).unwrap(), b"v7");
    assert_eq!(md(&d.join("big.bin")).len(), 3_000_000);
}

#[test]
fn full_layer_extracts_and_round_trips_in_every_compression() {
    let tar = full_layer();
    for (blob, comp) in
        [(tar.clone(), Compression::None), (gzip(&tar), Compression::Gzip), (zstd(&tar), Compression::Zstd)]
    {
        let s = Scratch::new();
        let r = s.apply(&blob).unwrap();
        assert_eq!(r.compression, comp);
        assert_eq!(r.diff_id, Digest::of(&tar));
        assert_eq!(r.digest, Digest::of(&blob));
        assert_eq!(r.tar_size, tar.len() as u64);
        assert_eq!(r.blob_size, blob.len() as u64);
        check_full_layer(&s.dest());
        // tar-split gives back the *uncompressed* tar, byte for byte.
        assert_eq!(assembled_size(&s.tar_split()).unwrap(), tar.len() as u64);
        let mut out = Vec::new();
        let (id, n) = assemble(&s.dest(), &s.tar_split(), &mut out).unwrap();
        assert!(out == tar, "assembled tar differs");
        assert_eq!((id, n), (Digest::of(&tar), tar.len() as u64));
    }
}

#[test]
fn full_layer_extracts_the_same_with_worker_threads() {
    let tar = full_layer();
    let s = Scratch::new();
    let r = s.apply_stream(&tar).unwrap();
    assert_eq!(r.tar_size, tar.len() as u64);
    check_full_layer(&s.dest());
    let single = Scratch::new();
    single.apply(&tar).unwrap();
    let rel = |root: &Path| {
        snapshot(root)
            .into_iter()
            .map(|(p, m, u, g, c)| (p.strip_prefix(root).unwrap().to_owned(), m, u, g, c))
            .collect::<Vec<_>>()
    };
    assert_eq!(rel(&s.dest()), rel(&single.dest()));
    let mut out = Vec::new();
    assemble(&s.dest(), &s.tar_split(), &mut out).unwrap();
    assert!(out == tar, "assembled tar differs");
}

/// Entries that depend on a small file a worker may still be writing: a duplicate of it, a
/// directory or file below it, its removal by a later entry, a hard link to it, a whiteout of
/// it. With workers each must end as it does on one thread.
#[test]
fn entries_that_depend_on_files_in_flight() {
    let mut t = Tar::new();
    for i in 0..200 {
        t.file(format!("many/f{i}"), format!("body {i}").as_bytes());
    }
    t.file("dup", b"first").file("dup", b"second");
    t.file("was-file", b"x").dir("was-file").file("was-file/inner", b"inner");
    t.dir("gone").file("gone/a", b"a").file("gone/b", b"b").symlink("gone", "many");
    t.file("target", b"linked").hardlink("link", "target");
    t.file("wh", b"whited").file(".wh.wh", b"");
    t.file("many/f5", b"replaced");
    let tar = t.finish();
    for workers in [false, true] {
        let s = Scratch::new();
        if workers {
            s.apply_stream(&tar).unwrap();
        } else {
            s.apply(&tar).unwrap();
        }
        let d = s.dest();
        assert_eq!(std::fs::read(d.join("dup")).unwrap(), b"second", "workers: {workers}");
        assert!(md(&d.join("was-file")).is_dir());
        assert_eq!(std::fs::read(d.join("was-file/inner")).unwrap(), b"inner");
        assert_eq!(std::fs::read_link(d.join("gone")).unwrap(), Path::new("many"));
        assert_eq!(md(&d.join("link")).ino(), md(&d.join("target")).ino());
        assert_eq!(std::fs::read(d.join("link")).unwrap(), b"linked");
        assert!(md(&d.join("wh")).file_type().is_char_device(), "workers: {workers}");
        assert_eq!(std::fs::read(d.join("many/f5")).unwrap(), b"replaced");
        assert_eq!(std::fs::read(d.join("many/f199")).unwrap(), b"body 199");
        assert_eq!(std::fs::read_dir(d.join("many")).unwrap().count(), 200);
    }
}

#[test]
fn sizes_and_entry_counts() {
    let mut t = Tar::new();
    t.file("a", b"12345").dir("d").file("d/b", b"678").symlink("l", "a");
    let tar = t.finish();
    let r = Scratch::new().apply(&tar).unwrap();
    // Docker's layer size (overlay2's directory.Size): file contents and symlink targets (`a`).
    assert_eq!((r.size, r.entries), (5 + 3 + 1, 4));
}

#[test]
fn empty_layers() {
    for tar in [vec![0u8; 1024], vec![], vec![0u8; 10240]] {
        let s = Scratch::new();
        let r = s.apply(&tar).unwrap();
        assert_eq!(r.diff_id, Digest::of(&tar));
        assert_eq!(std::fs::read_dir(s.dest()).unwrap().count(), 0);
        let mut out = Vec::new();
        assemble(&s.dest(), &s.tar_split(), &mut out).unwrap();
        assert_eq!(out, tar);
    }
}

#[test]
fn trailing_bytes_count_in_the_diff_id_and_round_trip() {
    let mut tar = Tar::new().file("a", b"x").finish();
    tar.extend_from_slice(&[0u8; 512 * 3]);
    tar.extend_from_slice(b"trailing garbage after the end blocks");
    let s = Scratch::new();
    let r = s.apply(&gzip(&tar)).unwrap();
    assert_eq!(r.diff_id, Digest::of(&tar));
    let mut out = Vec::new();
    assemble(&s.dest(), &s.tar_split(), &mut out).unwrap();
    assert_eq!(out, tar);
}

#[test]
fn tar_crate_built_layer_round_trips() {
    // A layer written by a real tar writer (the tar crate's GNU headers), not our raw builder.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(11);
    h.set_mode(0o640);
    h.set_mtime(1_234_567_890);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "some/dir/file.txt", &b"hello world"[..]).unwrap();
    b.append_data(&mut h.clone(), format!("{}/x", "n".repeat(200)), &b"hello world"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let s = Scratch::new();
    let r = s.apply(&zstd(&tar)).unwrap();
    assert_eq!(r.diff_id, Digest::of(&tar));
    assert_eq!(md(&s.dest().join("some/dir/file.txt")).mode() & 0o7777, 0o640);
    let mut out = Vec::new();
    assemble(&s.dest(), &s.tar_split(), &mut out).unwrap();
    assert_eq!(out, tar);
}
