//! Outer archives: write (docker save), index, apply layers straight out of them (docker
//! load), decompress, and the DiffID verification while streaming.
//! Runs as root (whiteouts are char devices), as on the project machines.
mod common;
use common::*;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicBool;
use strata_core::digest::{BlobDigest, DiffId};
use strata_core::egress::archive::{
    decompress_file, index, write_archive, write_layer_file, MemberData, MemberKind, OutMember,
};
use strata_core::error::Coded;
use strata_core::ingest::compress::Compression;
use strata_core::ingest::layer::{apply_layers, ApplyRequest, BlobSource};
use strata_core::ingest::tarsplit::TarSplitError;

fn layers() -> Vec<Vec<u8>> {
    let big: Vec<u8> = (0..1_234_567u32).map(|i| (i % 239) as u8).collect();
    let long = format!("{}/file", "x".repeat(180));
    vec![
        Tar::new().dir("etc").file("etc/hostname", b"box\n").file("big", &big).finish(),
        Tar::new().file(".wh.big", b"").symlink("link", "/etc/hostname").file(long, b"long").finish(),
    ]
}

#[test]
fn save_index_and_load_round_trip() {
    let s = Scratch::new();
    let tars = layers();
    let mut members = vec![
        OutMember { name: "blobs".into(), data: MemberData::Dir },
        OutMember { name: "blobs/sha256".into(), data: MemberData::Dir },
    ];
    for (i, t) in tars.iter().enumerate() {
        let sc = Scratch::new();
        let r = sc.apply(&gzip(t)).unwrap();
        let keep = s.path().join(format!("store{i}"));
        std::fs::rename(sc.path().join("layer"), &keep).unwrap();
        members.push(OutMember {
            name: format!("blobs/sha256/{}", r.diff_id.hex()),
            data: MemberData::Layer {
                diff_dir: keep.join("diff"),
                tar_split: keep.join("tar-split.json.gz"),
                diff_id: r.diff_id.clone(),
            },
        });
    }
    let manifest = br#"[{"Config":"x","Layers":[]}]"#.to_vec();
    members.push(OutMember { name: "manifest.json".into(), data: MemberData::Bytes(manifest.clone()) });
    let long_name = format!("{}/é-ü-long.json", "n".repeat(120));
    members.push(OutMember { name: long_name.clone(), data: MemberData::Bytes(b"{}".to_vec()) });
    let out = s.path().join("saved.tar");
    let n = write_archive(&members, &out, &AtomicBool::new(false)).unwrap();
    assert_eq!(n, std::fs::metadata(&out).unwrap().len());
    // Deterministic: the same members give the same bytes.
    let out2 = s.path().join("saved2.tar");
    write_archive(&members, &out2, &AtomicBool::new(false)).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());

    let idx = index(&out).unwrap();
    let names: Vec<String> = idx.iter().map(|m| m.name_str().unwrap().to_string()).collect();
    assert_eq!(names[0..2], ["blobs", "blobs/sha256"]);
    assert_eq!(idx[0].kind, MemberKind::Dir);
    assert_eq!(names[names.len() - 1], long_name);
    let f = std::fs::File::open(&out).unwrap();
    let read = |m: &strata_core::egress::archive::Member| {
        let mut b = vec![0u8; m.size as usize];
        f.read_exact_at(&mut b, m.offset).unwrap();
        b
    };
    let man = idx.iter().find(|m| m.name == b"manifest.json").unwrap();
    assert_eq!(read(man), manifest);
    // Layers are the exact original tars; load them straight out of the archive, in parallel.
    let mut reqs = Vec::new();
    for (i, t) in tars.iter().enumerate() {
        let m = idx.iter().find(|m| m.name_str() == Some(&format!("blobs/sha256/{}", DiffId::of(t).hex()))).unwrap();
        assert_eq!(m.kind, MemberKind::File);
        assert!(read(m) == *t);
        reqs.push(ApplyRequest {
            source: BlobSource { path: out.clone(), offset: m.offset, length: Some(m.size) },
            dest: s.path().join(format!("loaded{i}")),
            tar_split: s.path().join(format!("loaded{i}.json.gz")),
            expected_diff_id: Some(DiffId::of(t)),
            expected_digest: Some(BlobDigest::of(t)),
        });
    }
    let res = apply_layers(&reqs, &|_, _| {}, &AtomicBool::new(false)).unwrap();
    assert!(res.iter().all(|r| r.compression == Compression::None));
    assert_eq!(std::fs::read(s.path().join("loaded0/etc/hostname")).unwrap(), b"box\n");

    // One layer file, as for an OCI blob.
    let blob = s.path().join("blob");
    write_layer_file(&reqs[1].dest, &reqs[1].tar_split, &blob, &DiffId::of(&tars[1]), &AtomicBool::new(false)).unwrap();
    assert!(std::fs::read(&blob).unwrap() == tars[1]);
}

