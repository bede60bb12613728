//! strata-core: the work behind strata, with no napi in it.
//!
//! Layer archives (decompress → sha256 → safe extract, tar-split to reproduce tars),
//! digests, file locks, overlay mount plans and their execution, the upper-dir walker
//! behind `commit`/`diff`, a userspace union view, and the process plumbing of containers
//! (console sockets for their terminals, a subreaper for what the runtime leaves behind). The
//! napi crate only converts.
//!
//! * [`ingest`] (a blob becomes a layer's `diff/`): layer, compress, stream, tarsplit,
//!   extract (with its worker pool), sparse, safefs, direct;
//! * [`egress`] (a tree becomes a tar): archive, upperwalk, layertar, commit, build_commit,
//!   changes, gzlayer;
//! * [`kernel`] (mounts, locks, metadata files): mount, mountinfo, lock, fsbatch;
//! * store primitives: [`fsutil`], [`du`], [`workpool`] (the threads of extract and COPY);
//! * processes: [`console`], [`reaper`], [`runproc`] (a build step's runtime, run to its end);
//! * [`union`] (the view), [`build_ctx`], [`build_statindex`] and [`build_add`] (a build's context, its stat index, COPY and ADD),
//!   [`digest`], [`error`].
//!
//! Nothing here decides what a store holds (which layers an image needs, names, records):
//! TypeScript does, and calls in for the bytes and syscalls.
pub mod build_add;
pub mod build_ctx;
pub mod build_statindex;
pub mod console;
pub mod digest;
pub mod du;
pub mod egress;
pub mod error;
pub mod fsutil;
pub mod ingest;
pub mod kernel;
pub mod reaper;
pub mod runproc;
pub mod union;
mod workpool;
