//! The async HTTP client runs on one small tokio runtime per process; callers are plain threads
//! (napi tasks, one thread per layer) that wait on it with [`block`], which also watches the
//! caller's cancellation flag and a timeout, so neither an abort nor a silent peer can leave a
//! thread stuck in a read.
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How often a waiting thread looks at its cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(25);

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-registry-io")
            .enable_all()
            .build()
            .expect("tokio runtime for the registry client")
    })
}

/// Why [`block`] returned without the future's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupted {
    Aborted,
    TimedOut,
}

/// Runs `f` to completion on the runtime from a non-runtime thread, unless `cancel` is set or
/// `timeout` passes first.
pub(crate) fn block<F: Future>(f: F, cancel: &AtomicBool, timeout: Option<Duration>) -> Result<F::Output, Interrupted> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Interrupted::Aborted);
    }
    runtime().block_on(async {
        let watch = async {
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                tokio::time::sleep(CANCEL_POLL).await;
            }
        };
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            out = f => Ok(out),
            _ = watch => Err(Interrupted::Aborted),
            _ = deadline => Err(Interrupted::TimedOut),
        }
    })
}

/// Sleeps `d` unless cancelled first (then `Err(Aborted)`).
pub(crate) fn sleep(d: Duration, cancel: &AtomicBool) -> Result<(), Interrupted> {
    // The timer is made inside the runtime (tokio::time::sleep needs its context).
    block(async move { tokio::time::sleep(d).await }, cancel, None)
}
