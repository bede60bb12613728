//! Broken, unsupported and mismatching layers fail with typed errors, and no destination
//! or tar-split is left behind; cancellation, destinations that exist, offsets, lengths.
//! Runs as root (chown), as on the project machines.
mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_core::digest::{BlobDigest, DiffId, Digest};
use strata_core::error::Coded;
use strata_core::ingest::layer::{apply_layer, apply_tar_stream, ApplyRequest, BlobSource, LayerError};

fn sample() -> Vec<u8> {
    let big: Vec<u8> = (0..400_000u32).map(|i| (i * 31 % 253) as u8).collect();
    Tar::new().dir("d").file("d/a", b"hello").file("d/big", &big).symlink("d/l", "a").finish()
}

fn expect_code(blob: &[u8], code: &str, what: &str) {
    let s = Scratch::new();
    match s.apply(blob) {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => assert_eq!(e.code(), code, "{what}: {e}"),
    }
    assert!(!s.dest().exists(), "{what}: dest left behind");
    assert!(!s.tar_split().exists(), "{what}: tar-split left behind");
}

fn flip_middle(mut b: Vec<u8>) -> Vec<u8> {
    let m = b.len() / 2;
    for x in &mut b[m..m + 8] {
        *x ^= 0xa5;
    }
    b
}

#[test]
fn corrupt_compressed_streams() {
    let tar = sample();
    expect_code(&flip_middle(gzip(&tar)), "CorruptArchive", "corrupt gzip");
    expect_code(&flip_middle(zstd(&tar)), "CorruptArchive", "corrupt zstd");
    let gz = gzip(&tar);
    expect_code(&gz[..gz.len() / 2], "CorruptArchive", "truncated gzip");
    let zs = zstd(&tar);
    expect_code(&zs[..zs.len() - 10], "CorruptArchive", "truncated zstd");
    let mut trailing = gzip(&tar);
    trailing.extend_from_slice(b"not another gzip member");
    expect_code(&trailing, "CorruptArchive", "garbage after gzip");
    expect_code(b"BZh91AY&SY\x00\x00\x00\x00", "UnsupportedArchive", "bzip2");
}

#[test]
fn broken_tars() {
    let tar = sample();
    expect_code(&tar[..512 + 512 + 512 + 100], "CorruptArchive", "truncated in a body");
    expect_code(&tar[..512 + 200], "CorruptArchive", "truncated in a header");
    expect_code(&gzip(&tar[..1800]), "CorruptArchive", "truncated, gzip'd");
    let mut bad_sum = tar.clone();
    bad_sum[512 + 10] ^= 1; // second header's name, checksum now wrong
    expect_code(&bad_sum, "CorruptArchive", "bad header checksum");

    // PAX size that disagrees with the header size.
    let lying = Tar::new().pax(&[(b"size", b"100000")]).file("f", b"12345").finish();
    expect_code(&lying, "CorruptArchive", "PAX size disagrees with header");
    // PAX size larger than the data (header says 0): the stream runs out.
    let mut t = Tar::new();
    t.pax(&[(b"size", b"5000")]).entry(H::new("f", b'0').size(0), b"");
    t.raw(b"short");
    expect_code(&t.finish(), "CorruptArchive", "PAX size larger than the data");
    // Duplicate PAX keys (parsers disagree on which wins).
    let dup = Tar::new().pax(&[(b"path", b"a"), (b"path", b"b")]).file("x", b"").finish();
    expect_code(&dup, "CorruptArchive", "duplicate PAX key");
    // A directory that claims data.
    let mut t = Tar::new();
    t.entry(H::new("d", b'5').size(512), &[0u8; 512]);
    expect_code(&t.finish(), "CorruptArchive", "directory with data");
    // One zero block, then more entries.
    let mut t = Tar::new();
    t.file("a", b"x").raw(&[0u8; 512]).file("hidden", b"y");
    expect_code(&t.finish(), "CorruptArchive", "entries after a single zero block");
    // A bad mtime PAX record.
    let bad_time = Tar::new().pax(&[(b"mtime", b"yesterday")]).file("x", b"").finish();
    expect_code(&bad_time, "CorruptArchive", "bad PAX mtime");
}

