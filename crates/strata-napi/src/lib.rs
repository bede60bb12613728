//! napi binding for strata-core: converts types and errors, nothing else.
//!
//! Every core error crosses into JS as an `Error` object carrying `code`, `syscode`, `errno`
//! and `path` as properties (see [`error`]); the TS facade (`ts/errors.ts`) turns it into a
//! `StrataError`. Native classes are named `Native*` and stay internal to the TS facade.
// napi-derive registers exports only outside cfg(test): a test build sees them as dead code.
#![cfg_attr(test, allow(dead_code))]
use napi_derive::napi;

mod build;
pub(crate) mod cancel;
mod changes;
mod commit;
mod digest;
mod error;
mod fsbatch;
mod layer;
mod lock;
mod mount;
mod process;
mod push;
mod registry;
mod tarheader;
mod union;

pub(crate) use error::{blocking, job, throw, BlockingTask, Failure, NativeTask};

/// Version of the native core, for diagnostics.
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
