//! Pulling layer blobs straight into the store: every layer of a batch on a thread of its own
//! (at most `concurrency` per registry in the whole process), each in one pass:
//!
//! ```text
//! socket ─┬─ partial file (the compressed bytes, for resume and to push them again later)
//!         └─ sha256 (compressed digest) ─ decompress ─ sha256 (DiffID) ─ safe extraction
//! ```
//!
//! **Resume.** The bytes received are appended to `partial` (under the store root, locked
//! with `flock` while a pull uses it) as they stream. A connection that breaks mid-blob is
//! reopened with `Range: bytes=N-` where N is what was already received and fed through the
//! pipeline, which never notices. A later pull (after a failure or a `kill -9`) finds the
//! partial file, replays it through the pipeline (it must be hashed and extracted again:
//! the extraction of the dead run is gone) and fetches only the rest. A server that ignores
//! Range (200 instead of 206) is detected by the status and `Content-Range`: the partial is
//! truncated and the blob restarts from zero, so no byte is ever appended twice. If a resumed
//! blob fails its digest, the partial is discarded and the blob fetched once more from zero.
//!
//! Nothing is visible in the store until the caller registers the layer: this module only
//! fills the `dest` and `tar_split` it is given (staging) and leaves the verified blob at
//! `partial` for the caller to move into the content store.
use crate::client::{Client, Request, Streaming};
use crate::error::RegistryError;
use crate::rt;
use reqwest::Method;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;
use strata_core::digest::{BlobDigest, DiffId};
use strata_core::ingest::layer::{self, ApplyResult, LayerError};

/// Default layers in flight per registry (Docker's default is 3; streamed extraction makes
/// more worthwhile).
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Threads creating a layer's small files beside its pipeline thread (see
/// `layer::apply_reader`). The bench image's base layer (6,651 files) is the last to finish;
/// with 2 its thread finished in ~3.0 s instead of ~3.9 s of a ~4.5 s pull (load 17, median of
/// 3 interleaved rounds), with less CPU in all (2.2 s instead of 2.4 s).
const EXTRACT_WRITERS: usize = 2;

/// Restarts of one blob from zero (Range ignored, a resumed blob failing its digest).
const MAX_RESTARTS: u32 = 2;

/// One layer to pull.
#[derive(Clone, Debug)]
pub struct LayerPull {
    /// Repository path on the registry (`library/busybox`).
    pub repository: String,
    /// The compressed digest (the manifest's layer descriptor).
    pub digest: BlobDigest,
    /// The descriptor's size.
    pub size: u64,
    pub diff_id: DiffId,
    /// The layer's `diff/` (must not exist) and tar-split file (must not exist).
    pub dest: PathBuf,
    pub tar_split: PathBuf,
    /// The blob's partial file; it holds the whole verified blob when the pull succeeds.
    pub partial: PathBuf,
}

/// What happened to one layer.
#[derive(Clone, Debug)]
pub struct PulledLayer {
    pub result: ApplyResult,
    /// Bytes taken from an earlier partial file instead of the network.
    pub resumed_from: u64,
    /// Bytes fetched from the network (restarts and resumes included).
    pub fetched: u64,
    /// The verified blob (the `partial` path of the request, or a private copy).
    pub blob: PathBuf,
}

/// Progress of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerEvent {
    /// Queued behind other layers of the same registry.
    Waiting,
    /// Transfer started; `resumed` bytes come from an earlier partial file.
    Started { resumed: u64 },
    /// Blob bytes through the pipeline so far.
    Bytes(u64),
    /// The whole blob is in; digests are being compared.
    Verifying,
    /// Verified and extracted.
    Done,
}

/// A counting semaphore per registry, shared by every pull of the process.
struct HostSlots {
    free: Mutex<usize>,
    cv: Condvar,
}

fn slots_for(registry: &str, concurrency: usize) -> Arc<HostSlots> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<HostSlots>>>> = OnceLock::new();
    let mut m = ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    m.entry(registry.to_string())
        .or_insert_with(|| Arc::new(HostSlots { free: Mutex::new(concurrency.max(1)), cv: Condvar::new() }))
        .clone()
}

struct Permit(Arc<HostSlots>);

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

impl HostSlots {
    /// Takes a slot; `None` when `stop` is set while waiting. `waiting` is called once if it had to wait.
    fn take(self: &Arc<Self>, stop: &AtomicBool, waiting: &dyn Fn()) -> Option<Permit> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let mut told = false;
        while *free == 0 {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            if !told {
                waiting();
                told = true;
            }
            free = self.cv.wait_timeout(free, Duration::from_millis(25)).unwrap_or_else(|e| e.into_inner()).0;
        }
        *free -= 1;
        Some(Permit(self.clone()))
    }
}

