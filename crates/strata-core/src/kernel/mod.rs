//! Kernel and store primitives: overlay mount plans and their execution ([`mount`]), what is
//! mounted ([`mountinfo`]), cross-process file locks ([`lock`]) and batched metadata file
//! operations ([`fsbatch`]).
//!
//! Nothing here knows about images or layers: callers hand in paths and plans.
pub mod fsbatch;
pub mod lock;
pub mod mount;
pub mod mountinfo;
