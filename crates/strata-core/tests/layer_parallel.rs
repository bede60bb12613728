//! Several layers applied in parallel out of one outer file.
//! Runs as root (whiteouts are char devices), as on the project machines.
mod common;
use common::*;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use strata_core::digest::{BlobDigest, DiffId};
use strata_core::error::Coded;
use strata_core::ingest::layer::{apply_layers, ApplyRequest, BlobSource};
use strata_core::ingest::tarsplit::assemble;

fn layer(i: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..(500_000 + i * 100_000)).map(|j| ((j * (i + 3)) % 241) as u8).collect();
    Tar::new().dir(format!("l{i}")).file(format!("l{i}/data"), &data).file(".wh.old", b"").finish()
}

fn setup(blobs: &[Vec<u8>], s: &Scratch) -> Vec<ApplyRequest> {
    let mut outer = Vec::new();
    let mut reqs = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        outer.extend_from_slice(&[0u8; 512]);
        reqs.push(ApplyRequest {
            source: BlobSource {
                path: s.path().join("outer.tar"),
                offset: outer.len() as u64,
                length: Some(b.len() as u64),
            },
            dest: s.path().join(format!("layer/diff{i}")),
            tar_split: s.path().join(format!("layer/ts{i}.json.gz")),
            expected_diff_id: None,
            expected_digest: None,
        });
        outer.extend_from_slice(b);
    }
    std::fs::write(s.path().join("outer.tar"), outer).unwrap();
    reqs
}

#[test]
fn layers_apply_in_parallel() {
    let tars: Vec<Vec<u8>> = (0..6).map(layer).collect();
    let blobs: Vec<Vec<u8>> =
        tars.iter().enumerate().map(|(i, t)| if i % 2 == 0 { gzip(t) } else { zstd(t) }).collect();
    let s = Scratch::new();
    let mut reqs = setup(&blobs, &s);
    for (r, t) in reqs.iter_mut().zip(&tars) {
        r.expected_diff_id = Some(DiffId::of(t));
    }
    let seen = Mutex::new(HashMap::new());
    let results = apply_layers(&reqs, &|i, n| _ = seen.lock().unwrap().insert(i, n), &AtomicBool::new(false)).unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.diff_id, DiffId::of(&tars[i]));
        assert_eq!(r.digest, BlobDigest::of(&blobs[i]));
        assert_eq!(seen.lock().unwrap()[&i], blobs[i].len() as u64);
        let mut out = Vec::new();
        assemble(&reqs[i].dest, &reqs[i].tar_split, &mut out).unwrap();
        assert!(out == tars[i]);
    }
}

#[test]
fn one_bad_layer_fails_the_batch_and_removes_every_dest() {
    let mut blobs: Vec<Vec<u8>> = (0..5).map(|i| gzip(&layer(i))).collect();
    blobs[3] = gzip(&Tar::new().file("../evil", b"x").finish());
    let s = Scratch::new();
    let reqs = setup(&blobs, &s);
    let e = apply_layers(&reqs, &|_, _| {}, &AtomicBool::new(false)).unwrap_err();
    assert_eq!(e.code(), "UnsafeLayerEntry", "{e}");
    for r in &reqs {
        assert!(!r.dest.exists() && !r.tar_split.exists(), "{} left behind", r.dest.display());
    }
}
