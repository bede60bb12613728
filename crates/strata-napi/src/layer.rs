//! Layer archives: apply blobs (parallel, with progress and cancellation), index, decompress
//! and write outer archives, assemble layer tars. Conversion only; the work is in
//! `strata_core::{layer, archive, tarsplit}`.
// napi-derive registers exports only outside cfg(test), so the test build sees them unused.
#![cfg_attr(test, allow(dead_code))]
use crate::cancel::NativeCancel;
use crate::error::Job;
use crate::Failure;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use strata_core::digest::{BlobDigest, DiffId};
use strata_core::egress::archive::{self, MemberData, OutMember};
use strata_core::error::ErrorCode;
use strata_core::ingest::layer::{self, ApplyRequest, BlobSource};

/// One layer blob to apply.
#[napi(object)]
pub struct NativeApplyRequest {
    /// File holding the blob (a layer file, or an outer archive).
    pub blob_path: String,
    /// Byte offset of the blob in `blobPath` (0 for a whole file).
    pub offset: Option<i64>,
    /// Blob length; to the end of the file when absent.
    pub length: Option<i64>,
    /// The layer's `diff/`; must not exist.
    pub dest: String,
    /// Where to write `tar-split.json.gz`; must not exist.
    pub tar_split: String,
    /// `sha256:...` the uncompressed tar must hash to.
    pub expected_diff_id: Option<String>,
    /// `sha256:...` the blob as stored must hash to.
    pub expected_digest: Option<String>,
}

/// What applying one layer found.
#[napi(object)]
pub struct NativeApplyResult {
    pub diff_id: String,
    /// sha256 of the blob as read (the compressed digest).
    pub digest: String,
    #[napi(ts_type = "'none' | 'gzip' | 'zstd'")]
    pub compression: String,
    /// Sum of regular file sizes (Docker's layer size).
    pub size: i64,
    /// Length of the uncompressed tar.
    pub tar_size: i64,
    /// Blob bytes read.
    pub blob_size: i64,
    pub entries: i64,
}

impl From<&strata_core::ingest::layer::ApplyResult> for NativeApplyResult {
    fn from(r: &strata_core::ingest::layer::ApplyResult) -> Self {
        NativeApplyResult {
            diff_id: r.diff_id.to_string(),
            digest: r.digest.to_string(),
            compression: r.compression.as_str().into(),
            size: r.size as i64,
            tar_size: r.tar_size as i64,
            blob_size: r.blob_size as i64,
            entries: r.entries as i64,
        }
    }
}

/// `FnArgs` makes the tuple arrive as two JS arguments rather than one array.
type ProgressFn = ThreadsafeFunction<FnArgs<(u32, f64)>, (), FnArgs<(u32, f64)>, Status, false>;

/// A caller mistake, reported with the `InvalidArgument` code.
fn invalid(msg: String) -> Failure {
    Failure::new(ErrorCode::InvalidArgument, msg)
}

type Outcome<T> = std::result::Result<T, Failure>;

fn non_negative(v: Option<i64>, what: &str) -> Outcome<Option<u64>> {
    match v {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        Some(n) => Err(invalid(format!("{what} must be >= 0, got {n}"))),
    }
}

fn diff_id(s: &Option<String>) -> Outcome<Option<DiffId>> {
    Ok(s.as_deref().map(DiffId::parse).transpose()?)
}

fn blob_digest(s: &Option<String>) -> Outcome<Option<BlobDigest>> {
    Ok(s.as_deref().map(BlobDigest::parse).transpose()?)
}

fn convert(r: &NativeApplyRequest) -> Outcome<ApplyRequest> {
    Ok(ApplyRequest {
        source: BlobSource {
            path: PathBuf::from(&r.blob_path),
            offset: non_negative(r.offset, "offset")?.unwrap_or(0),
            length: non_negative(r.length, "length")?,
        },
        dest: PathBuf::from(&r.dest),
        tar_split: PathBuf::from(&r.tar_split),
        expected_diff_id: diff_id(&r.expected_diff_id)?,
        expected_digest: blob_digest(&r.expected_digest)?,
    })
}

