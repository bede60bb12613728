//! napi binding for strata-core: converts types and errors, nothing else.
//!
//! Every core error crosses into JS as an `Error` whose message is
//! `STRATA:` + JSON `{code, message, errno?, path?}`; the TS facade (`ts/errors.ts`)
//! turns that into a `StrataError` with a stable `code`. Native classes are named
//! `Native*` and stay internal to the TS facade.
// napi-derive registers exports only outside cfg(test): a test build sees them as dead code.
#![cfg_attr(test, allow(dead_code))]
use napi::bindgen_prelude::*;
use napi_derive::napi;
use strata_core::error::Coded;

pub(crate) mod cancel;
mod changes;
mod commit;
mod digest;
mod fsbatch;
mod layer;
mod lock;
mod mount;
mod process;
mod tarheader;
mod union;

/// Maps any coded core error to a JS error the TS facade understands.
pub(crate) fn to_js<E: Coded>(e: E) -> Error {
    let mut obj = serde_json::Map::new();
    obj.insert("code".into(), e.code().into());
    obj.insert("message".into(), e.to_string().into());
    if let Some(errno) = e.errno() {
        obj.insert("errno".into(), errno.into());
        obj.insert("syscode".into(), strata_core::error::errno_name(errno).into());
    }
    if let Some(p) = e.path() {
        obj.insert("path".into(), p.into());
    }
    Error::new(Status::GenericFailure, format!("STRATA:{}", serde_json::Value::Object(obj)))
}

/// Version of the native core, for diagnostics.
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
