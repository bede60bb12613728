//! strata-registry: the registry transport and streamed pulls, with no napi in it.
//!
//! * [`config`] — endpoints (mirrors, HTTPS, plain HTTP for insecure registries), certs dirs;
//! * [`tls`] — rustls configurations (ring provider) from the system roots and certs dirs;
//! * [`auth`] — challenges, scopes, tokens; [`retry`] — backoff and `Retry-After`;
//! * [`client`] — the client: auth flow, redirects without credentials, retries, bodies;
//! * [`pull`] — layer blobs streamed socket → sha256 → decompress → the core's safe extractor,
//!   teed to a partial file so an interrupted blob resumes with `Range`.
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod pull;
pub mod push;
pub mod retry;
mod rt;
pub mod tls;

pub use client::{Body, Client, ClientOptions, Request, Response, Sent, Streaming};
pub use config::RegistryConfig;
pub use error::RegistryError;
