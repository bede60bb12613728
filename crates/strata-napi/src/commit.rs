//! `commitLayer`: a container's upper dir → a new read-only layer (see `strata_core::egress::commit`).
#![cfg_attr(test, allow(dead_code))]
use crate::cancel::NativeCancel;
use napi_derive::napi;

/// What `commitLayer` made.
#[napi(object)]
pub struct NativeCommitResult {
    /// sha256 of the layer tar (the new layer's DiffID).
    pub diff_id: String,
    /// Sum of regular file sizes (Docker's layer size).
    pub size: i64,
    /// Length of the layer tar.
    pub tar_size: i64,
}

impl From<strata_core::egress::commit::Committed> for NativeCommitResult {
    fn from(out: strata_core::egress::commit::Committed) -> Self {
        NativeCommitResult { diff_id: out.diff_id.to_string(), size: out.size as i64, tar_size: out.tar_size as i64 }
    }
}

/// Walks `upperDir` into an OCI layer tar and extracts it, in one pass, as a new layer at
/// `dest` (must not exist) with its tar-split at `tarSplit`. Resolves to the new layer's DiffID and size.
#[napi(ts_return_type = "Promise<NativeCommitResult>")]
pub fn commit_layer(
    upper_dir: String,
    dest: String,
    tar_split: String,
    cancel: Option<&NativeCancel>,
) -> crate::BlockingTask<strata_core::egress::commit::Committed, NativeCommitResult> {
    let cancel = NativeCancel::flag_of(cancel);
    crate::blocking(move || {
        strata_core::egress::commit::commit_layer(upper_dir.as_ref(), dest.as_ref(), tar_split.as_ref(), &cancel)
    })
}