/// Why the network source gave up (kept typed beside the `io::Error` the pipeline sees).
enum SourceFault {
    Registry(RegistryError),
    /// The server answered a Range request with the whole blob: restart from zero.
    RangeIgnored,
}

/// The pipeline's source: an earlier partial file's bytes, then the network, every network
/// byte appended to the partial file. Reconnects with Range on a broken connection.
struct BlobSource<'a> {
    client: &'a Client,
    req: &'a LayerPull,
    stop: &'a Arc<AtomicBool>,
    partial: &'a File,
    /// Bytes replayed from the partial file, then bytes received; always the partial's length.
    pos: u64,
    prefix_left: u64,
    body: Option<Streaming>,
    fetched: u64,
    reconnects: u32,
    fault: &'a Mutex<Option<SourceFault>>,
}

impl BlobSource<'_> {
    fn fail(&self, f: SourceFault) -> io::Error {
        let msg = match &f {
            SourceFault::Registry(e) => e.to_string(),
            SourceFault::RangeIgnored => "registry ignored Range".into(),
        };
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        io::Error::other(msg)
    }

    fn reconnect(&mut self) -> Result<(), SourceFault> {
        let (s, start) = open_blob(self.client, self.req, self.pos, self.stop).map_err(SourceFault::Registry)?;
        if start != self.pos {
            return Err(SourceFault::RangeIgnored);
        }
        self.body = Some(s);
        Ok(())
    }
}

impl Read for BlobSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.prefix_left > 0 {
            let want = buf.len().min(self.prefix_left as usize);
            let n = self.partial.read_at(&mut buf[..want], self.pos)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "partial blob shrank"));
            }
            self.prefix_left -= n as u64;
            self.pos += n as u64;
            return Ok(n);
        }
        loop {
            if self.pos >= self.req.size {
                // The descriptor's size is all we take: more bytes are a lie, caught as a digest
                // or size mismatch by the caller (never written past `size`).
                let mut probe = [0u8; 1];
                let extra = match self.body.as_mut() {
                    Some(b) => b.body.read(&mut probe).unwrap_or(0),
                    None => 0,
                };
                if extra > 0 {
                    return Err(self.fail(SourceFault::Registry(RegistryError::BlobMismatch {
                        digest: self.req.digest.to_string(),
                        detail: format!("registry sent more than the {} bytes the manifest declares", self.req.size),
                    })));
                }
                return Ok(0);
            }
            if self.body.is_none() {
                if let Err(f) = self.reconnect() {
                    return Err(self.fail(f));
                }
            }
            let want = buf.len().min((self.req.size - self.pos) as usize);
            let r = self.body.as_mut().expect("connected").body.read(&mut buf[..want]);
            match r {
                Ok(0) => {
                    // Early end: the connection was cut. Reconnect from here.
                    self.body = None;
                    if !self.retry_wait()? {
                        return Err(self.fail(SourceFault::Registry(RegistryError::BlobMismatch {
                            digest: self.req.digest.to_string(),
                            detail: format!("blob ended after {} of {} bytes", self.pos, self.req.size),
                        })));
                    }
                }
                Ok(n) => {
                    self.partial.write_all_at(&buf[..n], self.pos)?;
                    self.pos += n as u64;
                    self.fetched += n as u64;
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        strata_core::ingest::stream::fault_of(&e),
                        Some(strata_core::ingest::stream::Fault::Aborted)
                    ) =>
                {
                    return Err(e)
                }
                Err(e) => {
                    self.body = None;
                    if !self.retry_wait()? {
                        return Err(self.fail(SourceFault::Registry(RegistryError::Unreachable {
                            host: self.client.registry().into(),
                            detail: format!("blob {} broke off after {} bytes: {e}", self.req.digest, self.pos),
                        })));
                    }
                }
            }
        }
    }
}

impl BlobSource<'_> {
    /// Waits before reconnecting; false when the reconnect budget is spent.
    fn retry_wait(&mut self) -> io::Result<bool> {
        self.reconnects += 1;
        let policy = crate::retry::RetryPolicy::default();
        if self.reconnects >= policy.attempts * 2 {
            return Ok(false);
        }
        self.client.stats.retries.fetch_add(1, Ordering::Relaxed);
        // The first reconnect is immediate: a cut connection is the common case.
        if self.reconnects > 1 {
            rt::sleep(policy.backoff(self.reconnects - 1), self.stop)
                .map_err(|_| strata_core::ingest::stream::Fault::Aborted.into_io())?;
        }
        Ok(true)
    }
}

