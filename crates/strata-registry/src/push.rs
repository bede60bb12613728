//! Push: blobs and manifests into a repository, by the distribution spec's upload protocol.
//!
//! * `HEAD /v2/<name>/blobs/<digest>` — is the blob there, and how long is it.
//! * `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>` — cross-repository mount: 201
//!   means mounted; 202 means the registry opened an upload session instead, which is deleted
//!   (the caller then uploads, with its own progress).
//! * Upload: `POST /v2/<name>/blobs/uploads/` (202, `Location`), then
//!   - a blob whose digest is known (a file on disk, the config): one `PUT <location>?digest=`
//!     with the whole body (monolithic, `Content-Length`);
//!   - a layer compressed while it uploads: one streaming `PATCH <location>` (chunked transfer)
//!     whose body is the compressor's output, then `PUT <location>?digest=` of what was sent;
//!   - registries that refuse either form (400/411/413/416/501 to the body request) get the
//!     blob in chunks: `PATCH` with `Content-Range: start-end` and `Content-Length`, from the
//!     file on disk (the compressed layer is finished into its keep file first).
//!
//!   A session that failed part-way is never continued: bytes the registry half-received would
//!   corrupt the blob, so the upload starts again from `POST` (up to [`UPLOAD_ATTEMPTS`]).
//! * `PUT /v2/<name>/manifests/<reference>` — 201, `Docker-Content-Digest` checked against the
//!   sha256 of the bytes sent.
//!
//! Tokens: every request of a push asks for `repository:<name>:pull,push` (plus
//! `repository:<from>:pull` for a mount), so one push needs one token (two per mount source).
use crate::client::{Body, Client, Request};
use crate::error::RegistryError;
use bytes::Bytes;
use reqwest::Method;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use strata_core::digest::{DiffId, Digest};
use strata_core::egress::gzlayer::{self, GzBlob, GzLayerError};
use strata_core::ingest::stream::Fault;

/// Times an upload is started afresh after a failure (the client already retried each request).
pub const UPLOAD_ATTEMPTS: u32 = 3;
/// Chunk size of the chunked fallback.
pub const FALLBACK_CHUNK: u64 = 16 << 20;
/// Statuses with which a registry refuses a whole-body PATCH/PUT (then: chunked).
const REFUSES_BODY: [u16; 5] = [400, 411, 413, 416, 501];

/// Reports bytes sent so far for one blob (called from upload threads).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// What to upload.
#[derive(Clone, Debug)]
pub enum BlobSource {
    /// Bytes on disk whose digest and size are known (a pulled or remembered blob).
    File { path: PathBuf, digest: Digest, size: u64 },
    /// Small bytes (the image config).
    Bytes { data: Bytes, digest: Digest },
    /// A layer to gzip while it uploads; the gzip bytes are also written to `keep`.
    Layer { diff_dir: PathBuf, tar_split: PathBuf, diff_id: DiffId, keep: PathBuf, workers: usize },
    /// A layer sent as its uncompressed tar (it came that way: its blob digest is its DiffID),
    /// reassembled from the diff dir and tar-split while it uploads.
    /// `scratch` is where the chunked fallback assembles it first.
    Tar { diff_dir: PathBuf, tar_split: PathBuf, diff_id: DiffId, scratch: PathBuf },
}

/// A blob now in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    pub digest: Digest,
    pub size: u64,
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn location_of(resp_location: Option<&str>, what: &str) -> Result<String, RegistryError> {
    resp_location.filter(|l| !l.is_empty()).map(str::to_owned).ok_or_else(|| RegistryError::Status {
        status: 202,
        registry_code: None,
        message: format!("{what}: the registry gave no upload location"),
    })
}

/// `location` with `key=value` added to its query.
fn with_query(location: &str, key: &str, value: &str) -> String {
    let enc: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={enc}")
}

