//! `docker diff` of an upper dir: conversion only; the walk runs as an `AsyncTask`.
// Under `cargo test` napi-derive emits no registrations, so the exported items look unused.
#![cfg_attr(test, allow(dead_code))]
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::PathBuf;
use strata_core::egress::changes;

/// One `docker diff` line.
#[napi(object)]
pub struct NativeChange {
    #[napi(ts_type = "'A' | 'C' | 'D'")]
    pub kind: String,
    /// Absolute path inside the container, e.g. `/etc/passwd`.
    pub path: String,
}

pub struct ChangesTask {
    upper: PathBuf,
    lowers: Vec<PathBuf>,
}

impl crate::NativeTask for ChangesTask {
    type Output = Vec<changes::Change>;
    type JsValue = Vec<NativeChange>;
    fn compute(&mut self) -> std::result::Result<Vec<changes::Change>, crate::Failure> {
        Ok(changes::changes(&self.upper, &self.lowers)?)
    }
    fn resolve(&mut self, _: Env, v: Vec<changes::Change>) -> Result<Vec<NativeChange>> {
        Ok(v.into_iter().map(|c| NativeChange { kind: c.kind.as_char().to_string(), path: c.path }).collect())
    }
}

/// Changes of `upper` relative to `lowers` (top first), as `docker diff` lists them.
#[napi(ts_return_type = "Promise<NativeChange[]>")]
pub fn changes(upper: String, lowers: Vec<String>) -> AsyncTask<crate::error::Job<ChangesTask>> {
    crate::job(ChangesTask { upper: upper.into(), lowers: lowers.into_iter().map(PathBuf::from).collect() })
}
