//! napi binding of push's uploads: `NativeRegistryClient.pushBlobs` (an impl block of the
//! client declared in `registry.rs`). Conversion only; the upload protocol is
//! `strata_registry::push`. One call uploads every blob of a push on threads of its own (at
//! most five at once, Docker's default), so a push holds one libuv pool thread whatever the
//! number of layers; the HEADs, mounts and the manifest go through `request` from TS.
use crate::cancel::NativeCancel;
use crate::error::Job;
use crate::registry::NativeRegistryClient;
use crate::Failure;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use strata_core::digest::{DiffId, Digest};
use strata_registry::push::{self, BlobSource, Uploaded};
use strata_registry::{Client, RegistryError};

/// Uploads at once (Docker's `max-concurrent-uploads` default).
const UPLOADS_AT_ONCE: usize = 5;

/// A blob to upload: exactly one of `file`, `bytes`, `diffDir`.
#[napi(object)]
pub struct NativeBlobToSend {
    /// A file whose digest and size are known (a kept compressed blob).
    pub file: Option<String>,
    /// Small bytes (the config).
    pub bytes: Option<Buffer>,
    /// The digest of `file` / `bytes`.
    pub digest: Option<String>,
    /// The size of `file`.
    pub size: Option<i64>,
    /// A layer to gzip while it uploads: its diff dir, tar-split and DiffID, and the file the
    /// gzip bytes are also written to (kept so the next push does not compress again).
    pub diff_dir: Option<String>,
    pub tar_split: Option<String>,
    pub diff_id: Option<String>,
    pub keep: Option<String>,
    /// Send the layer as its uncompressed tar (its blob digest is its DiffID); `keep` is then
    /// scratch space for the chunked fallback.
    pub uncompressed: Option<bool>,
}

#[napi(object)]
pub struct NativeUploaded {
    pub digest: String,
    pub size: i64,
}

type UploadProgress = ThreadsafeFunction<FnArgs<(u32, f64, bool)>, (), FnArgs<(u32, f64, bool)>, Status, false>;

type Outcome<T> = std::result::Result<T, Failure>;

fn invalid(msg: &str) -> Failure {
    RegistryError::Invalid(msg.into()).into()
}

fn digest(s: Option<&str>, what: &str) -> Outcome<Digest> {
    Ok(Digest::parse(s.ok_or_else(|| invalid(&format!("{what}: digest missing")))?)?)
}

fn source_of(b: &NativeBlobToSend) -> Outcome<BlobSource> {
    match (&b.file, &b.bytes, &b.diff_dir) {
        (Some(path), None, None) => Ok(BlobSource::File {
            path: path.into(),
            digest: digest(b.digest.as_deref(), "file blob")?,
            size: u64::try_from(b.size.ok_or_else(|| invalid("a file blob needs its size"))?)
                .map_err(|_| invalid("size must be >= 0"))?,
        }),
        (None, Some(data), None) => Ok(BlobSource::Bytes {
            data: bytes::Bytes::copy_from_slice(data),
            digest: digest(b.digest.as_deref(), "bytes blob")?,
        }),
        (None, None, Some(diff_dir)) if b.uncompressed == Some(true) => Ok(BlobSource::Tar {
            diff_dir: diff_dir.into(),
            tar_split: b.tar_split.as_deref().ok_or_else(|| invalid("a layer needs its tar-split"))?.into(),
            diff_id: DiffId::from_digest(digest(b.diff_id.as_deref(), "layer")?),
            scratch: b.keep.as_deref().ok_or_else(|| invalid("a layer needs a scratch file"))?.into(),
        }),
        (None, None, Some(diff_dir)) => Ok(BlobSource::Layer {
            diff_dir: diff_dir.into(),
            tar_split: b.tar_split.as_deref().ok_or_else(|| invalid("a layer needs its tar-split"))?.into(),
            diff_id: DiffId::from_digest(digest(b.diff_id.as_deref(), "layer")?),
            keep: b.keep.as_deref().ok_or_else(|| invalid("a layer needs a keep file"))?.into(),
            workers: strata_core::ingest::layer::max_workers(),
        }),
        _ => Err(invalid("a blob is exactly one of file, bytes, diffDir")),
    }
}