/// The blob's size if `repo` has it.
pub fn blob_size(
    client: &Client,
    repo: &str,
    digest: &Digest,
    cancel: &Arc<AtomicBool>,
) -> Result<Option<u64>, RegistryError> {
    let mut req = Request::new(Method::HEAD, format!("/v2/{repo}/blobs/{digest}")).scope(push_scope(repo));
    req.accept = vec![200, 404];
    let r = client.request(&req, cancel)?;
    if r.status == 404 {
        return Ok(None);
    }
    Ok(Some(r.header("content-length").and_then(|v| v.parse().ok()).ok_or_else(|| RegistryError::Status {
        status: r.status,
        registry_code: None,
        message: format!("HEAD of blob {digest} in {repo} answered without Content-Length"),
    })?))
}

/// Mounts `digest` from `from` (same registry) into `repo`: its size once mounted, or None.
pub fn mount_blob(
    client: &Client,
    repo: &str,
    digest: &Digest,
    from: &str,
    cancel: &Arc<AtomicBool>,
) -> Result<Option<u64>, RegistryError> {
    let target = with_query(&with_query(&format!("/v2/{repo}/blobs/uploads/"), "mount", digest.as_str()), "from", from);
    let mut req = Request::new(Method::POST, target).scope(push_scope(repo)).scope(format!("repository:{from}:pull"));
    req.accept = vec![201, 202];
    // Some registries refuse a mount they cannot do with 4xx; that only means "upload it".
    req.accept.extend([400, 401, 403, 404]);
    let r = client.request(&req, cancel)?;
    match r.status {
        201 => blob_size(client, repo, digest, cancel),
        202 => {
            if let Some(loc) = r.header("location") {
                cancel_session(client, repo, loc, cancel);
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Deletes an upload session (best effort: it expires on the registry anyway).
fn cancel_session(client: &Client, repo: &str, location: &str, cancel: &Arc<AtomicBool>) {
    let mut req = Request::new(Method::DELETE, location).scope(push_scope(repo));
    req.accept = (200..600).collect();
    let _ = client.request(&req, cancel);
}

fn start_session(client: &Client, repo: &str, cancel: &Arc<AtomicBool>) -> Result<String, RegistryError> {
    let mut req = Request::new(Method::POST, format!("/v2/{repo}/blobs/uploads/")).scope(push_scope(repo));
    req.accept = vec![202];
    let r = client.request(&req, cancel)?;
    location_of(r.header("location"), &format!("upload to {repo}"))
}

/// A reader that reports how many bytes went through it.
struct Counting<R> {
    inner: R,
    n: u64,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        (self.progress)(self.n);
        Ok(k)
    }
}

/// Why one upload attempt failed: start again, fall back to chunks, or give up.
enum Attempt {
    Retry(RegistryError),
    Chunked,
    Fatal(RegistryError),
}

impl From<RegistryError> for Attempt {
    fn from(e: RegistryError) -> Self {
        match e {
            // Connection trouble the client's own retries did not cure, or a registry that
            // failed mid-session: a fresh session may work.
            RegistryError::Unreachable { .. } => Attempt::Retry(e),
            RegistryError::Status { status, .. } if status >= 500 => Attempt::Retry(e),
            other => Attempt::Fatal(other),
        }
    }
}

/// Uploads one blob (see the module docs); `progress` gets the bytes sent of the current try.
pub fn upload(
    client: &Client,
    repo: &str,
    src: &BlobSource,
    progress: Progress,
    cancel: &Arc<AtomicBool>,
) -> Result<Uploaded, RegistryError> {
    let mut chunked = false;
    let mut last: Option<RegistryError> = None;
    for _ in 0..UPLOAD_ATTEMPTS {
        if cancel.load(Ordering::Relaxed) {
            return Err(RegistryError::Aborted);
        }
        let loc = start_session(client, repo, cancel)?;
        let r = if chunked {
            upload_chunked(client, repo, &loc, src, &progress, cancel)
        } else {
            upload_whole(client, repo, &loc, src, &progress, cancel)
        };
        match r {
            Ok(u) => return Ok(u),
            Err(Attempt::Chunked) if !chunked => {
                cancel_session(client, repo, &loc, cancel);
                chunked = true;
            }
            Err(Attempt::Chunked) => {
                cancel_session(client, repo, &loc, cancel);
                return Err(last.unwrap_or_else(|| RegistryError::Status {
                    status: 400,
                    registry_code: None,
                    message: format!("{repo} refused every form of upload"),
                }));
            }
            Err(Attempt::Retry(e)) => {
                cancel_session(client, repo, &loc, cancel);
                last = Some(e);
            }
            Err(Attempt::Fatal(e)) => {
                if !matches!(e, RegistryError::Aborted) {
                    cancel_session(client, repo, &loc, cancel);
                }
                return Err(e);
            }
        }
    }
    Err(last.unwrap_or(RegistryError::Aborted))
}

/// `PUT location?digest=` (with a body, or closing a session whose bytes were PATCHed).
fn finish(
    client: &Client,
    repo: &str,
    loc: &str,
    digest: &Digest,
    body: Body,
    cancel: &Arc<AtomicBool>,
) -> Result<u16, RegistryError> {
    let mut req = Request::new(Method::PUT, with_query(loc, "digest", digest.as_str()))
        .scope(push_scope(repo))
        .header("Content-Type", "application/octet-stream");
    req.body = body;
    req.accept = vec![201, 204];
    req.accept.extend(REFUSES_BODY);
    Ok(client.request(&req, cancel)?.status)
}

fn upload_whole(
    client: &Client,
    repo: &str,
    loc: &str,
    src: &BlobSource,
    progress: &Progress,
    cancel: &Arc<AtomicBool>,
) -> Result<Uploaded, Attempt> {
    match src {
        BlobSource::Bytes { data, digest } => {
            let st = finish(client, repo, loc, digest, Body::Bytes(data.clone()), cancel)?;
            if REFUSES_BODY.contains(&st) {
                return Err(Attempt::Chunked);
            }
            progress(data.len() as u64);
            Ok(Uploaded { digest: digest.clone(), size: data.len() as u64 })
        }
        BlobSource::File { path, digest, size } => {
            let (path, p) = (path.clone(), progress.clone());
            let body = Body::Reader {
                open: Arc::new(move || {
                    Ok(Box::new(Counting { inner: File::open(&path)?, n: 0, progress: p.clone() })
                        as Box<dyn Read + Send>)
                }),
                length: Some(*size),
            };
            let st = finish(client, repo, loc, digest, body, cancel)?;
            if REFUSES_BODY.contains(&st) {
                return Err(Attempt::Chunked);
            }
            Ok(Uploaded { digest: digest.clone(), size: *size })
        }
        BlobSource::Tar { diff_dir, tar_split, diff_id, .. } => {
            let size = strata_core::ingest::tarsplit::assembled_size(tar_split)
                .map_err(|e| Attempt::Fatal(RegistryError::Compress(GzLayerError::Assemble(e))))?;
            let (d, t, id, p, c) =
                (diff_dir.clone(), tar_split.clone(), diff_id.clone(), progress.clone(), cancel.clone());
            let body = Body::Reader {
                open: Arc::new(move || {
                    Ok(Box::new(Counting {
                        inner: tar_reader(d.clone(), t.clone(), id.clone(), c.clone()),
                        n: 0,
                        progress: p.clone(),
                    }) as Box<dyn Read + Send>)
                }),
                length: Some(size),
            };
            let st = finish(client, repo, loc, diff_id.digest(), body, cancel)?;
            if REFUSES_BODY.contains(&st) {
                return Err(Attempt::Chunked);
            }
            Ok(Uploaded { digest: diff_id.digest().clone(), size })
        }
        BlobSource::Layer { diff_dir, tar_split, diff_id, keep, workers } => {
            let outcome: Arc<Mutex<Option<Result<GzBlob, GzLayerError>>>> = Arc::new(Mutex::new(None));
            let open = {
                let (diff_dir, tar_split, diff_id, keep, workers) =
                    (diff_dir.clone(), tar_split.clone(), diff_id.clone(), keep.clone(), *workers);
                let (outcome, p, cancel) = (outcome.clone(), progress.clone(), cancel.clone());
                Arc::new(move || {
                    let keep_file = File::create(&keep)?;
                    let reader = compressing_reader(
                        diff_dir.clone(),
                        tar_split.clone(),
                        diff_id.clone(),
                        keep_file,
                        workers,
                        outcome.clone(),
                        cancel.clone(),
                    );
                    Ok(Box::new(Counting { inner: reader, n: 0, progress: p.clone() }) as Box<dyn Read + Send>)
                })
            };
            let mut req = Request::new(Method::PATCH, loc)
                .scope(push_scope(repo))
                .header("Content-Type", "application/octet-stream");
            req.body = Body::Reader { open, length: None };
            req.accept = vec![202, 204];
            req.accept.extend(REFUSES_BODY);
            let r = client.request(&req, cancel);
            let compressed = outcome.lock().unwrap_or_else(|e| e.into_inner()).take();
            // The compressor's own failure (a changed layer file, an abort) explains more than the HTTP side.
            if let Some(Err(e)) = compressed {
                return Err(Attempt::Fatal(gz_error(e)));
            }
            let r = r?;
            if REFUSES_BODY.contains(&r.status) {
                return Err(Attempt::Chunked);
            }
            let gz = compressed.and_then(Result::ok).ok_or_else(|| {
                Attempt::Retry(RegistryError::Status {
                    status: r.status,
                    registry_code: None,
                    message: "the registry answered before the layer was sent".into(),
                })
            })?;
            if let Some(sent) = &r.sent {
                if sent.digest != gz.digest || sent.bytes != gz.size {
                    return Err(Attempt::Retry(RegistryError::BlobMismatch {
                        digest: gz.digest.to_string(),
                        detail: "the bytes sent differ from the bytes compressed".into(),
                    }));
                }
            }
            let next = r.header("location").map(str::to_owned).unwrap_or_else(|| loc.to_owned());
            let st = finish(client, repo, &next, &gz.digest, Body::Empty, cancel)?;
            if REFUSES_BODY.contains(&st) {
                return Err(Attempt::Fatal(RegistryError::BlobMismatch {
                    digest: gz.digest.to_string(),
                    detail: format!("the registry refused the uploaded layer ({st})"),
                }));
            }
            Ok(Uploaded { digest: gz.digest, size: gz.size })
        }
    }
}

/// A `Read` of the layer's tar, reassembled on a thread of its own; a tar that does not come
/// out as `diff_id` ends the stream with an error (the registry then refuses the digest too).
fn tar_reader(diff_dir: PathBuf, tar_split: PathBuf, diff_id: DiffId, cancel: Arc<AtomicBool>) -> ChannelReader {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let mut out = ChannelWriter { tx: tx.clone() };
        let r = strata_core::ingest::tarsplit::assemble_cancellable(
            &diff_dir,
            &tar_split,
            io::BufWriter::with_capacity(1 << 20, &mut out),
            Some(&cancel),
        );
        let failure = match r {
            Ok((found, _)) if found == diff_id => None,
            Ok((found, _)) => Some(io::Error::other(format!("layer {diff_id}: its files assemble to {found}"))),
            Err(e) => Some(io::Error::other(e.to_string())),
        };
        if let Some(e) = failure {
            let _ = tx.send(Err(if cancel.load(Ordering::Relaxed) { Fault::Aborted.into_io() } else { e }));
        }
    });
    ChannelReader { rx, buf: Vec::new(), at: 0 }
}

/// Writes each block to a body channel.
struct ChannelWriter {
    tx: mpsc::SyncSender<io::Result<Vec<u8>>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.tx
            .send(Ok(data.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped reading"))?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gz_error(e: GzLayerError) -> RegistryError {
    match e {
        GzLayerError::Aborted => RegistryError::Aborted,
        other => RegistryError::Compress(other),
    }
}

/// The file a chunked upload reads from, and the blob's digest and size.
fn on_disk(src: &BlobSource, cancel: &Arc<AtomicBool>) -> Result<(PathBuf, Digest, u64, Option<Bytes>), Attempt> {
    Ok(match src {
        BlobSource::File { path, digest, size } => (path.clone(), digest.clone(), *size, None),
        BlobSource::Bytes { data, digest } => (PathBuf::new(), digest.clone(), data.len() as u64, Some(data.clone())),
        BlobSource::Layer { diff_dir, tar_split, diff_id, keep, workers } => {
            let mut f = File::create(keep).map_err(|e| Attempt::Fatal(RegistryError::io("create", keep, e)))?;
            let gz = gzlayer::compress_layer(diff_dir, tar_split, diff_id, &mut f, *workers, cancel)
                .map_err(|e| Attempt::Fatal(gz_error(e)))?;
            f.sync_all().map_err(|e| Attempt::Fatal(RegistryError::io("fsync", keep, e)))?;
            (keep.clone(), gz.digest, gz.size, None)
        }
        BlobSource::Tar { diff_dir, tar_split, diff_id, scratch } => {
            // Chunks need the bytes at hand: the tar is assembled into the scratch file first.
            let tmp = scratch.clone();
            let f = File::create(&tmp).map_err(|e| Attempt::Fatal(RegistryError::io("create", &tmp, e)))?;
            let (found, size) = strata_core::ingest::tarsplit::assemble_cancellable(
                diff_dir,
                tar_split,
                io::BufWriter::new(f),
                Some(cancel),
            )
            .map_err(|e| Attempt::Fatal(RegistryError::Compress(GzLayerError::Assemble(e))))?;
            if &found != diff_id {
                return Err(Attempt::Fatal(RegistryError::Compress(GzLayerError::DiffIdMismatch {
                    expected: diff_id.to_string(),
                    found: found.to_string(),
                })));
            }
            (tmp, diff_id.digest().clone(), size, None)
        }
    })
}

fn upload_chunked(
    client: &Client,
    repo: &str,
    loc: &str,
    src: &BlobSource,
    progress: &Progress,
    cancel: &Arc<AtomicBool>,
) -> Result<Uploaded, Attempt> {
    let (path, digest, size, bytes) = on_disk(src, cancel)?;
    let mut loc = loc.to_owned();
    let mut offset = 0u64;
    while offset < size {
        let len = FALLBACK_CHUNK.min(size - offset);
        let body = match &bytes {
            Some(b) => Body::Bytes(b.slice(offset as usize..(offset + len) as usize)),
            None => Body::File { path: path.clone(), offset, length: len },
        };
        let mut req = Request::new(Method::PATCH, loc.clone())
            .scope(push_scope(repo))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{}-{}", offset, offset + len - 1));
        req.body = body;
        req.accept = vec![202, 204];
        let r = client.request(&req, cancel)?;
        offset += len;
        progress(offset);
        if let Some(l) = r.header("location") {
            loc = l.to_owned();
        }
    }
    let st = finish(client, repo, &loc, &digest, Body::Empty, cancel)?;
    if REFUSES_BODY.contains(&st) {
        return Err(Attempt::Fatal(RegistryError::BlobMismatch {
            digest: digest.to_string(),
            detail: format!("the registry refused the uploaded blob ({st})"),
        }));
    }
    Ok(Uploaded { digest, size })
}

/// A `Read` of the layer's gzip bytes, compressed on threads of its own as the reader pulls;
/// the same bytes go to `keep`. When the stream ends, `outcome` holds the compressor's result.
fn compressing_reader(
    diff_dir: PathBuf,
    tar_split: PathBuf,
    diff_id: DiffId,
    keep: File,
    workers: usize,
    outcome: Arc<Mutex<Option<Result<GzBlob, GzLayerError>>>>,
    cancel: Arc<AtomicBool>,
) -> ChannelReader {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let mut out = Tee { tx: tx.clone(), keep: io::BufWriter::with_capacity(1 << 20, keep) };
        let r = gzlayer::compress_layer(&diff_dir, &tar_split, &diff_id, &mut out, workers, &cancel);
        let r = r.and_then(|gz| {
            out.keep.flush().map_err(|source| GzLayerError::Write { source })?;
            Ok(gz)
        });
        let failed = r.as_ref().err().map(|e| io::Error::other(e.to_string()));
        *outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        if let Some(e) = failed {
            let _ = tx.send(Err(if cancel.load(Ordering::Relaxed) { Fault::Aborted.into_io() } else { e }));
        }
    });
    ChannelReader { rx, buf: Vec::new(), at: 0 }
}

/// Writes each block to the HTTP body channel and to the keep file.
struct Tee {
    tx: mpsc::SyncSender<io::Result<Vec<u8>>>,
    keep: io::BufWriter<File>,
}

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.keep.write_all(data)?;
        self.tx
            .send(Ok(data.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped reading"))?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.keep.flush()
    }
}

/// The reading end of a [`Tee`].
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
