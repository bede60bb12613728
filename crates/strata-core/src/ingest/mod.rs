//! Ingest: a layer blob becomes a layer's `diff/` directory in one streaming pass.
//!
//! [`layer`] drives it (one thread per layer): [`compress`] decodes the blob, the digest of
//! both sides is taken on the way, [`tarsplit`] records what is needed to give the same tar
//! back, and [`extract`] writes every entry with fd-relative, `openat2`-confined syscalls
//! ([`safefs`]), large bodies through `O_DIRECT` ([`direct`]), GNU sparse files as Go reads
//! them ([`sparse`]). [`stream`] owns the faults of the source stream.
//!
//! Nothing here decides which layers an image needs or where a layer is recorded.
pub mod compress;
pub mod direct;
pub mod extract;
pub mod layer;
pub mod safefs;
pub mod sparse;
pub mod stream;
pub mod tarsplit;