pub struct ApplyLayers {
    requests: Vec<NativeApplyRequest>,
    progress: Option<ProgressFn>,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for ApplyLayers {
    type Output = Vec<layer::ApplyResult>;
    type JsValue = Vec<NativeApplyResult>;
    fn compute(&mut self) -> Outcome<Self::Output> {
        let reqs = self.requests.iter().map(convert).collect::<Outcome<Vec<_>>>()?;
        let tsfn = self.progress.as_ref();
        // Never block a worker on JS: progress is queued NonBlocking and dropped if the
        // queue is full (the next report supersedes it anyway).
        let progress = |i: usize, bytes: u64| {
            if let Some(f) = tsfn {
                f.call((i as u32, bytes as f64).into(), ThreadsafeFunctionCallMode::NonBlocking);
            }
        };
        Ok(layer::apply_layers(&reqs, &progress, &self.cancel)?)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(out.iter().map(NativeApplyResult::from).collect())
    }
}

/// Applies layer blobs in parallel: decompress (auto-detected) → sha256 → safe extraction
/// into `dest` + tar-split. All or nothing: on any failure every `dest` is removed.
/// `onProgress(index, bytes)` reports blob bytes read so far for request `index`.
#[napi(
    ts_args_type = "requests: NativeApplyRequest[], onProgress?: ((index: number, bytes: number) => void) | undefined | null, cancel?: NativeCancel | undefined | null",
    ts_return_type = "Promise<NativeApplyResult[]>"
)]
pub fn apply_layers(
    requests: Vec<NativeApplyRequest>,
    on_progress: Option<ProgressFn>,
    cancel: Option<&NativeCancel>,
) -> AsyncTask<Job<ApplyLayers>> {
    let cancel = NativeCancel::flag_of(cancel);
    crate::job(ApplyLayers { requests, progress: on_progress, cancel })
}

/// One member of an outer archive.
#[napi(object)]
pub struct NativeArchiveMember {
    /// Name without leading `./` or trailing `/` (lossy if not UTF-8; see `nameRaw`).
    pub name: String,
    /// The exact name bytes, only when they are not UTF-8.
    pub name_raw: Option<Buffer>,
    #[napi(ts_type = "'file' | 'dir' | 'symlink' | 'hardlink' | 'other'")]
    pub kind: String,
    pub linkname: Option<String>,
    /// Byte offset of the body in the archive file.
    pub offset: i64,
    pub size: i64,
}

pub struct ArchiveIndex {
    path: String,
}

impl crate::NativeTask for ArchiveIndex {
    type Output = Vec<archive::Member>;
    type JsValue = Vec<NativeArchiveMember>;
    fn compute(&mut self) -> Outcome<Self::Output> {
        Ok(archive::index(std::path::Path::new(&self.path))?)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(out
            .into_iter()
            .map(|m| {
                let utf8 = std::str::from_utf8(&m.name).is_ok();
                NativeArchiveMember {
                    name: String::from_utf8_lossy(&m.name).into_owned(),
                    name_raw: if utf8 { None } else { Some(Buffer::from(m.name.clone())) },
                    kind: m.kind.as_str().into(),
                    linkname: m.linkname.map(|l| String::from_utf8_lossy(&l).into_owned()),
                    offset: m.offset as i64,
                    size: m.size as i64,
                }
            })
            .collect())
    }
}

/// Lists the members of an uncompressed outer tar (docker-archive / OCI layout) without
/// reading their bodies.
#[napi(ts_return_type = "Promise<NativeArchiveMember[]>")]
pub fn archive_index(path: String) -> AsyncTask<Job<ArchiveIndex>> {
    crate::job(ArchiveIndex { path })
}

/// Decompresses a gzip/zstd outer archive `src` into `dst` (a plain one is copied);
/// resolves to the detected compression.
#[napi(
    ts_args_type = "src: string, dst: string, cancel?: NativeCancel | undefined | null",
    ts_return_type = "Promise<'none' | 'gzip' | 'zstd'>"
)]
pub fn decompress_file(src: String, dst: String, cancel: Option<&NativeCancel>) -> crate::BlockingTask<String> {
    let cancel = NativeCancel::flag_of(cancel);
    crate::blocking(move || {
        archive::decompress_file(src.as_ref(), dst.as_ref(), &cancel).map(|c| c.as_str().to_string())
    })
}