/// GET the blob from `offset` (Range when > 0). Returns the stream and where it starts
/// (0 when the server ignored the Range).
fn open_blob(
    client: &Client,
    req: &LayerPull,
    offset: u64,
    stop: &Arc<AtomicBool>,
) -> Result<(Streaming, u64), RegistryError> {
    let mut r = Request::new(Method::GET, format!("/v2/{}/blobs/{}", req.repository, req.digest))
        .scope(format!("repository:{}:pull", req.repository));
    r.accept = vec![200, 206];
    if offset > 0 {
        r = r.header("Range", format!("bytes={offset}-"));
    }
    let s = client.stream(&r, stop)?;
    if s.status == 206 {
        // `Content-Range: bytes START-END/TOTAL` must start where we asked.
        let start = s
            .header("content-range")
            .and_then(|v| v.trim().strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.trim().parse::<u64>().ok());
        return match start {
            Some(st) if st == offset => Ok((s, offset)),
            _ => Ok((s, u64::MAX)),
        };
    }
    Ok((s, 0))
}

/// Opens (creating) and locks the partial file itself (`flock`, released with the file, so a
/// `kill -9` never leaves it locked). Another process pulling the same blob gets a private
/// partial of its own instead. The lock is only trusted if the path still names the locked
/// file afterwards (the holder may have moved it into the content store meanwhile).
fn open_partial(path: &std::path::Path) -> Result<(File, PathBuf, bool), RegistryError> {
    use std::os::unix::fs::MetadataExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| RegistryError::io("mkdir", parent, e))?;
    }
    let open = |p: &std::path::Path| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .map_err(|e| RegistryError::io("open", p, e))
    };
    for _ in 0..3 {
        let f = open(path)?;
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            break;
        }
        let same = match (f.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            return Ok((f, path.to_path_buf(), true));
        }
    }
    let private = path.with_extension(format!("{}-{:08x}", std::process::id(), rand::random::<u32>()));
    Ok((open(&private)?, private, false))
}

/// Pulls one layer with restarts (see the module docs).
fn pull_one(
    client: &Client,
    req: &LayerPull,
    stop: &Arc<AtomicBool>,
    progress: &(dyn Fn(LayerEvent) + Sync),
) -> Result<PulledLayer, RegistryError> {
    let (partial, path, shared) = open_partial(&req.partial)?;
    let private = !shared;
    let discard = |why_keep: bool| {
        if !why_keep || private {
            let _ = std::fs::remove_file(&path);
        }
    };
    let mut restarts = 0;
    let mut fetched_total = 0;
    loop {
        let mut have = partial.metadata().map_err(|e| RegistryError::io("stat", &path, e))?.len();
        if have > req.size {
            have = 0;
        }
        partial.set_len(have).map_err(|e| RegistryError::io("truncate", &path, e))?;
        let fault = Mutex::new(None);
        let mut body = None;
        if have < req.size {
            let (s, start) = match open_blob(client, req, have, stop) {
                Ok(x) => x,
                Err(e) => {
                    discard(have > 0 && matches!(e, RegistryError::Unreachable { .. }));
                    return Err(e);
                }
            };
            if start != have {
                // Range ignored (or answered from elsewhere): take the blob from zero.
                have = 0;
                partial.set_len(0).map_err(|e| RegistryError::io("truncate", &path, e))?;
                if start != 0 {
                    drop(s);
                    continue;
                }
            }
            body = Some(s);
        }
        progress(LayerEvent::Started { resumed: have });
        let mut src = BlobSource {
            client,
            req,
            stop,
            partial: &partial,
            pos: 0,
            prefix_left: have,
            body,
            fetched: 0,
            reconnects: 0,
            fault: &fault,
        };
        // The prefix replays from offset 0; network bytes land at `have` onwards.
        let size = req.size;
        let report = |bytes: u64| {
            progress(LayerEvent::Bytes(bytes));
            if bytes >= size {
                progress(LayerEvent::Verifying);
            }
        };
        let r = layer::apply_reader(
            &mut src,
            &req.dest,
            &req.tar_split,
            Some(&req.digest),
            Some(&req.diff_id),
            &report,
            stop,
            false,
            EXTRACT_WRITERS,
        );
        fetched_total += src.fetched;
        let pos = src.pos;
        drop(src);
        let fault = fault.into_inner().unwrap_or_else(|e| e.into_inner());
        match (r, fault) {
            (Ok(result), _) if result.blob_size == req.size => {
                progress(LayerEvent::Done);
                return Ok(PulledLayer { result, resumed_from: have, fetched: fetched_total, blob: path });
            }
            (Ok(result), _) => {
                discard(false);
                return Err(RegistryError::BlobMismatch {
                    digest: req.digest.to_string(),
                    detail: format!("{} bytes, the manifest declares {}", result.blob_size, req.size),
                });
            }
            (Err(_), Some(SourceFault::RangeIgnored)) if restarts < MAX_RESTARTS => {
                restarts += 1;
                partial.set_len(0).map_err(|e| RegistryError::io("truncate", &path, e))?;
            }
            (Err(LayerError::DigestMismatch { what: "digest", .. }), None) if have > 0 && restarts < MAX_RESTARTS => {
                // The earlier run's bytes were bad (or the blob changed): start over once.
                restarts += 1;
                partial.set_len(0).map_err(|e| RegistryError::io("truncate", &path, e))?;
            }
            (Err(e), fault) => {
                let err = match fault {
                    Some(SourceFault::Registry(re)) => re,
                    Some(SourceFault::RangeIgnored) => RegistryError::Unreachable {
                        host: client.registry().into(),
                        detail: "the registry keeps ignoring Range requests".into(),
                    },
                    None if stop.load(Ordering::Relaxed) => RegistryError::Aborted,
                    None => RegistryError::Layer(e),
                };
                discard(pos > 0 && matches!(err, RegistryError::Unreachable { .. }));
                return Err(err);
            }
        }
    }
}

