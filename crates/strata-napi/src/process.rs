//! Container process plumbing (see `strata_core::console` and `strata_core::reaper`): the
//! console socket a runtime sends a pty master to, window sizes, spawning under a reaper, and
//! running a build step's runtime to its end (`strata_core::runproc`). Waiting for the runtime
//! to connect, or to end, happens on a thread of its own (not the libuv pool: a runtime can take
//! a while, and the pool belongs to the store's work).
//!
//! Fds cross from JS as numbers; [`js_fd`] is the one place that turns such a number into a
//! `BorrowedFd` for the duration of a call.
#![cfg_attr(test, allow(dead_code))]
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use strata_core::console::{self, ConsoleSocket};
use strata_core::reaper::{spawn_reaped, ReapedCommand};

use crate::cancel::NativeCancel;
use crate::Failure;
use strata_core::error::ErrorCode;

/// A listening console socket; `receive()` resolves with the pty master's fd (owned by JS).
#[napi]
pub struct NativeConsoleSocket {
    inner: Arc<Mutex<Option<ConsoleSocket>>>,
}

#[napi]
impl NativeConsoleSocket {
    /// Listens on `path` (its directory must exist and be private to the caller).
    #[napi(factory)]
    pub fn bind(env: Env, path: String) -> Result<Self> {
        let s = ConsoleSocket::bind(std::path::Path::new(&path)).map_err(crate::throw(&env))?;
        Ok(NativeConsoleSocket { inner: Arc::new(Mutex::new(Some(s))) })
    }

    /// Waits (on a thread of its own) for the runtime to send the terminal; the socket is
    /// closed and its file removed once this settles. `cancel` ends the wait early.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn receive<'env>(
        &self,
        env: &'env Env,
        timeout_ms: u32,
        cancel: Option<&NativeCancel>,
    ) -> Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred()?;
        let inner = self.inner.clone();
        let flag = cancel.map(|c| c.flag.clone()).unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
        std::thread::Builder::new()
            .name("strata-console".into())
            .spawn(move || {
                let sock = inner.lock().ok().and_then(|mut g| g.take());
                let outcome: std::result::Result<i32, Failure> = match sock {
                    None => Err(Failure::new(ErrorCode::InvalidArgument, "console socket already used")),
                    Some(sock) => sock
                        .receive(Duration::from_millis(timeout_ms.into()), &flag)
                        .map(|fd| fd.into_raw_fd())
                        .map_err(Failure::from),
                };
                // The error object is made on the JS thread, where the promise settles.
                deferred.resolve(move |env| outcome.map_err(|f| f.into_js(&env)))
            })
            .map_err(|e| Error::new(Status::GenericFailure, format!("cannot start a thread: {e}")))?;
        Ok(promise)
    }

    /// Closes the socket without waiting (removes its file).
    #[napi]
    pub fn close(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.take();
        }
    }
}

