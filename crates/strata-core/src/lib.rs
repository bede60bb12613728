//! strata-core: the work behind strata, with no napi in it.
//!
//! Layer archives (decompress → sha256 → safe extract, tar-split to reproduce tars),
//! digests, file locks, overlay mount plans and their execution, the upper-dir walker
//! behind `commit`/`diff`, a userspace union view, and the process plumbing of containers
//! (console sockets for their terminals, a subreaper for what the runtime leaves behind). The
//! napi crate only converts.
//!
//! * ingest (a blob becomes a layer's `diff/`): [`layer`], [`compress`], [`stream`],
//!   [`tarsplit`], [`extract`] (with its worker pool), [`sparse`], [`safefs`], [`direct`];
//! * egress (a tree becomes a tar): [`archive`], [`upperwalk`], [`layertar`], [`commit`],
//!   [`build_commit`], [`changes`], [`gzlayer`];
//! * kernel and store primitives: [`mount`], [`mountinfo`], [`lock`], [`fsbatch`], [`fsutil`],
//!   [`du`];
//! * processes: [`console`], [`reaper`];
//! * [`union`] (the view), [`build_ctx`] and [`build_add`] (a build's context, COPY and ADD),
//!   [`digest`], [`error`].
//!
//! Nothing here decides what a store holds (which layers an image needs, names, records):
//! TypeScript does, and calls in for the bytes and syscalls.
pub mod archive;
pub mod build_add;
pub mod build_commit;
pub mod build_ctx;
pub mod changes;
pub mod commit;
pub mod compress;
pub mod console;
pub mod digest;
pub mod direct;
pub mod du;
pub mod error;
pub mod extract;
mod filepool;
pub mod fsbatch;
pub mod fsutil;
pub mod gzlayer;
pub mod layer;
pub mod layertar;
pub mod lock;
pub mod mount;
pub mod mountinfo;
pub mod reaper;
pub mod safefs;
pub mod sparse;
pub mod stream;
pub mod tarsplit;
pub mod union;
pub mod upperwalk;
mod workpool;
