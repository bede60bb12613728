//! A cancellation flag shared between JS (an `AbortSignal` listener) and a running native task.
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set from JS when the caller's `AbortSignal` fires; native loops poll it between units of work.
#[napi]
#[derive(Default)]
pub struct NativeCancel {
    pub(crate) flag: Arc<AtomicBool>,
}

impl NativeCancel {
    /// The flag a task polls: `cancel`'s, or one nobody sets.
    pub(crate) fn flag_of(cancel: Option<&NativeCancel>) -> Arc<AtomicBool> {
        cancel.map(|c| c.flag.clone()).unwrap_or_default()
    }
}

#[napi]
impl NativeCancel {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }
    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}
