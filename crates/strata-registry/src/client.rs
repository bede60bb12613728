//! The registry client: one per registry and operation (a pull, a push, a login).
//!
//! It picks the endpoint (mirrors, HTTPS, plain HTTP for insecure registries, see `config`),
//! runs the auth flow (anonymous, Basic, Bearer tokens cached per scope set, see `auth`),
//! follows redirects itself (a blob redirected to a storage host is fetched there *without*
//! the Authorization header: credentials and tokens never leave the host that asked for them),
//! and retries connection errors, 408, 429 (honouring `Retry-After`) and 5xx with backoff.
//!
//! Two ways to send: [`Client::request`] reads a bounded body (manifests, tokens, JSON APIs);
//! [`Client::stream`] hands back a [`BodyReader`] for blobs. Request bodies are bytes, a file
//! range or a replayable reader, streamed to the socket; their sha256 is computed as they go.
use crate::auth::{self, Challenge, Credentials, Token};
use crate::config::{Endpoint, RegistryConfig};
use crate::error::{redact, status_error, RegistryError};
use crate::retry::{retryable_status, RetryPolicy};
use crate::rt::{self, Interrupted};
use base64::Engine as _;
use bytes::Bytes;
use reqwest::{Method, Url};
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use strata_core::digest::{Digest, Hasher};
use strata_core::ingest::stream::Fault;

/// Longest wait for a response's headers, and for each chunk of a body.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_REDIRECTS: usize = 10;
/// Chunk size of streamed request bodies.
const UPLOAD_CHUNK: usize = 256 << 10;
/// A token endpoint's answer is small; anything larger is garbage.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// How a client is set up.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The registry as references name it: `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub registry: String,
    pub config: RegistryConfig,
    pub credentials: Credentials,
    pub user_agent: String,
    pub retry: RetryPolicy,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Skip the registry's mirrors: they serve pulls only (a push or a login goes to the registry).
    pub no_mirrors: bool,
    /// Ask token issuers for a refresh token along with each token (`offline_token=true`,
    /// `client_id=docker`), as `docker login` does; see [`Client::identity_token`].
    pub offline_token: bool,
}

impl ClientOptions {
    pub fn new(registry: &str, config: RegistryConfig) -> Self {
        ClientOptions {
            registry: registry.into(),
            config,
            credentials: Credentials::Anonymous,
            user_agent: format!("strata/{}", env!("CARGO_PKG_VERSION")),
            retry: RetryPolicy::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            no_mirrors: false,
            offline_token: false,
        }
    }
}

/// Counters, for tests and benchmarks ("one token request per scope set").
#[derive(Default, Debug)]
pub struct Stats {
    /// HTTP requests sent to registry endpoints (redirect hops and retries included).
    pub requests: AtomicU64,
    /// Requests sent to token realms.
    pub token_requests: AtomicU64,
    /// Retries after a connection error or a retryable status.
    pub retries: AtomicU64,
}

struct EndpointState {
    ep: Endpoint,
    base: Url,
    http: reqwest::Client,
    challenge: Mutex<Option<Challenge>>,
    /// Answered at least once: its later failures are retried, not skipped.
    answered: AtomicBool,
    /// Could not be reached before it ever answered: skipped from now on.
    dead: AtomicBool,
}

/// A request body. Every kind can be sent again (retries re-read it from the start).
#[derive(Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    Bytes(Bytes),
    /// `length` bytes at `offset` of a file.
    File {
        path: PathBuf,
        offset: u64,
        length: u64,
    },
    /// A stream made anew for each attempt (a layer tar compressed on the fly, ...);
    /// `length` is sent as Content-Length when known, else the body is chunked.
    Reader {
        open: Arc<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>,
        length: Option<u64>,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Body::File { path, offset, length } => write!(f, "File({}, {offset}, {length})", path.display()),
            Body::Reader { length, .. } => write!(f, "Reader({length:?})"),
        }
    }
}

