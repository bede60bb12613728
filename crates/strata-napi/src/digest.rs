//! sha256 over buffers and files.
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// `sha256:<hex>` of a buffer (synchronous; for small inputs and benchmarks).
#[napi]
pub fn sha256_buffer(data: &[u8]) -> String {
    strata_core::digest::Digest::of(data).to_string()
}

pub struct Sha256File {
    path: String,
}

impl crate::NativeTask for Sha256File {
    type Output = String;
    type JsValue = String;
    fn compute(&mut self) -> std::result::Result<String, crate::Failure> {
        strata_core::digest::sha256_file(std::path::Path::new(&self.path))
            .map(|d| d.to_string())
            .map_err(|e| strata_core::error::IoAt::new("read", &self.path, e).into())
    }
    fn resolve(&mut self, _: Env, out: String) -> Result<String> {
        Ok(out)
    }
}

/// `sha256:<hex>` of a file, computed off the JS thread.
#[napi(ts_return_type = "Promise<string>")]
pub fn sha256_file(path: String) -> AsyncTask<crate::error::Job<Sha256File>> {
    crate::job(Sha256File { path })
}
