//! `fsBatch`: a list of file-system steps in one task (see `strata_core::kernel::fsbatch`).
#![cfg_attr(test, allow(dead_code))]
use crate::Failure;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use strata_core::kernel::fsbatch::{self, FsOp};

/// One step, as the TS facade builds it (`op` names the step; TS sees a union of object types).
/// `target` is the symlink's target or the rename's destination, `data` the file's contents
/// (UTF-8); `mode` defaults to 0755 for `mkdir`, 0644 for `write`/`writeNew`.
#[napi(discriminant = "op", discriminant_case = "camelCase")]
pub enum NativeFsOp {
    Mkdir {
        path: String,
        mode: Option<u32>,
    },
    /// Creates or truncates the file.
    Write {
        path: String,
        data: String,
        mode: Option<u32>,
    },
    /// Creates the file; fails if the name exists.
    WriteNew {
        path: String,
        data: String,
        mode: Option<u32>,
    },
    Symlink {
        path: String,
        target: String,
    },
    Rename {
        path: String,
        target: String,
    },
    /// A rename that does nothing when `path` is gone.
    RenameIfExists {
        path: String,
        target: String,
    },
    Unlink {
        path: String,
    },
    RemoveAll {
        path: String,
    },
    Syncfs {
        path: String,
    },
    /// `fsync` of a file or dir (not through a symlink); consecutive ones run concurrently, all
    /// done before the next step.
    Fsync {
        path: String,
    },
}

impl From<NativeFsOp> for FsOp {
    fn from(o: NativeFsOp) -> FsOp {
        let write = |path: String, data: String, mode: Option<u32>, exclusive| FsOp::Write {
            path: path.into(),
            data: data.into_bytes(),
            mode: mode.unwrap_or(0o644),
            exclusive,
        };
        let rename = |path: String, target: String, missing_ok| FsOp::Rename {
            from: path.into(),
            to: target.into(),
            missing_ok,
        };
        match o {
            NativeFsOp::Mkdir { path, mode } => FsOp::Mkdir { path: path.into(), mode: mode.unwrap_or(0o755) },
            NativeFsOp::Write { path, data, mode } => write(path, data, mode, false),
            NativeFsOp::WriteNew { path, data, mode } => write(path, data, mode, true),
            NativeFsOp::Symlink { path, target } => FsOp::Symlink { target: target.into(), path: path.into() },
            NativeFsOp::Rename { path, target } => rename(path, target, false),
            NativeFsOp::RenameIfExists { path, target } => rename(path, target, true),
            NativeFsOp::Unlink { path } => FsOp::Remove { path: path.into() },
            NativeFsOp::RemoveAll { path } => FsOp::RemoveAll { path: path.into() },
            NativeFsOp::Syncfs { path } => FsOp::SyncFs { path: path.into() },
            NativeFsOp::Fsync { path } => FsOp::Fsync { path: path.into() },
        }
    }
}

/// Runs the steps in order off the JS thread, stopping at the first failure (an `Io`
/// StrataError naming the step's path).
#[napi(ts_return_type = "Promise<void>")]
pub fn fs_batch(ops: Vec<NativeFsOp>) -> crate::BlockingTask<()> {
    let ops: Vec<FsOp> = ops.into_iter().map(FsOp::from).collect();
    crate::blocking(move || fsbatch::run(&ops))
}

/// The bytes of `path`, or None when it does not exist; other errors are `Io` StrataErrors.
fn read_if_exists(path: &std::path::Path) -> std::result::Result<Option<Vec<u8>>, Failure> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => {
            Err(fsbatch::FsBatchError { op: "read", path: path.display().to_string(), done: 0, source }.into())
        }
    }
}

pub struct ReadFile {
    path: std::path::PathBuf,
}

impl crate::NativeTask for ReadFile {
    type Output = Option<Vec<u8>>;
    type JsValue = Option<Buffer>;
    fn compute(&mut self) -> std::result::Result<Option<Vec<u8>>, Failure> {
        read_if_exists(&self.path)
    }
    fn resolve(&mut self, _: Env, out: Option<Vec<u8>>) -> Result<Option<Buffer>> {
        Ok(out.map(Buffer::from))
    }
}

/// Reads a small file in one trip to the thread pool (`fs.promises.readFile` takes four:
/// open, stat, read, close). Resolves to null when the file does not exist.
#[napi(ts_return_type = "Promise<Buffer | null>")]
pub fn read_small_file(path: String) -> AsyncTask<crate::error::Job<ReadFile>> {
    crate::job(ReadFile { path: path.into() })
}

/// Reads a small file on the calling thread; null when it does not exist. For the store's
/// metadata files (ids, links, records of a few KiB): a read from the page cache takes a few
/// microseconds, a trip to the thread pool and back 40-80.
#[napi]
pub fn read_small_file_sync(env: Env, path: String) -> Result<Option<Buffer>> {
    Ok(read_if_exists(std::path::Path::new(&path)).map_err(crate::throw(&env))?.map(Buffer::from))
}

/// Docker's size of each tree (`pkg/directory.Size`: non-directories' `st_size`, hard links
/// once), for many trees in one task.
#[napi(ts_return_type = "Promise<number[]>")]
pub fn tree_sizes(paths: Vec<String>) -> crate::BlockingTask<Vec<f64>> {
    crate::blocking(move || {
        paths
            .iter()
            .map(|p| strata_core::du::tree_size(std::path::Path::new(p)).map(|n| n as f64))
            .collect::<std::result::Result<Vec<f64>, _>>()
    })
}