/// One request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// `/v2/...` (relative to the endpoint) or an absolute URL (an upload `Location`).
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Scopes the token must grant: `repository:NAME:pull`, `repository:NAME:pull,push`, ...
    pub scopes: Vec<String>,
    pub body: Body,
    /// Statuses that are answers, not errors (empty: 2xx).
    pub accept: Vec<u16>,
    /// Largest body [`Client::request`] reads.
    pub max_body: u64,
}

impl Request {
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        Request {
            method,
            target: target.into(),
            headers: Vec::new(),
            scopes: Vec::new(),
            body: Body::Empty,
            accept: Vec::new(),
            max_body: 4 << 20,
        }
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn scope(mut self, s: impl Into<String>) -> Self {
        self.scopes.push(s.into());
        self
    }
    fn accepts(&self, status: u16) -> bool {
        if self.accept.is_empty() {
            (200..300).contains(&status)
        } else {
            self.accept.contains(&status)
        }
    }
}

/// What was sent as a streamed request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub bytes: u64,
    pub digest: Digest,
}

/// A buffered answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The final URL without userinfo or query (safe to show).
    pub url: String,
    pub body: Vec<u8>,
    /// The request body as sent (for bodies other than `Empty`).
    pub sent: Option<Sent>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A streamed answer.
pub struct Streaming {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub url: String,
    pub body: BodyReader,
}

impl Streaming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response body as a blocking `Read`, with an idle timeout per chunk and the caller's
/// cancellation flag (a cancelled read fails with `Fault::Aborted`).
pub struct BodyReader {
    resp: Option<reqwest::Response>,
    buf: Bytes,
    cancel: Arc<AtomicBool>,
    idle: Duration,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            let Some(resp) = self.resp.as_mut() else { return Ok(0) };
            match rt::block(resp.chunk(), &self.cancel, Some(self.idle)) {
                Ok(Ok(Some(b))) => self.buf = b,
                Ok(Ok(None)) => {
                    self.resp = None;
                    return Ok(0);
                }
                Ok(Err(e)) => return Err(io::Error::new(io::ErrorKind::ConnectionReset, describe(&e))),
                Err(Interrupted::Aborted) => return Err(Fault::Aborted.into_io()),
                Err(Interrupted::TimedOut) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no data from the registry for too long"))
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf.split_to(n));
        Ok(n)
    }
}

/// Why one attempt on one endpoint failed.
enum Failure {
    /// No HTTP answer (refused, reset, TLS, timeout): another endpoint or a retry may help.
    Connect(String),
    /// Final.
    Fatal(RegistryError),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        Failure::Fatal(e)
    }
}

