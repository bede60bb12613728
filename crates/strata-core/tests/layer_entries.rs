//! Every entry type of a legitimate layer lands on disk as Docker's overlay2 would have it,
//! and the tar-split reproduces the exact tar. Needs root (chown, mknod, trusted.* xattrs).
mod common;
use common::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use strata_core::digest::{BlobDigest, DiffId};
use strata_core::error::Coded;
use strata_core::ingest::compress::Compression;
use strata_core::ingest::tarsplit::{assemble, assembled_size};

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
    // As tar writers (Docker's, GNU tar) write hard links: the inode's metadata again, which
    // the extractor applies to the shared inode (see hardlink_headers_rewrite_the_shared_inode).
    for (link, target) in [("usr/bin/ping6", "usr/bin/ping"), ("./usr/bin/ping4", "./usr/bin/ping")] {
        t.pax(&[
            (b"SCHILY.xattr.security.capability", &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (b"SCHILY.xattr.user.comment", b"hello"),
            (b"mtime", b"1600000000.123456789"),
        ]);
        t.entry(H::new(link, b'1').link(target).mode(0o755), b"");
    }
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
        // The layer names paths twice (an archive then, not an image layer: see below).
        let r = s.apply_archive(&blob).unwrap();
        assert_eq!(r.compression, comp);
        assert_eq!(r.diff_id, DiffId::of(&tar));
        assert_eq!(r.digest, BlobDigest::of(&blob));
        assert_eq!(r.tar_size, tar.len() as u64);
        assert_eq!(r.blob_size, blob.len() as u64);
        check_full_layer(&s.dest());
        // tar-split gives back the *uncompressed* tar, byte for byte.
        assert_eq!(assembled_size(&s.tar_split()).unwrap(), tar.len() as u64);
        let mut out = Vec::new();
        let (id, n) = assemble(&s.dest(), &s.tar_split(), &mut out).unwrap();
        assert!(out == tar, "assembled tar differs");
        assert_eq!((id, n), (DiffId::of(&tar), tar.len() as u64));
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
    single.apply_archive(&tar).unwrap();
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
        s.apply_archive_either(&tar, workers);
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

/// An image layer that names a path twice is refused, in every form Docker 20.10's tar-split
/// refuses (judged by the engine in `__test__/extract-docker.spec.ts`): a file twice, a
/// directory twice, `a` and `./a`, `d//e` and `d/./e`, the root `./` and `.`. Nothing is left.
#[test]
fn layers_refuse_repeated_paths() {
    let cases: Vec<Vec<u8>> = vec![
        Tar::new().file("twice", b"a").file("twice", b"b").finish(),
        Tar::new().dir("d").file("d/x", b"x").dir("d").finish(),
        Tar::new().file("a", b"a").file("./a", b"b").finish(),
        Tar::new().dir("d").file("d//e", b"a").file("d/./e", b"b").finish(),
        Tar::new().dir("./").file("a", b"a").dir(".").finish(),
        Tar::new().file("b", b"b").hardlink("l", "b").hardlink("l", "b").finish(),
    ];
    for (i, tar) in cases.iter().enumerate() {
        let s = Scratch::new();
        let e = s.apply(tar).unwrap_err();
        assert_eq!(e.code(), "UnsupportedArchive", "case {i}: {e}");
        assert!(e.to_string().contains("duplicates of file paths not supported"), "case {i}: {e}");
        assert!(!s.dest().exists() && !s.tar_split().exists(), "case {i}: nothing left");
        // The same bytes as a plain archive (build ADD): the later entry wins.
        Scratch::new().apply_archive(tar).unwrap();
    }
    // Distinct names that only look alike are fine.
    let ok = Tar::new().dir("d").file("d/e", b"1").file("d/e2", b"2").file("de", b"3").finish();
    Scratch::new().apply(&ok).unwrap();
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
        assert_eq!(r.diff_id, DiffId::of(&tar));
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
    assert_eq!(r.diff_id, DiffId::of(&tar));
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
    assert_eq!(r.diff_id, DiffId::of(&tar));
    assert_eq!(md(&s.dest().join("some/dir/file.txt")).mode() & 0o7777, 0o640);
    let mut out = Vec::new();
    assemble(&s.dest(), &s.tar_split(), &mut out).unwrap();
    assert_eq!(out, tar);
}

/// A hard link's own header goes to the inode it shares, as Docker 20.10's extractor does it
/// (`createTarFile`: lchown, xattrs, then chmod and times unless the target is a symlink); the
/// engine itself is the judge in `__test__/extract-docker.spec.ts`.
#[test]
fn hardlink_headers_rewrite_the_shared_inode() {
    let mut t = Tar::new();
    t.entry(H::new("bin/su", b'0').mode(0o4755).mtime(1_000_000_000), b"su\n");
    t.pax(&[(b"SCHILY.xattr.user.linkx", b"from the link")]);
    t.entry(H::new("bin/su2", b'1').link("bin/su").mode(0o644).owner(1000, 1001).mtime(1_100_000_000), b"");
    t.pax(&[(b"SCHILY.xattr.security.capability", &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]);
    t.entry(H::new("caps", b'0').mode(0o755), b"cap");
    t.entry(H::new("capslink", b'1').link("caps").mode(0o755), b"");
    t.entry(H::new("sym", b'2').link("bin/su").mode(0o777).mtime(1_200_000_000), b"");
    t.entry(H::new("symhard", b'1').link("sym").mode(0o600).owner(5, 6).mtime(1_300_000_000), b"");
    t.entry(H::new("twice", b'0').mode(0o600), b"t");
    t.entry(H::new("twice2", b'1').link("twice").mode(0o640), b"");
    t.entry(H::new("twice2", b'1').link("twice").mode(0o604).owner(9, 9), b"");
    let tar = t.finish();
    for workers in [false, true] {
        let s = Scratch::new();
        s.apply_archive_either(&tar, workers);
        let d = s.dest();
        let su = md(&d.join("bin/su"));
        assert_eq!(su.ino(), md(&d.join("bin/su2")).ino());
        assert_eq!((su.mode() & 0o7777, su.uid(), su.gid(), su.mtime()), (0o644, 1000, 1001, 1_100_000_000));
        assert_eq!(lgetxattr(&d.join("bin/su"), "user.linkx").as_deref(), Some(&b"from the link"[..]));
        // The link's chown dropped the capability; its header carried none to put back.
        assert_eq!(lgetxattr(&d.join("caps"), "security.capability"), None, "workers: {workers}");
        // A link to a symlink: owner applied, mode and times not.
        let sym = md(&d.join("sym"));
        assert!(sym.file_type().is_symlink());
        assert_eq!((sym.uid(), sym.gid(), sym.mtime(), sym.ino()), (5, 6, 1_200_000_000, md(&d.join("symhard")).ino()));
        // A repeated link: the last header wins.
        let tw = md(&d.join("twice"));
        assert_eq!((tw.mode() & 0o7777, tw.uid(), tw.nlink()), (0o604, 9, 2));
        let mut out = Vec::new();
        assemble(&d, &s.tar_split(), &mut out).unwrap();
        assert!(out == tar, "assembled tar differs");
    }
}

/// Whiteouts carry the time they were made (Docker's converter sets none), not the header's.
#[test]
fn whiteouts_get_the_time_they_were_made() {
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut t = Tar::new();
    t.entry(H::new("d/", b'5').mtime(1_500_000_000), b"");
    t.entry(H::new("d/.wh.gone", b'0').owner(7, 8).mtime(1_234_567_890), b"");
    let s = Scratch::new();
    s.apply(&t.finish()).unwrap();
    let wh = md(&s.dest().join("d/gone"));
    assert!(wh.file_type().is_char_device());
    assert_eq!((wh.uid(), wh.gid(), wh.mode() & 0o7777), (7, 8, 0));
    assert!(wh.mtime() >= before, "whiteout mtime {} is older than the extraction", wh.mtime());
    assert_eq!(md(&s.dest().join("d")).mtime(), 1_500_000_000, "its directory keeps the header's time");
}

/// The data and hole ranges of a file (SEEK_DATA / SEEK_HOLE).
fn data_ranges(p: &Path) -> Vec<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    let f = std::fs::File::open(p).unwrap();
    let len = f.metadata().unwrap().len();
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < len {
        let Ok(start) = seek(&f, SeekFrom::Data(at)) else { break };
        let end = seek(&f, SeekFrom::Hole(start)).unwrap();
        out.push((start, end));
        at = end;
    }
    out
}

/// GNU sparse files in PAX form (0.0, 0.1, 1.0), as GNU tar writes them: expanded to the file
/// Go's reader (and so Docker) makes, holes left as holes, the tar reproduced by tar-split.
#[test]
fn pax_sparse_files_in_every_version() {
    const SIZE: u64 = 3 << 20;
    let mut data_a = vec![b'a'; 4096];
    data_a[..5].copy_from_slice(b"start");
    let data_b = vec![b'b'; 4096];
    let frags = [(0u64, &data_a), (2u64 << 20, &data_b)];
    let body: Vec<u8> = [data_a.clone(), data_b.clone()].concat();
    let map01 = format!("0,4096,{},4096,{SIZE},0", 2u64 << 20);
    let mut t = Tar::new();
    // 0.0: offset/numbytes pairs, the name in the header.
    t.pax(&[
        (b"GNU.sparse.size", SIZE.to_string().as_bytes()),
        (b"GNU.sparse.numblocks", b"3"),
        (b"GNU.sparse.offset", b"0"),
        (b"GNU.sparse.numbytes", b"4096"),
        (b"GNU.sparse.offset", (2u64 << 20).to_string().as_bytes()),
        (b"GNU.sparse.numbytes", b"4096"),
        (b"GNU.sparse.offset", SIZE.to_string().as_bytes()),
        (b"GNU.sparse.numbytes", b"0"),
    ]);
    t.entry(H::new("v00", b'0'), &body);
    // 0.1: a map record, the real name in GNU.sparse.name.
    t.pax(&[
        (b"GNU.sparse.size", SIZE.to_string().as_bytes()),
        (b"GNU.sparse.numblocks", b"3"),
        (b"GNU.sparse.name", b"v01"),
        (b"GNU.sparse.map", map01.as_bytes()),
    ]);
    t.entry(H::new("GNUSparseFile.1/v01", b'0'), &body);
    // 1.0: the map opens the body; a large apparent size (past the 8 GiB of an octal field).
    let big = 9u64 << 30;
    let mut body10 = format!("2\n0\n4096\n{}\n4096\n", big - 4096).into_bytes();
    body10.resize(512, 0);
    body10.extend_from_slice(&data_a);
    body10.extend_from_slice(&data_b);
    t.pax(&[
        (b"GNU.sparse.major", b"1"),
        (b"GNU.sparse.minor", b"0"),
        (b"GNU.sparse.name", b"dir/v10"),
        (b"GNU.sparse.realsize", big.to_string().as_bytes()),
    ]);
    t.entry(H::new("GNUSparseFile.1/v10", b'0').mode(0o640).mtime(1_650_000_000), &body10);
    // An unknown version is no sparse file: the raw body under the header's name.
    t.pax(&[(b"GNU.sparse.major", b"2"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.name", b"ignored")]);
    t.entry(H::new("v20", b'0'), b"raw");
    let tar = t.finish();
    for workers in [false, true] {
        let s = Scratch::new();
        let size = s.apply_either(&tar, workers).unwrap();
        assert_eq!(size, SIZE * 2 + big + 3, "the layer size counts the real sizes");
        let d = s.dest();
        for name in ["v00", "v01"] {
            let p = d.join(name);
            assert_eq!(md(&p).len(), SIZE);
            let bytes = std::fs::read(&p).unwrap();
            for (off, frag) in frags {
                assert_eq!(&bytes[off as usize..off as usize + frag.len()], &frag[..], "{name} at {off}");
            }
            assert_eq!(bytes.iter().filter(|&&b| b != 0).count(), 8192, "{name}: the rest is zeros");
            assert_eq!(data_ranges(&p), [(0, 4096), (2 << 20, (2 << 20) + 4096)], "{name}: holes stay holes");
        }
        let v10 = md(&d.join("dir/v10"));
        assert_eq!((v10.len(), v10.mode() & 0o7777, v10.mtime()), (big, 0o640, 1_650_000_000));
        assert!(v10.blocks() * 512 < 1 << 20, "9 GiB apparent, a few blocks on disk");
        assert_eq!(data_ranges(&d.join("dir/v10")), [(0, 4096), (big - 4096, big)]);
        assert!(!d.join("GNUSparseFile.1").exists());
        assert_eq!(std::fs::read(d.join("v20")).unwrap(), b"raw");
        let mut out = Vec::new();
        assemble(&d, &s.tar_split(), &mut out).unwrap();
        assert!(out == tar, "assembled tar differs (workers: {workers})");
    }
}