#[test]
fn unsupported_entries() {
    // A GNU-format sparse header (with a ustar magic the parser itself refuses it: corrupt).
    let mut h = header(&H::new("sparse", b'S'));
    h[257..265].copy_from_slice(b"ustar  \0");
    h[483..495].copy_from_slice(b"00000000000\0"); // realsize
    set_checksum(&mut h);
    let mut t = Tar::new();
    t.raw(&h);
    expect_code(&t.finish(), "UnsupportedArchive", "GNU sparse");
    let mut t = Tar::new();
    t.entry(H::new("sparse", b'S'), b"");
    expect_code(&t.finish(), "CorruptArchive", "sparse type in a ustar header");
    // A 1.0 sparse map over 16 MiB (Go would buffer it all).
    let mut huge = Vec::new();
    while huge.len() < (16 << 20) + 1024 {
        huge.extend_from_slice(b"0\n");
    }
    let mut t = Tar::new();
    t.pax(&[(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"1")]);
    t.entry(H::new("s", b'0'), &[b"99999999\n".as_slice(), &huge].concat());
    expect_code(&t.finish(), "UnsupportedArchive", "sparse map over 16 MiB");
    let mut t = Tar::new();
    t.entry(H::new("vol", b'V'), b"");
    expect_code(&t.finish(), "UnsupportedArchive", "volume header");
}