/// Runs `f` over `items` on up to `limit` threads; results in order. The first error wins and
/// sets `stop` (the requests in flight poll it as their cancel flag, so the others end early);
/// a `stop` set from outside ends the run as `Aborted`.
fn fan_out<T: Sync, R: Send>(
    items: &[T],
    limit: usize,
    stop: &AtomicBool,
    f: impl Fn(usize, &T) -> std::result::Result<R, RegistryError> + Sync,
) -> std::result::Result<Vec<R>, RegistryError> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let fail = |e: RegistryError| {
        let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
        // An abort caused by another failure must not hide that failure.
        if slot.is_none() || matches!(*slot, Some(RegistryError::Aborted)) {
            *slot = Some(e);
        }
        stop.store(true, Ordering::SeqCst);
    };
    std::thread::scope(|s| {
        for _ in 0..limit.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    return;
                }
                if stop.load(Ordering::SeqCst) {
                    fail(RegistryError::Aborted);
                    return;
                }
                match f(i, &items[i]) {
                    Ok(r) => results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r),
                    Err(e) => fail(e),
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.ok_or(RegistryError::Aborted))
        .collect()
}

/// A flag set when `caller` is set (watched every 20 ms) or by the run itself on a failure:
/// the requests of one batch stop together.
fn linked_cancel<R>(caller: &Arc<AtomicBool>, run: impl FnOnce(&Arc<AtomicBool>) -> R) -> R {
    let inner = Arc::new(AtomicBool::new(caller.load(Ordering::SeqCst)));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if caller.load(Ordering::SeqCst) {
                    inner.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let r = run(&inner);
        done.store(true, Ordering::SeqCst);
        r
    })
}

pub struct PushBlobs {
    client: Arc<Client>,
    repo: String,
    blobs: Vec<BlobSource>,
    progress: Option<Arc<UploadProgress>>,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for PushBlobs {
    type Output = Vec<Uploaded>;
    type JsValue = Vec<NativeUploaded>;
    fn compute(&mut self) -> Outcome<Self::Output> {
        let (client, repo, blobs) = (&self.client, &self.repo, &self.blobs);
        let progress = &self.progress;
        linked_cancel(&self.cancel, |cancel| {
            fan_out(blobs, UPLOADS_AT_ONCE, cancel, |i, b| {
                let f = progress.clone();
                // Never block an upload on JS: NonBlocking, and a dropped report is superseded by the next.
                let report: push::Progress = Arc::new(move |n| {
                    if let Some(f) = &f {
                        f.call((i as u32, n as f64, false).into(), ThreadsafeFunctionCallMode::NonBlocking);
                    }
                });
                let out = push::upload(client, repo, b, report, cancel)?;
                if let Some(f) = &progress {
                    f.call((i as u32, out.size as f64, true).into(), ThreadsafeFunctionCallMode::NonBlocking);
                }
                Ok(out)
            })
        })
        .map_err(Failure::from)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(out.into_iter().map(|u| NativeUploaded { digest: u.digest.to_string(), size: u.size as i64 }).collect())
    }
}

#[napi]
impl NativeRegistryClient {
    /// Uploads blobs into `repository` (see `strata_registry::push::upload`), at most five at
    /// once; `onProgress(index, bytesSent, done)`. The first failure stops the others.
    #[napi(
        ts_args_type = "repository: string, blobs: NativeBlobToSend[], onProgress?: ((index: number, bytes: number, done: boolean) => void) | undefined | null, cancel?: NativeCancel | undefined | null",
        ts_return_type = "Promise<NativeUploaded[]>"
    )]
    pub fn push_blobs(
        &self,
        env: Env,
        repository: String,
        blobs: Vec<NativeBlobToSend>,
        on_progress: Option<UploadProgress>,
        cancel: Option<&NativeCancel>,
    ) -> Result<AsyncTask<Job<PushBlobs>>> {
        let blobs = blobs.iter().map(source_of).collect::<Outcome<Vec<_>>>().map_err(|f| f.into_js(&env))?;
        let cancel = NativeCancel::flag_of(cancel);
        Ok(crate::job(PushBlobs {
            client: self.client.clone(),
            repo: repository,
            blobs,
            progress: on_progress.map(Arc::new),
            cancel,
        }))
    }
}