/// The error text of a reqwest error with its causes (rustls' reason included), no URL.
fn describe(e: &reqwest::Error) -> String {
    let mut s = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    if e.is_timeout() {
        s.push_str("timed out");
    }
    while let Some(c) = cur {
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&c.to_string());
        cur = c.source();
    }
    if s.is_empty() {
        s = "connection failed".into();
    }
    s
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// The registry client (see the module docs).
pub struct Client {
    registry: String,
    endpoints: Vec<EndpointState>,
    credentials: Credentials,
    offline_token: bool,
    /// The refresh token in use: the caller's identity token, replaced by one a token issuer
    /// handed out (at login, or rotated when the old one was used).
    identity_token: Mutex<Option<String>>,
    tokens: Mutex<HashMap<(usize, Vec<String>), Token>>,
    /// One token fetch at a time: parallel layers wanting the same scope set share one request.
    token_gate: Mutex<()>,
    retry: RetryPolicy,
    idle: Duration,
    user_agent: String,
    pub stats: Stats,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        let mut endpoints = Vec::new();
        for ep in opts.config.endpoints(&opts.registry).into_iter().filter(|ep| !(opts.no_mirrors && ep.mirror)) {
            let base =
                Url::parse(&ep.base).map_err(|e| RegistryError::Invalid(format!("registry {}: {e}", opts.registry)))?;
            let tls = crate::tls::client_config(ep.verify, &opts.config.cert_dirs_for(&ep.cert_host))?;
            let http = reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http1_only()
                .user_agent(opts.user_agent.clone())
                .build()
                .map_err(|e| RegistryError::Invalid(format!("HTTP client: {}", describe(&e))))?;
            endpoints.push(EndpointState {
                ep,
                base,
                http,
                challenge: Mutex::new(None),
                answered: AtomicBool::new(false),
                dead: AtomicBool::new(false),
            });
        }
        let identity_token = match &opts.credentials {
            Credentials::IdentityToken { token, .. } => Some(token.clone()),
            _ => None,
        };
        Ok(Client {
            registry: opts.registry,
            endpoints,
            credentials: opts.credentials,
            offline_token: opts.offline_token,
            identity_token: Mutex::new(identity_token),
            tokens: Mutex::new(HashMap::new()),
            token_gate: Mutex::new(()),
            retry: opts.retry,
            idle: opts.idle_timeout,
            user_agent: opts.user_agent,
            stats: Stats::default(),
        })
    }

    /// The refresh token a token issuer handed out (with [`ClientOptions::offline_token`], or a
    /// rotated one), else the caller's identity token: what `login` stores instead of the
    /// password (Docker's `identitytoken`). None for other credentials.
    pub fn identity_token(&self) -> Option<String> {
        self.identity_token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The registry this client talks to.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The endpoints, in the order they are tried.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.endpoints.iter().map(|e| e.ep.clone()).collect()
    }

    /// Sends `req` and reads its body (at most `req.max_body` bytes). A status `req` does not
    /// accept becomes a typed error (`Unauthorized`, `NotFound`, `RegistryError`).
    pub fn request(&self, req: &Request, cancel: &Arc<AtomicBool>) -> Result<Response, RegistryError> {
        let mut tries = 0;
        loop {
            let (s, sent) = self.send(req, cancel)?;
            let head = req.method == Method::HEAD;
            let mut reader = s.body;
            let mut body = Vec::new();
            let limit = req.max_body;
            if !head {
                if let Some(len) =
                    s.headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse::<u64>().ok())
                {
                    if len > limit && req.accepts(s.status) {
                        return Err(RegistryError::TooLarge { url: s.url, limit });
                    }
                }
                match (&mut reader).take(limit + 1).read_to_end(&mut body) {
                    Ok(_) => {}
                    Err(e) if matches!(strata_core::ingest::stream::fault_of(&e), Some(Fault::Aborted)) => {
                        return Err(RegistryError::Aborted)
                    }
                    Err(e) => {
                        tries += 1;
                        if tries >= self.retry.attempts {
                            return Err(RegistryError::Unreachable {
                                host: self.registry.clone(),
                                detail: e.to_string(),
                            });
                        }
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        rt::sleep(self.retry.backoff(tries), cancel).map_err(|_| RegistryError::Aborted)?;
                        continue;
                    }
                }
                if body.len() as u64 > limit {
                    if !req.accepts(s.status) {
                        body.truncate(limit as usize);
                    } else {
                        return Err(RegistryError::TooLarge { url: s.url, limit });
                    }
                }
            }
            if !req.accepts(s.status) {
                let url = Url::parse(&s.url).unwrap_or_else(|_| self.endpoints[0].base.clone());
                return Err(status_error(s.status, &url, &body));
            }
            let sent = sent.and_then(|x| x.lock().ok().and_then(|g| g.clone()));
            return Ok(Response { status: s.status, headers: s.headers, url: s.url, body, sent });
        }
    }

    /// Sends `req` and hands back the body as a stream. A status `req` does not accept becomes
    /// a typed error (the body is read, bounded, for the registry's error code).
    pub fn stream(&self, req: &Request, cancel: &Arc<AtomicBool>) -> Result<Streaming, RegistryError> {
        let (mut s, _) = self.send(req, cancel)?;
        if !req.accepts(s.status) {
            let mut body = Vec::new();
            let _ = (&mut s.body).take(64 << 10).read_to_end(&mut body);
            let url = Url::parse(&s.url).unwrap_or_else(|_| self.endpoints[0].base.clone());
            return Err(status_error(s.status, &url, &body));
        }
        Ok(s)
    }

    /// Endpoint fallback and retries around [`Client::attempt`].
    fn send(&self, req: &Request, cancel: &Arc<AtomicBool>) -> Result<(Streaming, SentSlot), RegistryError> {
        let mut retry = 0u32;
        loop {
            let mut wait = None;
            let mut last: Option<RegistryError> = None;
            let live: Vec<usize> =
                (0..self.endpoints.len()).filter(|&i| !self.endpoints[i].dead.load(Ordering::Relaxed)).collect();
            if live.is_empty() {
                return Err(RegistryError::Unreachable {
                    host: self.registry.clone(),
                    detail: "no endpoint left".into(),
                });
            }
            for (pos, &i) in live.iter().enumerate() {
                let st = &self.endpoints[i];
                let has_next = pos + 1 < live.len();
                match self.attempt(i, req, cancel) {
                    Ok((resp, sent)) => {
                        st.answered.store(true, Ordering::Relaxed);
                        let status = resp.status;
                        if !req.accepts(status) && st.ep.mirror && has_next {
                            // A mirror that lacks the content (or fails) leaves it to the next endpoint.
                            continue;
                        }
                        if retryable_status(status) && !req.accepts(status) && retry + 1 < self.retry.attempts {
                            let after =
                                resp.header("retry-after").and_then(|v| self.retry.retry_after(v, SystemTime::now()));
                            let too_long = resp.header("retry-after").is_some() && after.is_none() && status == 429;
                            if !too_long {
                                wait = Some(after.unwrap_or_else(|| self.retry.backoff(retry + 1)));
                                last = None;
                                break;
                            }
                        }
                        return Ok((resp, sent));
                    }
                    Err(Failure::Fatal(e)) => return Err(e),
                    Err(Failure::Connect(detail)) => {
                        if has_next && !st.answered.load(Ordering::Relaxed) {
                            st.dead.store(true, Ordering::Relaxed);
                            last = Some(RegistryError::Unreachable { host: self.registry.clone(), detail });
                            continue;
                        }
                        last = Some(RegistryError::Unreachable { host: self.registry.clone(), detail });
                        wait = Some(self.retry.backoff(retry + 1));
                        break;
                    }
                }
            }
            retry += 1;
            match wait {
                Some(w) if retry < self.retry.attempts => {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    rt::sleep(w, cancel).map_err(|_| RegistryError::Aborted)?;
                }
                _ => {
                    return Err(last.unwrap_or_else(|| RegistryError::Unreachable {
                        host: self.registry.clone(),
                        detail: "no endpoint answered".into(),
                    }))
                }
            }
        }
    }

    /// One try on endpoint `i`: authorization, the request, one re-authentication on 401,
    /// redirects for GET/HEAD.
    fn attempt(&self, i: usize, req: &Request, cancel: &Arc<AtomicBool>) -> Result<(Streaming, SentSlot), Failure> {
        let st = &self.endpoints[i];
        let url = match Url::parse(&req.target) {
            Ok(u) => u,
            Err(_) => st
                .base
                .join(&req.target)
                .map_err(|e| RegistryError::Invalid(format!("bad request target {:?}: {e}", req.target)))?,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Invalid(format!("bad request target {}", redact(&url))).into());
        }
        // Credentials go only to the endpoint's own origin (an absolute URL elsewhere gets none).
        let ours = same_origin(&url, &st.base);
        let scopes = auth::canonical_scopes(req.scopes.iter().map(String::as_str));
        let mut authorization = if ours { self.authorization(i, &scopes, None, cancel)? } else { None };
        // Two rounds at most: learn the challenge, then replace a token the registry refused.
        let mut reauths = 0;
        loop {
            let (resp, sent) = self.send_following(st, req, url.clone(), authorization.clone(), ours, cancel)?;
            if resp.status == 401 && ours && reauths < 2 {
                let challenges: Vec<Challenge> = resp
                    .headers
                    .iter()
                    .filter(|(k, _)| k == "www-authenticate")
                    .flat_map(|(_, v)| auth::parse_challenges(v))
                    .collect();
                let chosen = challenges
                    .iter()
                    .find(|c| c.scheme == "bearer")
                    .or_else(|| challenges.iter().find(|c| c.scheme == "basic"))
                    .cloned();
                if let Some(c) = chosen {
                    let mut wanted = scopes.clone();
                    if let Some(s) = c.param("scope") {
                        wanted = auth::canonical_scopes(wanted.iter().map(String::as_str).chain(s.split(' ')));
                    }
                    *st.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                    let sent_token =
                        authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::to_owned);
                    let next = self.authorization(i, &wanted, Some(sent_token.as_deref().unwrap_or("")), cancel)?;
                    if next.is_some() && next != authorization {
                        authorization = next;
                        reauths += 1;
                        continue;
                    }
                }
            }
            return Ok((resp, sent));
        }
    }

    /// Sends one request, following redirects of GET/HEAD; leaving the endpoint's origin drops
    /// the Authorization header for good.
    fn send_following(
        &self,
        st: &EndpointState,
        req: &Request,
        mut url: Url,
        mut authorization: Option<String>,
        ours: bool,
        cancel: &Arc<AtomicBool>,
    ) -> Result<(Streaming, SentSlot), Failure> {
        let follow = req.method == Method::GET || req.method == Method::HEAD;
        for _hop in 0..=MAX_REDIRECTS {
            let mut b = st.http.request(req.method.clone(), url.clone());
            for (k, v) in &req.headers {
                if k.eq_ignore_ascii_case("authorization") {
                    continue;
                }
                b = b.header(k.as_str(), v.as_str());
            }
            if let Some(a) = &authorization {
                b = b.header("Authorization", a.as_str());
            }
            let (body, sent) = self.body_of(&req.body)?;
            if let Some((body, len)) = body {
                if let Some(len) = len {
                    b = b.header("Content-Length", len.to_string());
                }
                b = b.body(body);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let timeout = if matches!(req.body, Body::Empty | Body::Bytes(_)) { Some(self.idle) } else { None };
            let resp = match rt::block(b.send(), cancel, timeout) {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(Failure::Connect(describe(&e))),
                Err(Interrupted::Aborted) => return Err(Failure::Fatal(RegistryError::Aborted)),
                Err(Interrupted::TimedOut) => {
                    return Err(Failure::Connect("timed out waiting for the registry".into()))
                }
            };
            let status = resp.status().as_u16();
            if follow && matches!(status, 301 | 302 | 303 | 307 | 308) {
                let loc = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let Some(loc) = loc else {
                    return Err(RegistryError::Status {
                        status,
                        registry_code: None,
                        message: format!("redirect without Location from {}", redact(&url)),
                    }
                    .into());
                };
                let next = url.join(&loc).map_err(|e| RegistryError::Status {
                    status,
                    registry_code: None,
                    message: format!("bad redirect from {}: {e}", redact(&url)),
                })?;
                if !same_origin(&next, &st.base) || !ours {
                    authorization = None;
                }
                url = next;
                continue;
            }
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_string())))
                .collect();
            let shown = redact(resp.url());
            return Ok((
                Streaming {
                    status,
                    headers,
                    url: shown,
                    body: BodyReader { resp: Some(resp), buf: Bytes::new(), cancel: cancel.clone(), idle: self.idle },
                },
                sent,
            ));
        }
        Err(RegistryError::Status {
            status: 310,
            registry_code: None,
            message: format!("too many redirects from {}", redact(&url)),
        }
        .into())
    }

    /// The Authorization header for `scopes` on endpoint `i`, from the endpoint's challenge:
    /// none before a challenge is known, Basic, or a Bearer token (cached per scope set;
    /// `rejected` is the token a 401 just refused, which forces a fresh one unless another
    /// thread already replaced it).
    fn authorization(
        &self,
        i: usize,
        scopes: &[String],
        rejected: Option<&str>,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Option<String>, Failure> {
        if let Credentials::RegistryToken(t) = &self.credentials {
            return Ok(Some(format!("Bearer {t}")));
        }
        let st = &self.endpoints[i];
        let Some(ch) = st.challenge.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(None) };
        if ch.scheme == "basic" {
            return Ok(match &self.credentials {
                Credentials::Basic { username, password } => Some(basic(username, password)),
                _ => None,
            });
        }
        if ch.scheme != "bearer" {
            return Ok(None);
        }
        let _gate = self.token_gate.lock().unwrap_or_else(|e| e.into_inner());
        let key = (i, scopes.to_vec());
        let now = Instant::now();
        if let Some(t) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            let fresh = t.expires > now + auth::TOKEN_SLACK;
            let refused = rejected.is_some_and(|r| r == t.value);
            if fresh && !refused {
                return Ok(Some(format!("Bearer {}", t.value)));
            }
        }
        let token = self.fetch_token(st, &ch, scopes, cancel)?;
        let header = format!("Bearer {}", token.value);
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(key, token);
        Ok(Some(header))
    }

    /// Asks the challenge's realm for a token for `scopes`.
    fn fetch_token(
        &self,
        st: &EndpointState,
        ch: &Challenge,
        scopes: &[String],
        cancel: &Arc<AtomicBool>,
    ) -> Result<Token, Failure> {
        let realm = ch.param("realm").ok_or_else(|| RegistryError::Status {
            status: 401,
            registry_code: None,
            message: format!("registry {} asked for a bearer token without a realm", self.registry),
        })?;
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Status {
            status: 401,
            registry_code: None,
            message: format!("registry {} named an invalid token realm: {e}", self.registry),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Status {
                status: 401,
                registry_code: None,
                message: format!("token realm {} is not http(s)", redact(&url)),
            }
            .into());
        }
        let service = ch.param("service").map(str::to_owned);
        let mut last = String::new();
        for attempt in 0..self.retry.attempts.min(3) {
            if attempt > 0 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                rt::sleep(self.retry.backoff(attempt), cancel).map_err(|_| RegistryError::Aborted)?;
            }
            let refresh = self.identity_token();
            let b = match (&self.credentials, refresh) {
                // An identity token is exchanged with the OAuth2 form Docker posts
                // (distribution's `fetchTokenWithOAuth`: every field present, scope joined).
                (Credentials::IdentityToken { .. }, Some(token)) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("scope", &scopes.join(" "));
                    form.append_pair("service", service.as_deref().unwrap_or(""));
                    form.append_pair("client_id", auth::CLIENT_ID);
                    form.append_pair("grant_type", "refresh_token");
                    form.append_pair("refresh_token", &token);
                    st.http
                        .post(url.clone())
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(form.finish())
                }
                (creds, _) => {
                    {
                        let mut q = url.query_pairs_mut();
                        q.clear();
                        if let Some(s) = &service {
                            q.append_pair("service", s);
                        }
                        for s in scopes {
                            q.append_pair("scope", s);
                        }
                        if self.offline_token {
                            q.append_pair("offline_token", "true");
                            q.append_pair("client_id", auth::CLIENT_ID);
                        }
                        if let Credentials::Basic { username, .. } = creds {
                            q.append_pair("account", username);
                        }
                    }
                    let mut b = st.http.get(url.clone());
                    if let Credentials::Basic { username, password } = creds {
                        b = b.header("Authorization", basic(username, password));
                    }
                    b
                }
            };
            self.stats.token_requests.fetch_add(1, Ordering::Relaxed);
            let resp = match rt::block(b.send(), cancel, Some(self.idle)) {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    last = describe(&e);
                    continue;
                }
                Err(Interrupted::Aborted) => return Err(RegistryError::Aborted.into()),
                Err(Interrupted::TimedOut) => {
                    last = "timed out".into();
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let mut reader =
                BodyReader { resp: Some(resp), buf: Bytes::new(), cancel: cancel.clone(), idle: self.idle };
            let mut body = Vec::new();
            if let Err(e) = (&mut reader).take(MAX_TOKEN_RESPONSE + 1).read_to_end(&mut body) {
                if matches!(strata_core::ingest::stream::fault_of(&e), Some(Fault::Aborted)) {
                    return Err(RegistryError::Aborted.into());
                }
                last = e.to_string();
                continue;
            }
            if retryable_status(status) {
                last = format!("token endpoint answered {status}");
                continue;
            }
            if status == 401 || status == 403 || (status == 400 && auth::is_oauth_refusal(&body)) {
                let parsed = crate::error::registry_error_of(&body);
                return Err(RegistryError::Unauthorized {
                    status,
                    registry_code: parsed.as_ref().map(|(c, _)| c.clone()).filter(|c| !c.is_empty()),
                    message: match &self.credentials {
                        Credentials::Anonymous => "unauthorized: authentication required".into(),
                        Credentials::IdentityToken { .. } => "unauthorized: the identity token was refused".into(),
                        _ => "unauthorized: incorrect username or password".into(),
                    },
                }
                .into());
            }
            if !(200..300).contains(&status) {
                return Err(status_error(status, &url, &body).into());
            }
            let token = auth::parse_token_response(&body, Instant::now()).ok_or_else(|| RegistryError::Status {
                status,
                registry_code: None,
                message: format!("token endpoint {} answered without a usable token", redact(&url)),
            })?;
            // A refresh token is kept when one was asked for (login) or replaces the one in use
            // (a rotating issuer); Docker's pulls ignore rotation, its login stores it.
            if let Some(r) = &token.refresh {
                if self.offline_token || matches!(self.credentials, Credentials::IdentityToken { .. }) {
                    *self.identity_token.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
                }
            }
            return Ok(token);
        }
        Err(RegistryError::Unreachable { host: url.host_str().unwrap_or("").into(), detail: last }.into())
    }

    /// A reqwest body for one attempt, and where its sha256 will be once it was sent.
    #[allow(clippy::type_complexity)]
    fn body_of(&self, body: &Body) -> Result<(Option<(reqwest::Body, Option<u64>)>, SentSlot), Failure> {
        let (open, length): (Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>>>, Option<u64>) = match body {
            Body::Empty => return Ok((None, None)),
            Body::Bytes(b) => {
                let mut h = Hasher::new();
                h.update(b);
                let sent = Arc::new(Mutex::new(Some(Sent { bytes: b.len() as u64, digest: h.finish() })));
                return Ok((Some((reqwest::Body::from(b.clone()), Some(b.len() as u64))), Some(sent)));
            }
            Body::File { path, offset, length } => {
                let (path, offset, length) = (path.clone(), *offset, *length);
                (
                    Box::new(move || {
                        let mut f = std::fs::File::open(&path)?;
                        f.seek(SeekFrom::Start(offset))?;
                        Ok(Box::new(f.take(length)) as Box<dyn Read + Send>)
                    }),
                    Some(length),
                )
            }
            Body::Reader { open, length } => {
                let open = open.clone();
                (Box::new(move || open()), *length)
            }
        };
        let source = open().map_err(|e| RegistryError::io("open", "request body", e))?;
        let sent: Arc<Mutex<Option<Sent>>> = Arc::new(Mutex::new(None));
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let slot = sent.clone();
        // The body is read on a thread of its own: the source may block (files, compressors).
        std::thread::Builder::new()
            .name("strata-upload".into())
            .spawn(move || pump(source, tx, slot))
            .map_err(|e| RegistryError::io("spawn", "upload thread", e))?;
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        Ok((Some((reqwest::Body::wrap_stream(stream), length)), Some(sent)))
    }

    /// The user agent sent.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
}

type SentSlot = Option<Arc<Mutex<Option<Sent>>>>;

/// Reads `source` in chunks into the body channel, hashing; records what was sent at the end.
fn pump(
    mut source: Box<dyn Read + Send>,
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    slot: Arc<Mutex<Option<Sent>>>,
) {
    let mut h = Hasher::new();
    loop {
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                h.update(&buf);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return; // the request was dropped (aborted, failed)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
    let bytes = h.len();
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sent { bytes, digest: h.finish() });
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}