/// A layer member of an archive being written: assembled from `diffDir` + `tarSplit`.
#[napi(object)]
pub struct NativeLayerRef {
    pub diff_dir: String,
    pub tar_split: String,
    /// The DiffID the assembled tar must have (verified while streaming).
    pub diff_id: String,
}

/// A member of an archive being written: `data` (a file), `layer`, or neither (a directory).
#[napi(object)]
pub struct NativeOutMember {
    pub name: String,
    pub data: Option<Buffer>,
    pub layer: Option<NativeLayerRef>,
}

enum Pending {
    /// Both `data` and `layer` given: rejected from `compute` so the promise rejects.
    Ambiguous,
    Bytes(Vec<u8>),
    Dir,
    Layer {
        diff_dir: String,
        tar_split: String,
        diff_id: String,
    },
}

pub struct WriteArchive {
    members: Vec<(String, Pending)>,
    out: String,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for WriteArchive {
    type Output = ();
    type JsValue = ();
    fn compute(&mut self) -> Outcome<()> {
        let mut members = Vec::with_capacity(self.members.len());
        for (name, p) in std::mem::take(&mut self.members) {
            let data = match p {
                Pending::Ambiguous => return Err(invalid(format!("member {name}: both data and layer given"))),
                Pending::Bytes(b) => MemberData::Bytes(b),
                Pending::Dir => MemberData::Dir,
                Pending::Layer { diff_dir, tar_split, diff_id } => MemberData::Layer {
                    diff_dir: diff_dir.into(),
                    tar_split: tar_split.into(),
                    diff_id: DiffId::parse(&diff_id)?,
                },
            };
            members.push(OutMember { name, data });
        }
        archive::write_archive(&members, self.out.as_ref(), &self.cancel)?;
        Ok(())
    }
    fn resolve(&mut self, _: Env, _: ()) -> Result<()> {
        Ok(())
    }
}

/// Writes an outer archive (deterministic headers); layer members are assembled from
/// their tar-split and verified against their DiffID while streaming.
#[napi(
    ts_args_type = "members: NativeOutMember[], out: string, cancel?: NativeCancel | undefined | null",
    ts_return_type = "Promise<void>"
)]
pub fn write_archive(
    members: Vec<NativeOutMember>,
    out: String,
    cancel: Option<&NativeCancel>,
) -> AsyncTask<Job<WriteArchive>> {
    let mut pending = Vec::with_capacity(members.len());
    for m in members {
        let p = match (m.data, m.layer) {
            (Some(_), Some(_)) => Pending::Ambiguous,
            // Copied here, on the JS thread: the task must not touch JS memory.
            (Some(d), None) => Pending::Bytes(d.to_vec()),
            (None, Some(l)) => Pending::Layer { diff_dir: l.diff_dir, tar_split: l.tar_split, diff_id: l.diff_id },
            (None, None) => Pending::Dir,
        };
        pending.push((m.name, p));
    }
    let cancel = NativeCancel::flag_of(cancel);
    crate::job(WriteArchive { members: pending, out, cancel })
}

/// Writes one layer tar (e.g. an OCI blob) assembled from `diffDir` + `tarSplit`,
/// verifying `diffId`.
#[napi(
    ts_args_type = "diffDir: string, tarSplit: string, out: string, diffId: string, cancel?: NativeCancel | undefined | null",
    ts_return_type = "Promise<void>"
)]
pub fn write_layer_file(
    diff_dir: String,
    tar_split: String,
    out: String,
    diff_id: String,
    cancel: Option<&NativeCancel>,
) -> crate::BlockingTask<()> {
    let cancel = NativeCancel::flag_of(cancel);
    crate::blocking(move || -> Outcome<()> {
        let id = DiffId::parse(&diff_id)?;
        archive::write_layer_file(diff_dir.as_ref(), tar_split.as_ref(), out.as_ref(), &id, &cancel)?;
        Ok(())
    })
}

/// Length of the tar that a layer's tar-split assembles to (reads only the tar-split).
#[napi]
pub fn assembled_size(env: Env, tar_split: String) -> Result<i64> {
    strata_core::ingest::tarsplit::assembled_size(tar_split.as_ref()).map(|n| n as i64).map_err(crate::throw(&env))
}
