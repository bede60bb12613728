//! The registry transport for the TS side: `NativeRegistryClient` (one per registry and
//! operation) with `request` (buffered answers: manifests, JSON APIs, uploads from bytes or a
//! file range) and `pullLayers` (blobs streamed into staging dirs). Conversion only; the work is
//! in `strata_registry`. Credentials come in here and never go back out (not in errors, not in
//! `endpoints()`); the one secret handed back is `identityToken()`, the refresh token a token
//! issuer gave a login, which the TS side stores as Docker's `identitytoken`.
#![cfg_attr(test, allow(dead_code))]
use crate::cancel::NativeCancel;
use crate::error::Job;
use crate::Failure;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata_core::digest::{BlobDigest, DiffId};
use strata_registry::auth::Credentials;
use strata_registry::client::{Body, Request};
use strata_registry::pull::{self, LayerEvent, LayerPull, PulledLayer};
use strata_registry::{Client, ClientOptions, RegistryConfig, RegistryError};

type Outcome<T> = std::result::Result<T, Failure>;

/// How to reach one registry.
#[napi(object)]
pub struct NativeRegistryOptions {
    /// The registry as references name it: `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub registry: String,
    /// A `daemon.json` with `registry-mirrors` / `insecure-registries` (missing file: none).
    pub daemon_config: Option<String>,
    /// Dirs holding `<host:port>/` certificate dirs, searched in order (default
    /// `/etc/docker/certs.d`).
    pub certs_dirs: Option<Vec<String>>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An OAuth2 refresh token (Docker's `identitytoken`).
    pub identity_token: Option<String>,
    /// A bearer token used as is.
    pub registry_token: Option<String>,
    pub user_agent: Option<String>,
    /// Attempts per request (default 5) and the first backoff in ms (default 200).
    /// Talk to the registry itself, never to its mirrors (push, login: mirrors serve pulls only).
    pub no_mirrors: Option<bool>,
    /// Ask token issuers for a refresh token (`offline_token=true`), as `docker login` does.
    pub offline_token: Option<bool>,
    pub retry_attempts: Option<u32>,
    pub retry_base_ms: Option<u32>,
    /// Longest silence from a registry, in ms (default 60000).
    pub idle_timeout_ms: Option<u32>,
}

/// One way the client reaches the registry, in the order tried.
#[napi(object)]
pub struct NativeEndpoint {
    pub base: String,
    pub verify: bool,
    pub mirror: bool,
}

/// A header.
#[napi(object)]
pub struct NativeHeader {
    pub name: String,
    pub value: String,
}

/// A request body read from a file range.
#[napi(object)]
pub struct NativeBodyFile {
    pub path: String,
    pub offset: Option<i64>,
    pub length: i64,
}

/// One request (see `strata_registry::client::Request`).
#[napi(object)]
pub struct NativeRegistryRequest {
    #[napi(ts_type = "'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'")]
    pub method: String,
    /// `/v2/...` or an absolute URL (an upload `Location`; credentials go to the registry's own
    /// origin only).
    pub target: String,
    pub headers: Option<Vec<NativeHeader>>,
    /// `repository:NAME:pull`, `repository:NAME:pull,push`, `registry:catalog:*`, ...
    pub scopes: Option<Vec<String>>,
    pub body: Option<Buffer>,
    pub body_file: Option<NativeBodyFile>,
    /// Statuses that are answers (default: 2xx); any other becomes `Unauthorized`,
    /// `NotFound` or `RegistryError` (with `status` and `registryCode`).
    pub accept: Option<Vec<u32>>,
    /// Largest body read (default 4 MiB); more is `ResponseTooLarge`.
    pub max_body: Option<i64>,
}

/// A buffered answer.
#[napi(object)]
pub struct NativeRegistryResponse {
    pub status: u32,
    /// Names in lowercase, in the order received.
    pub headers: Vec<NativeHeader>,
    /// The final URL, without userinfo or query.
    pub url: String,
    pub body: Buffer,
    /// sha256 and length of the request body as sent (when there was one).
    pub sent_digest: Option<String>,
    pub sent_bytes: Option<i64>,
}

/// Counters of one client.
#[napi(object)]
pub struct NativeRegistryStats {
    pub requests: i64,
    pub token_requests: i64,
    pub retries: i64,
}

/// One layer to pull into staging.
#[napi(object)]
pub struct NativeLayerPull {
    pub repository: String,
    /// Compressed digest and size from the manifest.
    pub digest: String,
    pub size: i64,
    pub diff_id: String,
    /// Must not exist; created by the pull.
    pub dest: String,
    pub tar_split: String,
    /// The blob's partial file (kept across runs for resume; holds the blob on success).
    pub partial: String,
}

/// What pulling a layer found.
#[napi(object)]
pub struct NativePulledLayer {
    pub diff_id: String,
    pub digest: String,
    #[napi(ts_type = "'none' | 'gzip' | 'zstd'")]
    pub compression: String,
    /// Sum of regular file sizes (Docker's layer size).
    pub size: i64,
    pub blob_size: i64,
    /// Bytes replayed from an earlier partial file, and bytes fetched from the network.
    pub resumed_from: i64,
    pub fetched: i64,
    /// Where the verified blob is (the request's `partial`, or a private copy next to it).
    pub blob: String,
}

impl From<&PulledLayer> for NativePulledLayer {
    fn from(p: &PulledLayer) -> Self {
        NativePulledLayer {
            diff_id: p.result.diff_id.to_string(),
            digest: p.result.digest.to_string(),
            compression: p.result.compression.as_str().into(),
            size: p.result.size as i64,
            blob_size: p.result.blob_size as i64,
            resumed_from: p.resumed_from as i64,
            fetched: p.fetched as i64,
            blob: p.blob.display().to_string(),
        }
    }
}

/// `(index, event, bytes)`: event is `waiting`, `started` (bytes = resumed), `bytes`,
/// `verifying`, `done`.
type PullProgressFn = ThreadsafeFunction<FnArgs<(u32, String, f64)>, (), FnArgs<(u32, String, f64)>, Status, false>;

fn invalid(msg: impl Into<String>) -> Failure {
    RegistryError::Invalid(msg.into()).into()
}

/// A registry client (see the module docs).
#[napi]
pub struct NativeRegistryClient {
    pub(crate) client: Arc<Client>,
}

#[napi]
impl NativeRegistryClient {
    #[napi(constructor)]
    pub fn new(env: Env, opts: NativeRegistryOptions) -> Result<Self> {
        Self::build(opts).map_err(|f| f.into_js(&env))
    }

