//! `docker diff` of an upper dir: conversion only; the walk runs as an `AsyncTask`.
// Under `cargo test` napi-derive emits no registrations, so the exported items look unused.
#![cfg_attr(test, allow(dead_code))]
use napi_derive::napi;
use std::path::{Path, PathBuf};
use strata_core::egress::changes;

/// One `docker diff` line.
#[napi(object)]
pub struct NativeChange {
    #[napi(ts_type = "'A' | 'C' | 'D'")]
    pub kind: String,
    /// Absolute path inside the container, e.g. `/etc/passwd`.
    pub path: String,
}

/// Changes of `upper` relative to `lowers` (top first), as `docker diff` lists them.
#[napi(ts_return_type = "Promise<NativeChange[]>")]
pub fn changes(upper: String, lowers: Vec<String>) -> crate::BlockingTask<Vec<NativeChange>> {
    let lowers: Vec<PathBuf> = lowers.into_iter().map(PathBuf::from).collect();
    crate::blocking(move || {
        let found = changes::changes(Path::new(&upper), &lowers)?;
        Ok::<_, crate::Failure>(
            found.into_iter().map(|c| NativeChange { kind: c.kind.as_char().to_string(), path: c.path }).collect(),
        )
    })
}