#[test]
fn streaming_verifies_the_diff_id() {
    let s = Scratch::new();
    let tar = layers().remove(0);
    s.apply(&tar).unwrap();
    let layer = |id: DiffId| MemberData::Layer { diff_dir: s.dest(), tar_split: s.tar_split(), diff_id: id };
    let out = s.path().join("out.tar");
    let m = vec![OutMember { name: "l.tar".into(), data: layer(DiffId::of(b"wrong")) }];
    let e = write_archive(&m, &out, &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e.code(), "DigestMismatch");
    assert!(!out.exists());
    let leftovers = std::fs::read_dir(s.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert_eq!(leftovers, 0, "temporary file left behind");

    // Same size, different content: caught by the body CRC-64 (and the DiffID behind it).
    std::fs::write(s.dest().join("etc/hostname"), b"BOX\n").unwrap();
    let m = vec![OutMember { name: "l.tar".into(), data: layer(DiffId::of(&tar)) }];
    assert_eq!(write_archive(&m, &out, &AtomicBool::new(false)).unwrap_err().code(), "DigestMismatch");
    let e = write_layer_file(&s.dest(), &s.tar_split(), &out, &DiffId::of(&tar), &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e.code(), "DigestMismatch");
    // Different size: caught by the tar-split record, before anything is hashed.
    std::fs::write(s.dest().join("etc/hostname"), b"longer\n").unwrap();
    let e = write_archive(&m, &out, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(e, strata_core::egress::archive::ArchiveError::TarSplit(TarSplitError::Mismatch { .. })), "{e}");
    assert_eq!(e.code(), "DigestMismatch");
    // A file replaced by a symlink is never followed.
    std::fs::remove_file(s.dest().join("etc/hostname")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.dest().join("etc/hostname")).unwrap();
    assert_eq!(write_archive(&m, &out, &AtomicBool::new(false)).unwrap_err().code(), "UnsafeLayerEntry");
    assert!(!out.exists());
    // Cancelled.
    let cancel = AtomicBool::new(true);
    assert_eq!(write_archive(&m, &out, &cancel).unwrap_err().code(), "Aborted");
}

#[test]
fn index_reads_foreign_archives() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    b.append_data(&mut h.clone(), "./", &[][..]).unwrap();
    b.append_data(&mut h, "./blobs/", &[][..]).unwrap();
    let mut f = tar::Header::new_gnu();
    f.set_size(5);
    f.set_mode(0o644);
    b.append_data(&mut f, "./index.json", &b"{...}"[..]).unwrap();
    let long = format!("blobs/{}", "z".repeat(150));
    b.append_data(&mut f.clone(), &long, &b"12345"[..]).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    b.append_link(&mut l, "a/layer.tar", "../b/layer.tar").unwrap();
    let bytes = b.into_inner().unwrap();
    let p = s.path().join("foreign.tar");
    std::fs::write(&p, &bytes).unwrap();
    let idx = index(&p).unwrap();
    let got: Vec<(String, MemberKind, u64)> =
        idx.iter().map(|m| (m.name_str().unwrap().to_string(), m.kind, m.size)).collect();
    assert_eq!(
        got,
        vec![
            ("blobs".into(), MemberKind::Dir, 0),
            ("index.json".into(), MemberKind::File, 5),
            (long.clone(), MemberKind::File, 5),
            ("a/layer.tar".into(), MemberKind::Symlink, 0),
        ]
    );
    assert_eq!(&bytes[idx[2].offset as usize..idx[2].offset as usize + 5], b"12345");
    assert_eq!(idx[3].linkname.as_deref(), Some(&b"../b/layer.tar"[..]));
    // Truncated in a header → corrupt.
    std::fs::write(&p, &bytes[..700]).unwrap();
    assert_eq!(index(&p).unwrap_err().code(), "CorruptArchive");
}

#[test]
fn decompressing_outer_archives() {
    let s = Scratch::new();
    let tar = layers().remove(1);
    for (blob, comp) in
        [(gzip(&tar), Compression::Gzip), (zstd(&tar), Compression::Zstd), (tar.clone(), Compression::None)]
    {
        let src = s.path().join("in");
        let dst = s.path().join("out.tar");
        std::fs::write(&src, &blob).unwrap();
        assert_eq!(decompress_file(&src, &dst, &AtomicBool::new(false)).unwrap(), comp);
        assert!(std::fs::read(&dst).unwrap() == tar);
    }
    let src = s.path().join("bad");
    let mut bad = gzip(&tar);
    let n = bad.len();
    bad.truncate(n / 2);
    std::fs::write(&src, &bad).unwrap();
    let dst = s.path().join("bad.tar");
    assert_eq!(decompress_file(&src, &dst, &AtomicBool::new(false)).unwrap_err().code(), "CorruptArchive");
    assert!(!dst.exists());
}