    fn build(opts: NativeRegistryOptions) -> Outcome<Self> {
        let certs: Vec<PathBuf> = opts
            .certs_dirs
            .unwrap_or_else(|| vec!["/etc/docker/certs.d".into()])
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let config = RegistryConfig::load(opts.daemon_config.as_deref().map(std::path::Path::new), certs)?;
        let mut o = ClientOptions::new(&opts.registry, config);
        o.credentials = match (opts.username, opts.password, opts.identity_token, opts.registry_token) {
            (_, _, _, Some(t)) => Credentials::RegistryToken(t),
            (u, _, Some(t), None) => Credentials::IdentityToken { username: u.unwrap_or_default(), token: t },
            (Some(u), Some(p), None, None) => Credentials::Basic { username: u, password: p },
            (None, None, None, None) => Credentials::Anonymous,
            _ => return Err(invalid("credentials need both a username and a password")),
        };
        if let Some(ua) = opts.user_agent {
            o.user_agent = ua;
        }
        o.no_mirrors = opts.no_mirrors.unwrap_or(false);
        o.offline_token = opts.offline_token.unwrap_or(false);
        if let Some(a) = opts.retry_attempts {
            o.retry.attempts = a.max(1);
        }
        if let Some(ms) = opts.retry_base_ms {
            o.retry.base_delay = Duration::from_millis(ms as u64);
        }
        if let Some(ms) = opts.idle_timeout_ms {
            o.idle_timeout = Duration::from_millis(ms.max(1) as u64);
        }
        Ok(NativeRegistryClient { client: Arc::new(Client::new(o)?) })
    }

    /// The endpoints tried, in order.
    #[napi]
    pub fn endpoints(&self) -> Vec<NativeEndpoint> {
        self.client
            .endpoints()
            .into_iter()
            .map(|e| NativeEndpoint { base: e.base, verify: e.verify, mirror: e.mirror })
            .collect()
    }

    /// The refresh token a token issuer handed out (with `offlineToken`, or a rotated one), else
    /// the identity token given; null for other credentials.
    #[napi]
    pub fn identity_token(&self) -> Option<String> {
        self.client.identity_token()
    }

    #[napi]
    pub fn stats(&self) -> NativeRegistryStats {
        let s = &self.client.stats;
        NativeRegistryStats {
            requests: s.requests.load(Ordering::Relaxed) as i64,
            token_requests: s.token_requests.load(Ordering::Relaxed) as i64,
            retries: s.retries.load(Ordering::Relaxed) as i64,
        }
    }