#[test]
fn expected_digests_are_verified() {
    let tar = sample();
    let blob = gzip(&tar);
    let s = Scratch::new();
    let mut req = s.request(&blob);
    req.expected_diff_id = Some(DiffId::of(&tar));
    req.expected_digest = Some(BlobDigest::of(&blob));
    apply_layer(&req, &|_| {}, &AtomicBool::new(false)).unwrap();

    for (diff_id, digest, what) in [
        (Some(DiffId::of(b"other")), None, "diff_id"),
        (None, Some(BlobDigest::of(&tar)), "digest"), // the DiffID is not the compressed digest
    ] {
        let s = Scratch::new();
        let mut req = s.request(&blob);
        req.expected_diff_id = diff_id.clone();
        req.expected_digest = digest.clone();
        match apply_layer(&req, &|_| {}, &AtomicBool::new(false)) {
            Err(LayerError::DigestMismatch { what: w, expected, found }) => {
                assert_eq!(w, what);
                let want = diff_id.map(|d| d.digest().clone()).or(digest.map(|d| d.digest().clone()));
                assert_eq!(Some(expected), want);
                assert_eq!(found, if what == "diff_id" { Digest::of(&tar) } else { Digest::of(&blob) });
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(!s.dest().exists() && !s.tar_split().exists());
    }
}

#[test]
fn cancellation_aborts_and_cleans_up() {
    let s = Scratch::new();
    let cancel = AtomicBool::new(true);
    let e = apply_layer(&s.request(&sample()), &|_| {}, &cancel).unwrap_err();
    assert_eq!(e.code(), "Aborted");
    assert!(!s.dest().exists());

    // Cancelled mid-stream, from the progress callback.
    let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 249) as u8).collect();
    let tar = Tar::new().file("a", &big).file("b", &big).finish();
    let s = Scratch::new();
    let cancel = AtomicBool::new(false);
    let e = apply_layer(
        &s.request(&tar),
        &|n| {
            if n > 2_000_000 {
                cancel.store(true, Ordering::SeqCst)
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert_eq!(e.code(), "Aborted", "{e}");
    assert!(!s.dest().exists() && !s.tar_split().exists());
}

#[test]
fn existing_destination_is_refused_and_kept() {
    let s = Scratch::new();
    std::fs::create_dir(s.dest()).unwrap();
    std::fs::write(s.dest().join("keep"), b"k").unwrap();
    let e = s.apply(&sample()).unwrap_err();
    assert_eq!(e.code(), "Conflict");
    assert!(s.dest().join("keep").exists());
}

#[test]
fn blobs_inside_a_bigger_file() {
    let tar = sample();
    let blob = zstd(&tar);
    let s = Scratch::new();
    let mut file = vec![7u8; 1000];
    file.extend_from_slice(&blob);
    file.extend_from_slice(&[9u8; 777]);
    let p = s.path().join("outer");
    std::fs::write(&p, &file).unwrap();
    let mut req = ApplyRequest {
        source: BlobSource { path: p, offset: 1000, length: Some(blob.len() as u64) },
        dest: s.dest(),
        tar_split: s.tar_split(),
        expected_diff_id: Some(DiffId::of(&tar)),
        expected_digest: Some(BlobDigest::of(&blob)),
    };
    let progress = std::sync::Mutex::new(Vec::new());
    let r = apply_layer(&req, &|n| progress.lock().unwrap().push(n), &AtomicBool::new(false)).unwrap();
    assert_eq!(r.blob_size, blob.len() as u64);
    assert_eq!(progress.lock().unwrap().last(), Some(&(blob.len() as u64)));
    // A length running past the end of the file.
    std::fs::remove_dir_all(s.dest()).unwrap();
    std::fs::remove_file(s.tar_split()).unwrap();
    req.source.length = Some(file.len() as u64);
    req.expected_digest = None;
    let e = apply_layer(&req, &|_| {}, &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e.code(), "CorruptArchive", "{e}");
    assert!(!s.dest().exists());
}

#[test]
fn tar_stream_from_a_pipe() {
    let tar = sample();
    let s = Scratch::new();
    let r = apply_tar_stream(&tar[..], &s.dest(), &s.tar_split(), &AtomicBool::new(false)).unwrap();
    assert_eq!((r.diff_id.clone(), r.digest.clone()), (DiffId::of(&tar), BlobDigest::of(&tar)));
    assert_eq!(std::fs::read(s.dest().join("d/a")).unwrap(), b"hello");
    let s = Scratch::new();
    let e = apply_tar_stream(&tar[..700], &s.dest(), &s.tar_split(), &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e.code(), "CorruptArchive");
    assert!(!s.dest().exists() && !s.tar_split().exists());
}

/// Broken GNU sparse entries are refused as Go's reader refuses them (Docker fails on each).
#[test]
fn broken_pax_sparse_entries() {
    let v01 = |map: &str, n: &str, size: &str, body: &[u8]| {
        let mut t = Tar::new();
        t.pax(&[
            (b"GNU.sparse.numblocks", n.as_bytes()),
            (b"GNU.sparse.map", map.as_bytes()),
            (b"GNU.sparse.size", size.as_bytes()),
        ]);
        t.entry(H::new("s", b'0'), body);
        t.finish()
    };
    let v10 = |body: &[u8]| {
        let mut t = Tar::new();
        t.pax(&[(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"8")]);
        t.entry(H::new("s", b'0'), body);
        t.finish()
    };
    let block = |text: &[u8]| {
        let mut b = text.to_vec();
        b.resize(512, 0);
        b
    };
    for (tar, what) in [
        (v01("0,4", "2", "8", b"1234"), "numblocks disagrees with the map"),
        (v01("0,4,2,4", "2", "8", b"12345678"), "overlapping fragments"),
        (v01("0,9", "1", "8", b"123456789"), "a fragment past the size"),
        (v01("0,4", "1", "8", b"12"), "fewer bytes than the fragments"),
        (v01("0,2", "1", "8", b"1234"), "more bytes than the fragments"),
        (v01("0,x", "1", "8", b""), "a bad number in the map"),
        (v01("0,2", "1", "big", b"12"), "a bad size"),
        (v10(b""), "1.0 without its map"),
        (v10(&block(b"1\nx\n1\n")), "1.0 with a bad number"),
        (v10(&block(b"2\n0\n1\n")), "1.0 map cut short"),
        (v10(&[block(b"1\n0\n4\n"), b"12".to_vec()].concat()), "1.0 body shorter than its fragments"),
    ] {
        expect_code(&tar, "CorruptArchive", what);
    }
    let mut t = Tar::new();
    t.pax(&[(b"GNU.sparse.numbytes", b"4"), (b"GNU.sparse.offset", b"0")]);
    t.file("s", b"1234");
    expect_code(&t.finish(), "CorruptArchive", "0.0 pairs out of order");
    let mut t = Tar::new();
    t.pax(&[
        (b"GNU.sparse.numblocks", b"0"),
        (b"GNU.sparse.map", b""),
        (b"GNU.sparse.major", b"0"),
        (b"GNU.sparse.minor", b"1"),
    ]);
    t.dir("d");
    expect_code(&t.finish(), "CorruptArchive", "sparse records on a directory");
}
