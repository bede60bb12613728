//! The test addon (`native/testing/`): what the ava suite and the benchmarks need to build
//! overlay-format layers by hand, look at real trees and mount overlayfs synchronously.
//!
//! It lives in a crate of its own so that the release addon (`strata-napi`) carries no test
//! scaffolding, and so that building it reuses the release build of `strata-core` (same
//! profile, same features) and only compiles and links this small crate. Nothing in `ts/`
//! may load it: the tests load it through `__test__/helpers/testing.ts`.
//! Errors are plain messages: the suite treats a failing helper as a failed set-up.
// napi-derive registers exports only outside cfg(test): a test build sees them as dead code.
#![cfg_attr(test, allow(dead_code))]
use std::path::{Path, PathBuf};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use strata_core::kernel::mount::{mount_overlay, unmount, MountPlan};
use strata_core::union::inspect;

fn failed(e: impl std::fmt::Display) -> Error {
    Error::from_reason(e.to_string())
}

/// Creates an overlay whiteout (char 0/0) at a real path.
#[napi]
pub fn union_make_whiteout(path: String) -> Result<()> {
    inspect::make_whiteout(Path::new(&path)).map_err(failed)
}

/// Marks a real directory opaque (`trusted.overlay.opaque=y`).
#[napi]
pub fn union_set_opaque(path: String) -> Result<()> {
    inspect::set_opaque(Path::new(&path)).map_err(failed)
}

/// An object of a snapshotted real directory tree (see `unionSnapshot`).
#[napi(object)]
pub struct NativeUnionSnapEntry {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: f64,
    pub nlink: f64,
    pub rdev: f64,
    pub mtime_ns: BigInt,
    pub hash: Option<String>,
    pub target: Option<String>,
    /// `name=hex(value)` per xattr, sorted.
    pub xattrs: Vec<String>,
}

impl From<inspect::SnapEntry> for NativeUnionSnapEntry {
    fn from(e: inspect::SnapEntry) -> Self {
        let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        NativeUnionSnapEntry {
            xattrs: e.xattrs.iter().map(|(n, v)| format!("{n}={}", hex(v))).collect(),
            path: e.path,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.size as f64,
            nlink: e.nlink as f64,
            rdev: e.rdev as f64,
            mtime_ns: BigInt::from(e.mtime_ns),
            hash: e.hash,
            target: e.target,
        }
    }
}

pub struct Snapshot {
    root: PathBuf,
}

impl Task for Snapshot {
    type Output = Vec<inspect::SnapEntry>;
    type JsValue = Vec<NativeUnionSnapEntry>;
    fn compute(&mut self) -> Result<Self::Output> {
        inspect::snapshot(&self.root).map_err(failed)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(out.into_iter().map(NativeUnionSnapEntry::from).collect())
    }
}

/// Describes every object under a real directory (uppers, layers, mounts), sorted by path.
#[napi(ts_return_type = "Promise<NativeUnionSnapEntry[]>")]
pub fn union_snapshot(root: String) -> AsyncTask<Snapshot> {
    AsyncTask::new(Snapshot { root: root.into() })
}

/// Mounts kernel overlayfs (`lowers` top first, one `lowerdir+` each) at `target`, for
/// differential tests and benchmarks against the view. `options`: e.g. `["redirect_dir=off"]`.
/// Synchronous on purpose (test set-up); the store mounts with the release addon's
/// `mountOverlay`, off the JS thread.
#[napi]
pub fn union_mount_overlay(
    lowers: Vec<String>,
    upper: Option<String>,
    work: Option<String>,
    options: Vec<String>,
    target: String,
) -> Result<()> {
    let (upperdir, workdir) = match (upper, work) {
        (Some(u), Some(w)) => (Some(PathBuf::from(u)), Some(PathBuf::from(w))),
        _ => (None, None),
    };
    let plan = MountPlan {
        lowerdirs: lowers.into_iter().map(PathBuf::from).collect(),
        upperdir,
        workdir,
        target: PathBuf::from(target),
        options,
    };
    mount_overlay(&plan).map(|_| ()).map_err(failed)
}

/// Unmounts `target` (`lazy`: MNT_DETACH).
#[napi]
pub fn union_umount(target: String, lazy: bool) -> Result<()> {
    unmount(Path::new(&target), lazy).map(|_| ()).map_err(failed)
}
