//! Errors of the registry transport, each with a stable code (`strata_core::error::Coded`).
//!
//! Messages never carry credentials or tokens: URLs are printed without userinfo or query
//! (a token can ride in a query string), and the registry's error text is cut short.
use strata_core::error::{Coded, ErrorCode};
use strata_core::ingest::layer::LayerError;

/// Errors of the registry client and of streamed pulls.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused our credentials (or we had none) after the auth flow ran.
    #[error("{message}")]
    Unauthorized { status: u16, registry_code: Option<String>, message: String },
    /// 404 (the registry's `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `NAME_UNKNOWN`, ...).
    #[error("{message}")]
    NotFound { status: u16, registry_code: Option<String>, message: String },
    /// Any other answer we cannot use: an unexpected status, an HTML page, a garbage token.
    #[error("{message}")]
    Status { status: u16, registry_code: Option<String>, message: String },
    /// No endpoint could be reached (connection refused, TLS failure, timeouts), after retries.
    #[error("cannot reach registry {host}: {detail}")]
    Unreachable { host: String, detail: String },
    /// A response body larger than the caller allows (a manifest over 4 MiB, ...).
    #[error("response from {url} exceeds {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// A blob's bytes do not match its descriptor (digest or size).
    #[error("blob {digest}: {detail}")]
    BlobMismatch { digest: String, detail: String },
    /// Bad configuration or arguments (daemon.json, certificates, a malformed name).
    #[error("{0}")]
    Invalid(String),
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: String, source: std::io::Error },
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Compressing a layer for push failed (a layer file that changed, I/O).
    #[error(transparent)]
    Compress(#[from] strata_core::egress::gzlayer::GzLayerError),
    #[error("operation aborted")]
    Aborted,
}

impl Coded for RegistryError {
    fn code(&self) -> ErrorCode {
        match self {
            RegistryError::Unauthorized { .. } => ErrorCode::Unauthorized,
            RegistryError::NotFound { .. } => ErrorCode::NotFound,
            RegistryError::Status { .. } => ErrorCode::RegistryError,
            RegistryError::Unreachable { .. } => ErrorCode::RegistryUnreachable,
            RegistryError::TooLarge { .. } => ErrorCode::ResponseTooLarge,
            RegistryError::BlobMismatch { .. } => ErrorCode::DigestMismatch,
            RegistryError::Invalid(_) => ErrorCode::InvalidArgument,
            RegistryError::Io { .. } => ErrorCode::Io,
            RegistryError::Layer(e) => e.code(),
            RegistryError::Compress(e) => e.code(),
            RegistryError::Aborted => ErrorCode::Aborted,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            RegistryError::Io { source, .. } => source.raw_os_error(),
            RegistryError::Layer(e) => e.errno(),
            RegistryError::Compress(e) => e.errno(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            RegistryError::Io { path, .. } => Some(path.clone()),
            RegistryError::Layer(e) => e.path(),
            RegistryError::Compress(e) => e.path(),
            _ => None,
        }
    }
    fn http_status(&self) -> Option<u16> {
        match self {
            RegistryError::Unauthorized { status, .. }
            | RegistryError::NotFound { status, .. }
            | RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    fn registry_code(&self) -> Option<String> {
        match self {
            RegistryError::Unauthorized { registry_code, .. }
            | RegistryError::NotFound { registry_code, .. }
            | RegistryError::Status { registry_code, .. } => registry_code.clone(),
            _ => None,
        }
    }
}

impl RegistryError {
    pub(crate) fn io(op: &'static str, path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        RegistryError::Io { op, path: path.as_ref().display().to_string(), source }
    }
}

/// The first error of a registry's JSON error body (`{"errors":[{"code","message"}]}`), if any.
pub fn registry_error_of(body: &[u8]) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    let b: Body = serde_json::from_slice(body).ok()?;
    let first = b.errors.into_iter().next()?;
    Some((first.code.unwrap_or_default(), first.message.unwrap_or_default()))
}

/// A URL as it may appear in messages: scheme, host and path only.
pub fn redact(url: &reqwest::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(url.path());
    s
}

/// Builds the typed error for an unusable answer, as Docker words them where it can.
pub fn status_error(status: u16, url: &reqwest::Url, body: &[u8]) -> RegistryError {
    let parsed = registry_error_of(body);
    let registry_code = parsed.as_ref().map(|(c, _)| c.clone()).filter(|c| !c.is_empty());
    let what = match &parsed {
        Some((code, msg)) => {
            let msg: String = msg.chars().take(300).collect();
            if code.is_empty() {
                msg
            } else {
                format!("{}: {msg}", code.to_lowercase().replace('_', " "))
            }
        }
        None => {
            let kind = if body.starts_with(b"<") || body.windows(5).any(|w| w.eq_ignore_ascii_case(b"<html")) {
                "an HTML page"
            } else if body.is_empty() {
                "no body"
            } else {
                "a body that is not a registry error"
            };
            format!("unexpected status {status} from {} ({kind})", redact(url))
        }
    };
    match status {
        401 | 403 => RegistryError::Unauthorized { status, registry_code, message: what },
        404 => RegistryError::NotFound { status, registry_code, message: what },
        _ => RegistryError::Status { status, registry_code, message: what },
    }
}