/// An fd number JS passed in, borrowed for the call it was passed to.
fn js_fd<'a>(fd: i32) -> std::result::Result<BorrowedFd<'a>, Failure> {
    if fd < 0 {
        return Err(Failure::new(ErrorCode::InvalidArgument, format!("not a file descriptor: {fd}")));
    }
    // SAFETY: JS keeps the fd it passes open until the call returns (a tty stream, a pipe or a
    // socket it owns), and the borrow does not outlive the call; a number that is not an open
    // fd only makes the syscalls fail with EBADF.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Sets the window size of the terminal `fd` (TIOCSWINSZ; the kernel signals SIGWINCH).
#[napi]
pub fn set_window_size(env: Env, fd: i32, rows: u32, cols: u32) -> Result<()> {
    let clamp = |v: u32| v.min(u16::MAX.into()) as u16;
    let fd = js_fd(fd).map_err(|f| f.into_js(&env))?;
    console::set_window_size(fd, clamp(rows), clamp(cols)).map_err(crate::throw(&env))
}

/// The window size of the terminal `fd`.
#[napi(object)]
pub struct NativeWindowSize {
    pub rows: u32,
    pub cols: u32,
}

#[napi]
pub fn window_size(env: Env, fd: i32) -> Result<NativeWindowSize> {
    let fd = js_fd(fd).map_err(|f| f.into_js(&env))?;
    let (rows, cols) = console::window_size(fd).map_err(crate::throw(&env))?;
    Ok(NativeWindowSize { rows: rows.into(), cols: cols.into() })
}

/// A terminal's settings as `makeTerminalRaw` found them (opaque to JS).
#[napi]
pub struct NativeSavedTerminal {
    saved: console::SavedTerminal,
}

/// Puts the terminal `fd` in raw mode (cfmakeraw, as docker's CLI); returns the settings to
/// restore with `restoreTerminal`.
#[napi]
pub fn make_terminal_raw(env: Env, fd: i32) -> Result<NativeSavedTerminal> {
    let fd = js_fd(fd).map_err(|f| f.into_js(&env))?;
    Ok(NativeSavedTerminal { saved: console::make_raw(fd).map_err(crate::throw(&env))? })
}

/// Puts back the settings `makeTerminalRaw` returned.
#[napi]
pub fn restore_terminal(env: Env, fd: i32, saved: &NativeSavedTerminal) -> Result<()> {
    let fd = js_fd(fd).map_err(|f| f.into_js(&env))?;
    console::restore_terminal(fd, &saved.saved).map_err(crate::throw(&env))
}

/// Starts `program` under a subreaper (fork on the pool: a large heap makes fork slow). Resolves
/// with the read end of the reaper's event pipe (12-byte events; see `strata_core::reaper`),
/// owned by JS. `stdio` fds (or null for /dev/null) are given to the program.
#[napi(ts_return_type = "Promise<number>")]
pub fn spawn_reaped_process(
    program: String,
    args: Vec<String>,
    env: Vec<String>,
    stdin: Option<i32>,
    stdout: Option<i32>,
    stderr: Option<i32>,
) -> crate::BlockingTask<i32> {
    crate::blocking(move || -> std::result::Result<i32, Failure> {
        let mut stdio = [None; 3];
        for (slot, fd) in stdio.iter_mut().zip([stdin, stdout, stderr]) {
            *slot = fd.map(js_fd).transpose()?;
        }
        let cmd = ReapedCommand { program: &program, args: &args, env: &env, stdio };
        Ok(spawn_reaped(&cmd)?.into_raw_fd())
    })
}

/// What `runProcess` tells its caller, in order: `(1, 0, chunk)` stdout, `(2, 0, chunk)`
/// stderr, then exactly one of `(3, status, null)` (it ended: exit code or 128 + signal) or
/// `(4, 0, null, err)` (it could not be run or read). One function for all of them, so the end
/// never overtakes the output (two queues into JS would not keep their order).
type RunEvent = FnArgs<(u32, i32, Option<Buffer>, Option<Failure>)>;
type RunEventFn = ThreadsafeFunction<RunEvent, (), RunEvent, Status, false>;

/// Runs `program` with `args` to its end on a thread of its own (`strata_core::runproc`:
/// posix_spawn, no fork of this process; stdin /dev/null, output through pipes), reporting
/// through `onEvent` (see [`RunEvent`]). The thread, and so the event loop, lives until the
/// end has been reported.
#[napi(
    ts_args_type = "program: string, args: string[], onEvent: (kind: number, status: number, chunk: Buffer | null, err: Error | null) => void"
)]
pub fn run_process(env: Env, program: String, args: Vec<String>, on_event: RunEventFn) -> Result<()> {
    std::thread::Builder::new()
        .name("strata-runproc".into())
        .spawn(move || {
            // Unbounded queue: NonBlocking never drops a chunk.
            let send = |kind: u32, status: i32, chunk: Option<Buffer>, err: Option<Failure>| {
                on_event.call((kind, status, chunk, err).into(), ThreadsafeFunctionCallMode::NonBlocking);
            };
            let ended = strata_core::runproc::run(&program, &args, |stream, data| {
                let kind = match stream {
                    strata_core::runproc::Stream::Stdout => 1,
                    strata_core::runproc::Stream::Stderr => 2,
                };
                send(kind, 0, Some(Buffer::from(data.to_vec())), None);
            });
            match ended {
                Ok(status) => send(3, status, None, None),
                Err(e) => send(4, 0, None, Some(Failure::from(e))),
            }
        })
        .map(|_| ())
        .map_err(|e| Failure::new(ErrorCode::Io, format!("cannot start a thread: {e}")).into_js(&env))
}
