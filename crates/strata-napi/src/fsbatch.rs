//! `fsBatch`: a list of file-system steps in one task (see `strata_core::fsbatch`).
#![cfg_attr(test, allow(dead_code))]
use crate::Failure;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use strata_core::error::ErrorCode;
use strata_core::fsbatch::{self, FsOp};

/// One step, as ts/native.ts's `NativeFsOp` serializes it: `op` is `mkdir` | `write` | `writeNew` |
/// `symlink` | `rename` | `renameIfExists` | `unlink` | `removeAll` | `syncfs`. `target` is the
/// symlink target or the rename destination; `data` the file contents (UTF-8); `mode` applies to
/// `mkdir`/`write`/`writeNew`.
#[derive(serde::Deserialize)]
pub struct NativeFsOp {
    pub op: String,
    pub path: String,
    pub target: Option<String>,
    pub data: Option<String>,
    pub mode: Option<u32>,
}

/// A malformed step: ts/native.ts built it, so this is a bug in strata.
fn bad_step(msg: String) -> Failure {
    Failure::new(ErrorCode::Internal, format!("fsBatch: {msg}"))
}

fn convert(o: NativeFsOp) -> std::result::Result<FsOp, Failure> {
    let path = o.path.into();
    let target = || o.target.clone().ok_or_else(|| bad_step(format!("{} needs a target", o.op)));
    Ok(match o.op.as_str() {
        "mkdir" => FsOp::Mkdir { path, mode: o.mode.unwrap_or(0o755) },
        "write" | "writeNew" => FsOp::Write {
            path,
            data: o.data.clone().unwrap_or_default().into_bytes(),
            mode: o.mode.unwrap_or(0o644),
            exclusive: o.op == "writeNew",
        },
        "symlink" => FsOp::Symlink { target: target()?.into(), path },
        "rename" | "renameIfExists" => {
            FsOp::Rename { from: path, to: target()?.into(), missing_ok: o.op == "renameIfExists" }
        }
        "unlink" => FsOp::Remove { path },
        "removeAll" => FsOp::RemoveAll { path },
        "syncfs" => FsOp::SyncFs { path },
        other => return Err(bad_step(format!("unknown step {other:?}"))),
    })
}

pub struct FsBatch {
    ops: Vec<FsOp>,
}

impl crate::NativeTask for FsBatch {
    type Output = ();
    type JsValue = ();
    fn compute(&mut self) -> std::result::Result<(), Failure> {
        Ok(fsbatch::run(&self.ops)?)
    }
    fn resolve(&mut self, _: Env, _: ()) -> Result<()> {
        Ok(())
    }
}

/// Runs the steps (a JSON array of `NativeFsOp`) in order off the JS thread, stopping at the
/// first failure (an `Io` StrataError naming the step's path). One string crosses the boundary:
/// converting dozens of JS objects field by field costs more than the steps' own syscalls.
#[napi(ts_return_type = "Promise<void>")]
pub fn fs_batch(env: Env, ops_json: String) -> Result<AsyncTask<crate::error::Job<FsBatch>>> {
    let ops: Vec<NativeFsOp> =
        serde_json::from_str(&ops_json).map_err(|e| bad_step(format!("bad steps: {e}")).into_js(&env))?;
    let ops = ops.into_iter().map(convert).collect::<std::result::Result<Vec<_>, _>>().map_err(crate::throw(&env))?;
    Ok(crate::job(FsBatch { ops }))
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

pub struct TreeSizes {
    paths: Vec<String>,
}

impl crate::NativeTask for TreeSizes {
    type Output = Vec<f64>;
    type JsValue = Vec<f64>;
    fn compute(&mut self) -> std::result::Result<Vec<f64>, Failure> {
        self.paths
            .iter()
            .map(|p| strata_core::du::tree_size(std::path::Path::new(p)).map(|n| n as f64).map_err(Failure::from))
            .collect()
    }
    fn resolve(&mut self, _: Env, out: Vec<f64>) -> Result<Vec<f64>> {
        Ok(out)
    }
}

/// Docker's size of each tree (`pkg/directory.Size`: non-directories' `st_size`, hard links
/// once), for many trees in one task.
#[napi(ts_return_type = "Promise<number[]>")]
pub fn tree_sizes(paths: Vec<String>) -> AsyncTask<crate::error::Job<TreeSizes>> {
    crate::job(TreeSizes { paths })
}