/// Pulls a batch of layers (see the module docs). All or nothing: the first failure stops the
/// others and every `dest`/`tar_split` of the batch is removed; partial files stay only for
/// blobs that broke off on the network (to be resumed). On success the batch is made durable
/// with one `syncfs` per file system.
pub fn pull_layers(
    client: &Client,
    layers: &[LayerPull],
    concurrency: usize,
    progress: &(dyn Fn(usize, LayerEvent) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<PulledLayer>, RegistryError> {
    let stop = Arc::new(AtomicBool::new(false));
    let slots = slots_for(client.registry(), concurrency);
    let done = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<PulledLayer, RegistryError>>>> =
        layers.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for (i, req) in layers.iter().enumerate() {
            let (stop, slots, done, results) = (&stop, &slots, &done, &results);
            let r = std::thread::Builder::new().name("strata-pull".into()).spawn_scoped(scope, move || {
                let p = |e: LayerEvent| progress(i, e);
                let out = match slots.take(stop, &|| p(LayerEvent::Waiting)) {
                    None => Err(RegistryError::Aborted),
                    Some(_permit) => pull_one(client, req, stop, &p),
                };
                if out.is_err() {
                    stop.store(true, Ordering::SeqCst);
                }
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(out);
                done.fetch_add(1, Ordering::SeqCst);
            });
            if r.is_err() {
                stop.store(true, Ordering::SeqCst);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Err(RegistryError::Invalid("cannot start a pull thread".into())));
                done.fetch_add(1, Ordering::SeqCst);
            }
        }
        // The caller's flag is forwarded to the batch's (which layer failures set too).
        while done.load(Ordering::SeqCst) < layers.len() {
            if cancel.load(Ordering::Relaxed) {
                stop.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let results: Vec<Result<PulledLayer, RegistryError>> = results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).unwrap_or(Err(RegistryError::Aborted)))
        .collect();
    let all_ok = results.iter().all(Result::is_ok);
    if all_ok {
        if let Err(e) = layer::sync_filesystems(layers.iter().map(|l| l.dest.as_path())) {
            for l in layers {
                remove_outputs(l);
            }
            return Err(e.into());
        }
        return Ok(results.into_iter().map(|r| r.expect("all ok")).collect());
    }
    // Complete blobs of the batch stay for the next pull only when the network broke off.
    let resumable =
        results.iter().any(|r| matches!(r, Err(RegistryError::Unreachable { .. }))) && !cancel.load(Ordering::Relaxed);
    for (l, r) in layers.iter().zip(&results) {
        if let Ok(p) = r {
            remove_outputs(l);
            if !resumable {
                let _ = std::fs::remove_file(&p.blob);
            }
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(RegistryError::Aborted);
    }
    let mut first_abort = None;
    for r in results {
        match r {
            Err(RegistryError::Aborted) | Err(RegistryError::Layer(LayerError::Aborted)) => {
                first_abort = Some(RegistryError::Aborted)
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(first_abort.unwrap_or(RegistryError::Aborted))
}

fn remove_outputs(l: &LayerPull) {
    let _ = std::fs::remove_dir_all(&l.dest);
    let _ = std::fs::remove_file(&l.tar_split);
}
