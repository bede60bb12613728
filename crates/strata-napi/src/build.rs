//! `strata build`'s native pieces (see `strata_core::build_ctx`, `strata_core::egress::build_commit`):
//! conversion only. Large results cross as one JSON string (a context of thousands of entries
//! converts field by field far slower than `JSON.parse` reads it); 64-bit times as decimal strings.
#![cfg_attr(test, allow(dead_code))]
use crate::cancel::NativeCancel;
use crate::BlockingTask;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use strata_core::build_add;
use strata_core::build_ctx::{self, CopyOp};
use strata_core::digest::Digest;
use strata_core::egress::build_commit;
use strata_core::error::ErrorCode;

type Outcome<T> = std::result::Result<T, crate::Failure>;

fn flag(cancel: Option<&NativeCancel>) -> Arc<AtomicBool> {
    NativeCancel::flag_of(cancel)
}

/// A file name for JSON: the string when it is UTF-8, else `{"b": base64}` (ts/internal/bytepath.ts).
fn wire(b: &[u8]) -> serde_json::Value {
    use base64::Engine;
    match std::str::from_utf8(b) {
        Ok(s) => serde_json::Value::String(s.to_owned()),
        Err(_) => serde_json::json!({ "b": base64::engine::general_purpose::STANDARD.encode(b) }),
    }
}

/// A file name from JSON (see [`wire`]).
#[derive(serde::Deserialize, Clone)]
#[serde(untagged)]
enum WirePath {
    Text(String),
    Bytes { b: String },
}

impl WirePath {
    fn into_bytes(self) -> Outcome<Vec<u8>> {
        use base64::Engine;
        match self {
            WirePath::Text(s) => Ok(s.into_bytes()),
            WirePath::Bytes { b } => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| crate::Failure::new(ErrorCode::InvalidArgument, format!("bad path bytes: {e}"))),
        }
    }
}

pub struct ScanDirs {
    root: PathBuf,
    dirs: Vec<Vec<u8>>,
}

impl crate::NativeTask for ScanDirs {
    type Output = String;
    type JsValue = String;
    fn compute(&mut self) -> Outcome<String> {
        let entries = build_ctx::scan_dirs(&self.root, &self.dirs)?;
        let rows: Vec<serde_json::Value> = entries
            .into_iter()
            .map(|e| {
                let xattrs: Vec<serde_json::Value> = e
                    .xattrs
                    .iter()
                    .map(|(k, v)| {
                        use base64::Engine;
                        serde_json::json!([wire(k), base64::engine::general_purpose::STANDARD.encode(v)])
                    })
                    .collect();
                serde_json::json!([
                    e.dir,
                    wire(&e.name),
                    e.mode,
                    e.uid,
                    e.gid,
                    e.size,
                    e.dev,
                    e.ino,
                    e.nlink,
                    e.mtime_ns.to_string(),
                    e.ctime_ns.to_string(),
                    e.link.map(|l| wire(&l)),
                    if xattrs.is_empty() { serde_json::Value::Null } else { serde_json::Value::Array(xattrs) },
                ])
            })
            .collect();
        Ok(serde_json::Value::Array(rows).to_string())
    }
    fn resolve(&mut self, _: Env, out: String) -> Result<Self::JsValue> {
        Ok(out)
    }
}

/// Lists `dirs` (relative to `root` as bytes, empty = the root) one level each, sorted, as a
/// JSON array of rows `[dirIndex, name, mode, uid, gid, size, dev, ino, nlink, mtimeNs, ctimeNs,
/// linkTarget|null, [[xattrName, base64Value], ...]|null]`; names and link targets are strings,
/// or `{"b": base64}` when they are not UTF-8 (ts/internal/bytepath.ts).
#[napi(ts_return_type = "Promise<string>")]
pub fn scan_dirs(root: String, dirs: Vec<Buffer>) -> AsyncTask<crate::error::Job<ScanDirs>> {
    crate::job(ScanDirs { root: root.into(), dirs: dirs.into_iter().map(|b| b.to_vec()).collect() })
}

/// What `hashFiles` found.
#[napi(object)]
pub struct NativeHashed {
    /// `sha256:<hex>` of each file, in order.
    pub digests: Vec<String>,
    pub bytes_read: f64,
}

impl From<build_ctx::Hashed> for NativeHashed {
    fn from(out: build_ctx::Hashed) -> Self {
        NativeHashed { digests: out.digests.iter().map(|d| d.to_string()).collect(), bytes_read: out.bytes_read as f64 }
    }
}

