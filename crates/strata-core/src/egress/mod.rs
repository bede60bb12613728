//! Egress: a directory tree becomes a tar again.
//!
//! [`upperwalk`] is the one fd-relative walker of an upper dir (whiteouts and opaque dirs
//! mean what overlayfs says); [`changes`] (`diff`) and [`layertar`] (the tar writer of
//! [`commit`] and a build step's seal, [`build_commit`]) visit it. [`archive`] indexes and
//! writes the outer archives of `load`/`save`, and [`gzlayer`] compresses a stored layer for push.
//!
//! Nothing here mounts or decides what a commit records.
pub mod archive;
pub mod build_commit;
pub mod changes;
pub mod commit;
pub mod gzlayer;
pub mod layertar;
pub mod upperwalk;
