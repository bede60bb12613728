//! sha256 over buffers and files.
use napi_derive::napi;

/// `sha256:<hex>` of a buffer (synchronous; for small inputs and benchmarks).
#[napi]
pub fn sha256_buffer(data: &[u8]) -> String {
    strata_core::digest::Digest::of(data).to_string()
}

/// `sha256:<hex>` of a file, computed off the JS thread.
#[napi(ts_return_type = "Promise<string>")]
pub fn sha256_file(path: String) -> crate::BlockingTask<String> {
    crate::blocking(move || {
        strata_core::digest::sha256_file(std::path::Path::new(&path))
            .map(|d| d.to_string())
            .map_err(|e| strata_core::error::IoAt::new("read", &path, e))
    })
}
