//! `commitLayer`: a container's upper dir → a new read-only layer (see `strata_core::egress::commit`).
#![cfg_attr(test, allow(dead_code))]
use crate::cancel::NativeCancel;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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

pub struct CommitLayer {
    upper: PathBuf,
    dest: PathBuf,
    tar_split: PathBuf,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for CommitLayer {
    type Output = strata_core::egress::commit::Committed;
    type JsValue = NativeCommitResult;
    fn compute(&mut self) -> std::result::Result<Self::Output, crate::Failure> {
        Ok(strata_core::egress::commit::commit_layer(&self.upper, &self.dest, &self.tar_split, &self.cancel)?)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeCommitResult {
            diff_id: out.diff_id.to_string(),
            size: out.size as i64,
            tar_size: out.tar_size as i64,
        })
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
) -> AsyncTask<crate::error::Job<CommitLayer>> {
    crate::job(CommitLayer {
        upper: upper_dir.into(),
        dest: dest.into(),
        tar_split: tar_split.into(),
        cancel: cancel.map(|c| c.flag.clone()).unwrap_or_default(),
    })
}
