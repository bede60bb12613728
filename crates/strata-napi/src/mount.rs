//! Overlay mounts, mountinfo and layer tars: conversion only; blocking calls run as `AsyncTask`s.
// Under `cargo test` napi-derive emits no registrations, so the exported items look unused.
#![cfg_attr(test, allow(dead_code))]
use crate::cancel::NativeCancel;
use crate::BlockingTask;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::{Path, PathBuf};
use strata_core::egress::layertar::{self, TarMode};
use strata_core::kernel::mount::{self, MountPlan};
use strata_core::kernel::mountinfo;

/// The kernel's limit on lower dirs in one overlay mount (`OVL_MAX_STACK`): an image deeper
/// than this cannot be mounted, and one exactly this deep leaves no room for an init layer.
#[napi]
pub const OVERLAY_MAX_STACK: u32 = strata_core::kernel::mount::OVERLAY_MAX_STACK as u32;

/// A mount plan as JS passes it. `lowerdirs` are top first.
#[napi(object)]
pub struct NativeMountPlan {
    pub lowerdirs: Vec<String>,
    pub upperdir: Option<String>,
    pub workdir: Option<String>,
    pub target: String,
    /// Mount flags (`ro`, `nosuid`, `nodev`, `noexec`, `noatime`, ...) and overlay options (`index=off`, ...).
    pub options: Option<Vec<String>>,
}

/// Which kernel interface performed the mount.
#[napi(object)]
pub struct NativeMountResult {
    #[napi(ts_type = "'new' | 'legacy'")]
    pub api: String,
}

/// An overlay mount as `/proc/self/mountinfo` shows it.
#[napi(object)]
pub struct NativeMountEntry {
    pub mount_point: String,
    /// Top first; empty if the kernel does not show them.
    pub lowerdirs: Vec<String>,
    pub upperdir: Option<String>,
    pub workdir: Option<String>,
}

/// Result of writing a layer tar.
#[napi(object)]
pub struct NativeTarStats {
    /// `sha256:<hex>` of the bytes written (the DiffID of an uncompressed layer).
    pub diff_id: String,
    pub bytes: f64,
    pub entries: f64,
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl From<MountPlan> for NativeMountPlan {
    fn from(p: MountPlan) -> Self {
        NativeMountPlan {
            lowerdirs: p.lowerdirs.iter().map(|d| s(d)).collect(),
            upperdir: p.upperdir.as_deref().map(s),
            workdir: p.workdir.as_deref().map(s),
            target: s(&p.target),
            options: Some(p.options),
        }
    }
}

/// The overlay mount of a container's rootfs (`strata_core::kernel::mount::MountPlan::container`, the
/// one owner of its options): `lowerdirs` top first (the init layer, then the image's), the
/// writable layer's `upperdir`/`workdir`, mounted at `target`. Checked as the kernel would
/// (`TooManyLayers`, `InvalidMountPlan`) before anything is mounted.
#[napi]
pub fn container_mount_plan(
    env: Env,
    lowerdirs: Vec<String>,
    upperdir: String,
    workdir: String,
    target: String,
) -> Result<NativeMountPlan> {
    let plan = MountPlan::container(
        lowerdirs.into_iter().map(PathBuf::from).collect(),
        upperdir.into(),
        workdir.into(),
        target.into(),
    );
    plan.validate().map_err(crate::throw(&env))?;
    Ok(plan.into())
}

impl From<mount::MountApi> for NativeMountResult {
    fn from(api: mount::MountApi) -> Self {
        NativeMountResult { api: api.as_str().to_string() }
    }
}

/// Mounts an overlay (new mount API with `lowerdir+` where available, else mount(2)).
#[napi(ts_return_type = "Promise<NativeMountResult>")]
pub fn mount_overlay(plan: NativeMountPlan) -> BlockingTask<mount::MountApi, NativeMountResult> {
    let plan = MountPlan {
        lowerdirs: plan.lowerdirs.into_iter().map(PathBuf::from).collect(),
        upperdir: plan.upperdir.map(PathBuf::from),
        workdir: plan.workdir.map(PathBuf::from),
        target: PathBuf::from(plan.target),
        options: plan.options.unwrap_or_default(),
    };
    crate::blocking(move || mount::mount_overlay(&plan))
}

/// Unmounts `target`; resolves `false` if nothing was mounted there. `detach` = lazy unmount.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn unmount(target: String, detach: Option<bool>) -> BlockingTask<bool> {
    crate::blocking(move || mount::unmount(Path::new(&target), detach.unwrap_or(false)))
}

/// Overlay mounts at or below `under`, deepest first (the order to unmount them in).
#[napi]
pub fn overlay_mounts(env: Env, under: String) -> Result<Vec<NativeMountEntry>> {
    let v = mountinfo::overlay_mounts_under(Path::new(&under)).map_err(crate::throw(&env))?;
    Ok(v.into_iter()
        .map(|m| NativeMountEntry {
            mount_point: s(&m.mount_point),
            lowerdirs: m.lowerdirs.iter().map(|p| s(p)).collect(),
            upperdir: m.upperdir.as_deref().map(s),
            workdir: m.workdir.as_deref().map(s),
        })
        .collect())
}

/// Whether `path` is a mount point (any filesystem); `false` if it does not exist.
#[napi]
pub fn is_mount_point(env: Env, path: String) -> Result<bool> {
    mountinfo::is_mount_point(Path::new(&path)).map_err(crate::throw(&env))
}

impl From<layertar::TarStats> for NativeTarStats {
    fn from(st: layertar::TarStats) -> Self {
        NativeTarStats { diff_id: st.diff_id.to_string(), bytes: st.bytes as f64, entries: st.entries as f64 }
    }
}

/// Writes `dir` as a tar to the file `out`: `'layer'` converts an overlay upper dir into an
/// OCI layer (whiteouts, opaque dirs), `'plain'` writes the tree as is.
#[napi(
    ts_args_type = "dir: string, mode: 'layer' | 'plain', out: string, cancel?: NativeCancel | undefined | null",
    ts_return_type = "Promise<NativeTarStats>"
)]
pub fn write_dir_tar(
    env: Env,
    dir: String,
    mode: String,
    out: String,
    cancel: Option<&NativeCancel>,
) -> Result<BlockingTask<layertar::TarStats, NativeTarStats>> {
    let mode = TarMode::parse(&mode).map_err(crate::throw(&env))?;
    let cancel = NativeCancel::flag_of(cancel);
    Ok(crate::blocking(move || layertar::write_dir_tar_to_file(Path::new(&dir), mode, Path::new(&out), &cancel)))
}