    /// Sends a request and reads its answer (see `NativeRegistryRequest`).
    #[napi(
        ts_args_type = "req: NativeRegistryRequest, cancel?: NativeCancel | undefined | null",
        ts_return_type = "Promise<NativeRegistryResponse>"
    )]
    pub fn request(
        &self,
        env: Env,
        req: NativeRegistryRequest,
        cancel: Option<&NativeCancel>,
    ) -> Result<AsyncTask<Job<RegistryRequest>>> {
        self.request_task(req, cancel).map_err(|f| f.into_js(&env))
    }

    fn request_task(
        &self,
        req: NativeRegistryRequest,
        cancel: Option<&NativeCancel>,
    ) -> Outcome<AsyncTask<Job<RegistryRequest>>> {
        let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| invalid(format!("bad method {}", req.method)))?;
        let mut r = Request::new(method, req.target);
        r.headers = req.headers.unwrap_or_default().into_iter().map(|h| (h.name, h.value)).collect();
        r.scopes = req.scopes.unwrap_or_default();
        r.accept = req.accept.unwrap_or_default().into_iter().map(|s| s as u16).collect();
        if let Some(m) = req.max_body {
            r.max_body = u64::try_from(m).map_err(|_| invalid("maxBody must be >= 0"))?;
        }
        r.body = match (req.body, req.body_file) {
            (Some(_), Some(_)) => return Err(invalid("give body or bodyFile, not both")),
            (Some(b), None) => Body::Bytes(bytes::Bytes::from(b.to_vec())),
            (None, Some(f)) => Body::File {
                path: f.path.into(),
                offset: u64::try_from(f.offset.unwrap_or(0)).map_err(|_| invalid("offset must be >= 0"))?,
                length: u64::try_from(f.length).map_err(|_| invalid("length must be >= 0"))?,
            },
            (None, None) => Body::Empty,
        };
        let cancel = NativeCancel::flag_of(cancel);
        Ok(crate::job(RegistryRequest { client: self.client.clone(), req: r, cancel }))
    }

    /// Pulls layer blobs into staging (see `strata_registry::pull`): all at once, at most
    /// `concurrency` per registry in the process; all or nothing.
    #[napi(
        ts_args_type = "layers: NativeLayerPull[], concurrency: number, onProgress?: ((index: number, event: 'waiting' | 'started' | 'bytes' | 'verifying' | 'done', bytes: number) => void) | undefined | null, cancel?: NativeCancel | undefined | null",
        ts_return_type = "Promise<NativePulledLayer[]>"
    )]
    pub fn pull_layers(
        &self,
        env: Env,
        layers: Vec<NativeLayerPull>,
        concurrency: u32,
        on_progress: Option<PullProgressFn>,
        cancel: Option<&NativeCancel>,
    ) -> Result<AsyncTask<Job<PullLayers>>> {
        self.pull_task(layers, concurrency, on_progress, cancel).map_err(|f| f.into_js(&env))
    }

    fn pull_task(
        &self,
        layers: Vec<NativeLayerPull>,
        concurrency: u32,
        on_progress: Option<PullProgressFn>,
        cancel: Option<&NativeCancel>,
    ) -> Outcome<AsyncTask<Job<PullLayers>>> {
        let mut reqs = Vec::with_capacity(layers.len());
        for l in layers {
            reqs.push(LayerPull {
                repository: l.repository,
                digest: BlobDigest::parse(&l.digest)?,
                size: u64::try_from(l.size).map_err(|_| invalid("size must be >= 0"))?,
                diff_id: DiffId::parse(&l.diff_id)?,
                dest: l.dest.into(),
                tar_split: l.tar_split.into(),
                partial: l.partial.into(),
            });
        }
        let cancel = NativeCancel::flag_of(cancel);
        Ok(crate::job(PullLayers {
            client: self.client.clone(),
            layers: reqs,
            concurrency: concurrency.max(1) as usize,
            progress: on_progress,
            cancel,
        }))
    }
}

pub struct RegistryRequest {
    client: Arc<Client>,
    req: Request,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for RegistryRequest {
    type Output = strata_registry::Response;
    type JsValue = NativeRegistryResponse;
    fn compute(&mut self) -> Outcome<Self::Output> {
        Ok(self.client.request(&self.req, &self.cancel)?)
    }
    fn resolve(&mut self, _: Env, r: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeRegistryResponse {
            status: r.status as u32,
            headers: r.headers.into_iter().map(|(name, value)| NativeHeader { name, value }).collect(),
            url: r.url,
            body: r.body.into(),
            sent_digest: r.sent.as_ref().map(|s| s.digest.to_string()),
            sent_bytes: r.sent.as_ref().map(|s| s.bytes as i64),
        })
    }
}

pub struct PullLayers {
    client: Arc<Client>,
    layers: Vec<LayerPull>,
    concurrency: usize,
    progress: Option<PullProgressFn>,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for PullLayers {
    type Output = Vec<PulledLayer>;
    type JsValue = Vec<NativePulledLayer>;
    fn compute(&mut self) -> Outcome<Self::Output> {
        let tsfn = self.progress.as_ref();
        // Never block a layer thread on JS: events are queued NonBlocking; a dropped byte count
        // is superseded by the next, and the state events are few.
        let progress = |i: usize, e: LayerEvent| {
            if let Some(f) = tsfn {
                let (name, n) = match e {
                    LayerEvent::Waiting => ("waiting", 0),
                    LayerEvent::Started { resumed } => ("started", resumed),
                    LayerEvent::Bytes(b) => ("bytes", b),
                    LayerEvent::Verifying => ("verifying", 0),
                    LayerEvent::Done => ("done", 0),
                };
                f.call((i as u32, name.to_string(), n as f64).into(), ThreadsafeFunctionCallMode::NonBlocking);
            }
        };
        Ok(pull::pull_layers(&self.client, &self.layers, self.concurrency, &progress, &self.cancel)?)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(out.iter().map(NativePulledLayer::from).collect())
    }
}