/// sha256 of files below `root` (relative paths as bytes, never through a symlink), on a few threads.
#[napi(ts_return_type = "Promise<NativeHashed>")]
pub fn hash_files(
    root: String,
    files: Vec<Buffer>,
    cancel: Option<&NativeCancel>,
) -> BlockingTask<build_ctx::Hashed, NativeHashed> {
    let files: Vec<Vec<u8>> = files.into_iter().map(|b| b.to_vec()).collect();
    let cancel = flag(cancel);
    crate::blocking(move || build_ctx::hash_files(Path::new(&root), &files, &cancel))
}

/// One COPY step as ts/build/copy.ts writes it (JSON): `op` is `mkdirs` | `dir` | `file` |
/// `symlink` | `hardlink` | `dirTimes`; paths of the destination are absolute in its rootfs,
/// `src` relative to the source root; `mtime` in ns as a decimal string.
/// Paths are strings or `{"b": base64}` (ts/internal/bytepath.ts); `xattrs` are `[name, base64 value]`
/// pairs set on the new file, directory or symlink.
#[derive(serde::Deserialize)]
struct CopyStep {
    op: String,
    dst: WirePath,
    src: Option<WirePath>,
    target: Option<WirePath>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<String>,
    expect: Option<String>,
    xattrs: Option<Vec<(WirePath, String)>>,
    /// `file`: try a hard link from the reuse root first (see `copyIn`).
    #[serde(default)]
    reuse: bool,
}

fn convert(s: CopyStep) -> Outcome<CopyOp> {
    use base64::Engine;
    let bad = |m: String| crate::Failure::new(ErrorCode::InvalidArgument, format!("copyIn: {m}"));
    let mtime_ns = s.mtime.as_deref().unwrap_or("0").parse::<i64>().map_err(|e| bad(format!("mtime: {e}")))?;
    let (mode, uid, gid) = (s.mode.unwrap_or(0o755), s.uid.unwrap_or(0), s.gid.unwrap_or(0));
    let need = |v: Option<WirePath>, what: &str| -> Outcome<Vec<u8>> {
        v.ok_or_else(|| bad(format!("{} needs {what}", s.op)))?.into_bytes()
    };
    let mut xattrs = Vec::new();
    for (k, v) in s.xattrs.clone().unwrap_or_default() {
        let value =
            base64::engine::general_purpose::STANDARD.decode(v).map_err(|e| bad(format!("xattr value: {e}")))?;
        xattrs.push((k.into_bytes()?, value));
    }
    let dst = s.dst.clone().into_bytes()?;
    Ok(match s.op.as_str() {
        "mkdirs" => CopyOp::Mkdirs { dst, mode, uid, gid },
        "dir" => CopyOp::Dir { dst, mode, uid, gid, mtime_ns, xattrs },
        "file" => CopyOp::File {
            src: need(s.src.clone(), "src")?,
            dst,
            mode,
            uid,
            gid,
            mtime_ns,
            expect: s.expect.as_deref().map(Digest::parse).transpose()?,
            xattrs,
            reuse: s.reuse,
        },
        "symlink" => CopyOp::Symlink { dst, target: need(s.target.clone(), "target")?, uid, gid, mtime_ns, xattrs },
        "hardlink" => CopyOp::Hardlink { dst, to: need(s.target.clone(), "target")? },
        "dirTimes" => CopyOp::DirTimes { dst, mtime_ns },
        other => return Err(bad(format!("unknown step {other:?}"))),
    })
}

/// What `copyIn` did.
#[napi(object)]
pub struct NativeCopied {
    pub files: f64,
    pub bytes: f64,
}

