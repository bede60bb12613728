//! rustls client configurations: the system's roots plus an endpoint's certs dir (CA roots and
//! a client key pair, as Docker reads them), or no verification for an insecure registry.
//!
//! The crypto provider is `ring` (see README "Registry transport" for its build-time cost next
//! to aws-lc-rs); it is passed explicitly, so no process-wide default provider is installed.
use crate::error::RegistryError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(ring::default_provider())).clone()
}

/// The system's CA roots (`/etc/ssl/certs` and friends), read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// Files of `dir` ending in `ext`, sorted (Docker reads them in directory order).
fn files_with(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, RegistryError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| RegistryError::io("read dir", dir, e))?;
    for e in rd {
        let e = e.map_err(|e| RegistryError::io("read dir", dir, e))?;
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) == Some(ext) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn read_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(p)
        .map_err(|e| RegistryError::Invalid(format!("{}: {e}", p.display())))?
        .collect();
    let certs = certs.map_err(|e| RegistryError::Invalid(format!("{}: {e}", p.display())))?;
    if certs.is_empty() {
        return Err(RegistryError::Invalid(format!("{}: no certificate in it", p.display())));
    }
    Ok(certs)
}

/// Builds the client configuration for an endpoint. `cert_dirs` are its existing certs dirs.
pub fn client_config(verify: bool, cert_dirs: &[PathBuf]) -> Result<ClientConfig, RegistryError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Invalid(format!("TLS set-up: {e}")))?;
    let builder = if verify {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(system_roots().iter().cloned());
        for dir in cert_dirs {
            for ca in files_with(dir, "crt")? {
                for c in read_certs(&ca)? {
                    roots.add(c).map_err(|e| RegistryError::Invalid(format!("{}: {e}", ca.display())))?;
                }
            }
        }
        builder.with_root_certificates(roots)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    };
    // Docker: each `X.cert` needs `X.key` (and the reverse); the first pair found is used.
    for dir in cert_dirs {
        if let Some(cert) = files_with(dir, "cert")?.into_iter().next() {
            let key = cert.with_extension("key");
            if !key.exists() {
                return Err(RegistryError::Invalid(format!(
                    "missing key {} for client certificate {}",
                    key.display(),
                    cert.display()
                )));
            }
            let chain = read_certs(&cert)?;
            let k = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| RegistryError::Invalid(format!("{}: {e}", key.display())))?;
            return builder
                .with_client_auth_cert(chain, k)
                .map_err(|e| RegistryError::Invalid(format!("client certificate {}: {e}", cert.display())));
        }
        for key in files_with(dir, "key")? {
            if !key.with_extension("cert").exists() {
                return Err(RegistryError::Invalid(format!(
                    "missing client certificate {} for key {}",
                    key.with_extension("cert").display(),
                    key.display()
                )));
            }
        }
    }
    Ok(builder.with_no_client_auth())
}

/// Accepts any server certificate: HTTPS to a registry the user declared insecure (Docker's
/// `InsecureSkipVerify`). Signatures are still checked, so the session is at least consistent.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