pub struct CopyIn {
    src: PathBuf,
    dst: PathBuf,
    reuse: Option<PathBuf>,
    ops: Vec<CopyOp>,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for CopyIn {
    type Output = build_ctx::Copied;
    type JsValue = NativeCopied;
    fn compute(&mut self) -> Outcome<Self::Output> {
        Ok(build_ctx::copy_in_reusing(&self.src, &self.dst, self.reuse.as_deref(), &self.ops, &self.cancel)?)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<NativeCopied> {
        Ok(NativeCopied { files: out.files as f64, bytes: out.bytes as f64 })
    }
}

/// Carries out a COPY's steps (a JSON array) from `srcRoot` into the rootfs at `dstRoot`; `file`
/// steps marked `reuse` are hard-linked from the same path below `reuseRoot` when what is there
/// has their mode, owner and mtime (strata_core::build_ctx::copy_in_reusing).
#[napi(ts_return_type = "Promise<NativeCopied>")]
pub fn copy_in(
    env: Env,
    src_root: String,
    dst_root: String,
    steps_json: String,
    cancel: Option<&NativeCancel>,
    reuse_root: Option<String>,
) -> Result<AsyncTask<crate::error::Job<CopyIn>>> {
    let steps: Vec<CopyStep> = serde_json::from_str(&steps_json).map_err(|e| {
        crate::Failure::new(ErrorCode::InvalidArgument, format!("copyIn: bad steps: {e}")).into_js(&env)
    })?;
    let ops = steps.into_iter().map(convert).collect::<Outcome<Vec<_>>>().map_err(|e| e.into_js(&env))?;
    Ok(crate::job(CopyIn {
        src: src_root.into(),
        dst: dst_root.into(),
        reuse: reuse_root.map(PathBuf::from),
        ops,
        cancel: flag(cancel),
    }))
}

/// A path of a rootfs, as `statInRoot` found it.
#[napi(object)]
pub struct NativeRootStat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: f64,
}

/// `stat` of `path` inside the rootfs at `root` (symlinks followed inside it), or null. Synchronous:
/// one `openat2` + `fstat`.
#[napi]
pub fn stat_in_root(env: Env, root: String, path: String) -> Result<Option<NativeRootStat>> {
    Ok(build_ctx::stat_in_root(std::path::Path::new(&root), path.as_bytes())
        .map_err(crate::throw(&env))?
        .map(|s| NativeRootStat { mode: s.mode, uid: s.uid, gid: s.gid, size: s.size as f64 }))
}

/// The first `limit` bytes of a file inside the rootfs at `root`, or null. Synchronous (small files).
#[napi]
pub fn read_in_root(env: Env, root: String, path: String, limit: u32) -> Result<Option<Buffer>> {
    Ok(build_ctx::read_in_root(std::path::Path::new(&root), path.as_bytes(), limit as u64)
        .map_err(crate::throw(&env))?
        .map(Buffer::from))
}

/// Whether ADD unpacks the file at `path` (a tar: plain, gzip, bzip2 or xz — what Docker
/// 20.10's builder unpacks).
#[napi(ts_return_type = "Promise<boolean>")]
pub fn is_archive(path: String) -> BlockingTask<bool> {
    crate::blocking(move || build_add::is_archive(Path::new(&path)))
}

/// ADD of a local archive: unpacks the tar at `path` (plain, gzip, bzip2 or xz) into `dest`
/// (made; must not exist), its tar-split to `tarSplit`.
#[napi(ts_return_type = "Promise<void>")]
pub fn unpack_archive(
    path: String,
    dest: String,
    tar_split: String,
    cancel: Option<&NativeCancel>,
) -> BlockingTask<()> {
    let cancel = flag(cancel);
    crate::blocking(move || {
        build_add::unpack(Path::new(&path), Path::new(&dest), Path::new(&tar_split), &cancel).map(|_| ())
    })
}

/// What `sealLayer` found.
#[napi(object)]
pub struct NativeSealed {
    pub diff_id: String,
    pub size: f64,
    pub tar_size: f64,
    pub entries: f64,
}

impl From<build_commit::Sealed> for NativeSealed {
    fn from(out: build_commit::Sealed) -> Self {
        NativeSealed {
            diff_id: out.diff_id.to_string(),
            size: out.size as f64,
            tar_size: out.tar_size as f64,
            entries: out.entries as f64,
        }
    }
}

/// Commit by rename: describes the layer whose files are in `diff` (a build step's unmounted
/// upper dir, already in its final place) — DiffID, size, tar-split written to `tarSplit` — in
/// one walk that also drops overlay's bookkeeping xattrs.
#[napi(ts_return_type = "Promise<NativeSealed>")]
pub fn seal_layer(
    diff: String,
    tar_split: String,
    cancel: Option<&NativeCancel>,
) -> BlockingTask<build_commit::Sealed, NativeSealed> {
    let cancel = flag(cancel);
    crate::blocking(move || build_commit::seal_layer(Path::new(&diff), Path::new(&tar_split), &cancel))
}
