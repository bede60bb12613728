//! A tiny subreaper for processes the OCI runtime leaves behind when it detaches.
//!
//! With a terminal, runc must detach (`run -d` / `exec -d` with `--console-socket`): it starts
//! the process, sends the pty master and exits, and the container's process is re-parented to
//! the nearest *child subreaper* among its ancestors — or to the host's init, which would reap it
//! and lose its exit status. Docker's answer is containerd-shim, a subreaper. Ours is this: a
//! process forked from the caller (no exec, so no binary to ship) that
//!
//! 1. starts a new session (a Ctrl-C typed at the caller's terminal does not reach it),
//! 2. marks itself `PR_SET_CHILD_SUBREAPER`,
//! 3. forks the runtime with the given stdio and execs it,
//! 4. closes every fd it inherited except its event pipe (a long-lived process holding copies
//!    of the caller's pipes and sockets would keep them from ever reaching EOF),
//! 5. reaps every child that ends — the runtime, then the process it left — writing one event
//!    per child to the pipe, and exits when it has no children left.
//!
//! It is forked twice (the middle process exits at once), so the caller never has to reap it;
//! it outlives the caller, so a container whose caller died is still reaped. Between `fork` and
//! `execve`/`_exit` only async-signal-safe calls are made; everything is prepared before.
//!
//! Event wire format (the read end of the pipe), 12 bytes per event, little-endian:
//! `kind: u32, pid: i32, value: i32` with kind 1 = runtime started (`pid`), 2 = a child ended
//! (`pid`, `value` = its raw wait status), 3 = exec of the runtime failed (`value` = errno).
//! EOF means the reaper is gone (it has no children left).
//!
//! Syscalls go through rustix (pipe, access, setsid, the subreaper prctl, dup2 onto stdio,
//! wait, write) except where it has no safe form: `fork`, `execve`, `_exit`, signal
//! dispositions and `close_range`, each an `unsafe` block below with the reason it is sound.
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

pub const EVENT_LEN: usize = 12;
pub const EVENT_STARTED: u32 = 1;
pub const EVENT_EXITED: u32 = 2;
pub const EVENT_EXEC_FAILED: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("cannot find {program} in PATH")]
    NotFound { program: String },
    #[error("invalid argument for {program}: {what} contains a NUL byte")]
    Nul { program: String, what: &'static str },
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: io::Error },
}

impl crate::error::Coded for ReaperError {
    fn code(&self) -> crate::error::ErrorCode {
        match self {
            ReaperError::NotFound { .. } | ReaperError::Spawn { .. } => crate::error::ErrorCode::RuntimeFailed,
            ReaperError::Nul { .. } => crate::error::ErrorCode::InvalidArgument,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            ReaperError::Spawn { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            ReaperError::NotFound { program }
            | ReaperError::Spawn { program, .. }
            | ReaperError::Nul { program, .. } => Some(program.clone()),
        }
    }
}

/// What to run under the reaper.
pub struct ReapedCommand<'a> {
    /// A path, or a name looked up in `PATH` (of `env`, else of this process).
    pub program: &'a str,
    /// argv[1..].
    pub args: &'a [String],
    /// `KEY=VALUE` entries: the whole environment of the program.
    pub env: &'a [String],
    /// The program's stdin/stdout/stderr; `None` is /dev/null.
    pub stdio: [Option<BorrowedFd<'a>>; 3],
}

fn cstr(program: &str, what: &'static str, s: &[u8]) -> Result<CString, ReaperError> {
    CString::new(s).map_err(|_| ReaperError::Nul { program: program.into(), what })
}

/// `program` as a path: itself when it has a slash, else the first executable in PATH.
pub fn resolve_program(program: &str, env: &[String]) -> Result<PathBuf, ReaperError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .map(|s| s.to_string())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(program);
        if rustix::fs::access(&cand, rustix::fs::Access::EXEC_OK).is_ok() && cand.is_file() {
            return Ok(cand);
        }
    }
    Err(ReaperError::NotFound { program: program.into() })
}

/// NUL-terminated strings and the NULL-terminated array of pointers to them that `execve`
/// takes. The pointers point into `strings`' heap buffers, which never move or change while
/// this lives (neither field is ever touched again after [`CStrArray::new`]).
struct CStrArray {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CStrArray {
    fn new(strings: Vec<CString>) -> Self {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStrArray { _strings: strings, ptrs }
    }
}

/// Starts `cmd` under a new reaper; returns the read end of its event pipe (`O_CLOEXEC`).
pub fn spawn_reaped(cmd: &ReapedCommand) -> Result<OwnedFd, ReaperError> {
    let program = resolve_program(cmd.program, cmd.env)?;
    let spawn_err = |source| ReaperError::Spawn { program: cmd.program.into(), source };
    let path = cstr(cmd.program, "the program path", program.as_os_str().as_bytes())?;
    let mut argv = vec![cstr(cmd.program, "argv[0]", OsStr::new(cmd.program).as_bytes())?];
    for a in cmd.args {
        argv.push(cstr(cmd.program, "an argument", a.as_bytes())?);
    }
    let envp: Vec<CString> =
        cmd.env.iter().map(|e| cstr(cmd.program, "an environment entry", e.as_bytes())).collect::<Result<_, _>>()?;
    let (argv, envp) = (CStrArray::new(argv), CStrArray::new(envp));

    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(spawn_err)?;
    let stdio: [BorrowedFd; 3] = [0, 1, 2].map(|i| cmd.stdio[i].unwrap_or(null.as_fd()));
    let (events_r, events_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| spawn_err(e.into()))?;

    let plan = ChildPlan { events: events_w.as_fd(), stdio, path: &path, argv: &argv, envp: &envp };
    // SAFETY: the child runs only `middle_child` (then `reaper_child`), which allocate nothing,
    // take no lock and make async-signal-safe calls only on what `plan` prepared before the
    // fork, and never return (they exec or exit) — what a fork of a threaded process allows.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(spawn_err(io::Error::last_os_error()));
    }
    if pid == 0 {
        middle_child(&plan)
    }
    drop(events_w);
    // The middle process exits as soon as it has forked the reaper.
    let pid = Pid::from_raw(pid);
    loop {
        match rustix::process::waitpid(pid, WaitOptions::empty()) {
            Ok(Some((_, status))) if status.exit_status() == Some(0) => return Ok(events_r),
            Ok(Some(_)) => return Err(spawn_err(io::Error::other("the reaper could not be forked"))),
            Ok(None) | Err(Errno::INTR) => continue,
            // SIGCHLD ignored by the host: the kernel reaped it already.
            Err(Errno::CHILD) => return Ok(events_r),
            Err(e) => return Err(spawn_err(e.into())),
        }
    }
}

/// Writes one event; a reader that went away is not the reaper's problem (SIGPIPE is ignored).
fn event(fd: BorrowedFd<'_>, kind: u32, pid: i32, value: i32) {
    let mut b = [0u8; EVENT_LEN];
    b[0..4].copy_from_slice(&kind.to_le_bytes());
    b[4..8].copy_from_slice(&pid.to_le_bytes());
    b[8..12].copy_from_slice(&value.to_le_bytes());
    // 12 bytes < PIPE_BUF: atomic.
    let _ = rustix::io::write(fd, &b);
}

/// `_exit(code)`: ends a forked child at once (no atexit handlers, no stdio flush of the
/// caller's buffers).
fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit is async-signal-safe, takes an integer and runs none of our code.
    unsafe { libc::_exit(code) }
}

/// This thread's errno, after a libc call that failed.
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Every catchable signal back to its default action (the caller's handlers mean nothing in
/// a forked process) and none blocked, then SIGPIPE ignored (see [`event`]).
fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            set_default_action(sig, libc::SIG_DFL);
        }
    }
    set_default_action(libc::SIGPIPE, libc::SIG_IGN);
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigprocmask only reads it. Both are
    // async-signal-safe.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut());
    }
}

/// `sigaction(sig, {SIG_DFL or SIG_IGN})`.
fn set_default_action(sig: libc::c_int, action: libc::sighandler_t) {
    debug_assert!(action == libc::SIG_DFL || action == libc::SIG_IGN);
    // SAFETY: a zeroed sigaction is valid; with SIG_DFL or SIG_IGN (never a handler address)
    // no code of ours runs on a signal. sigaction is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = action;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// `close_range(first, last, flags)` (rustix has no wrapper; libc's needs glibc 2.34).
///
/// # Safety
/// Closes (or marks close-on-exec) fds other code may own: call only in a forked child that
/// is about to exec, or that uses none of them again.
unsafe fn close_range(first: u32, last: u32, flags: libc::c_int) {
    // SAFETY: integer arguments only; what it closes is the caller's contract (above).
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
}

/// Everything the forked processes need, prepared before the fork (they must not allocate).
#[derive(Clone, Copy)]
struct ChildPlan<'a> {
    events: BorrowedFd<'a>,
    stdio: [BorrowedFd<'a>; 3],
    path: &'a CStr,
    argv: &'a CStrArray,
    envp: &'a CStrArray,
}

/// The middle process: new session, fork the reaper, exit. Runs in a forked child.
fn middle_child(plan: &ChildPlan) -> ! {
    let _ = rustix::process::setsid();
    // SAFETY: as in `spawn_reaped`: the child runs `reaper_child` only.
    match unsafe { libc::fork() } {
        0 => reaper_child(plan),
        p if p < 0 => exit_now(1),
        _ => exit_now(0),
    }
}

/// The reaper: see the module docs. Runs in a forked child, async-signal-safe calls only.
fn reaper_child(plan: &ChildPlan) -> ! {
    let ChildPlan { events, stdio, path, argv, envp } = *plan;
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    reset_signals();
    // SAFETY: as in `spawn_reaped`: the child only dups fds, execs or exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // The runtime: stdio in place (dups first, so a source that is itself 0..2 survives).
        let high = stdio.map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 10));
        let [stdin, stdout, stderr] = &high;
        if let Ok(fd) = stdin {
            let _ = rustix::stdio::dup2_stdin(fd);
        }
        if let Ok(fd) = stdout {
            let _ = rustix::stdio::dup2_stdout(fd);
        }
        if let Ok(fd) = stderr {
            let _ = rustix::stdio::dup2_stderr(fd);
        }
        // Whatever else the caller had open (without O_CLOEXEC) is not the runtime's; the
        // event pipe stays open until the exec, to report a failed one.
        // SAFETY: marks fds close-on-exec just before the exec; closes none.
        unsafe { close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
        set_default_action(libc::SIGPIPE, libc::SIG_DFL);
        // SAFETY: `path` is NUL-terminated and `argv`/`envp` are NULL-terminated arrays of
        // NUL-terminated strings (CStrArray), all alive in this copy of the caller's memory.
        unsafe { libc::execve(path.as_ptr(), argv.ptrs.as_ptr(), envp.ptrs.as_ptr()) };
        event(events, EVENT_EXEC_FAILED, 0, errno());
        exit_now(127);
    }
    if child < 0 {
        event(events, EVENT_EXEC_FAILED, 0, errno());
        exit_now(1);
    }
    event(events, EVENT_STARTED, child, 0);
    // Keep only the event pipe: see the module docs.
    let keep = {
        use std::os::fd::AsRawFd;
        events.as_raw_fd() as u32
    };
    // SAFETY: this process only writes to `events` from here on.
    unsafe {
        if keep > 0 {
            close_range(0, keep - 1, 0);
        }
        close_range(keep + 1, u32::MAX, 0);
    }
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) => event(events, EVENT_EXITED, pid.as_raw_nonzero().get(), status.as_raw()),
            Err(Errno::INTR) => continue,
            Ok(None) | Err(_) => exit_now(0),
        }
    }
}

/// One decoded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaperEvent {
    Started { pid: i32 },
    Exited { pid: i32, status: i32 },
    ExecFailed { errno: i32 },
}

/// Decodes one 12-byte event.
pub fn decode_event(b: &[u8; EVENT_LEN]) -> Option<ReaperEvent> {
    let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
    let kind = u32::from_le_bytes(word(0));
    let pid = i32::from_le_bytes(word(4));
    let value = i32::from_le_bytes(word(8));
    match kind {
        EVENT_STARTED => Some(ReaperEvent::Started { pid }),
        EVENT_EXITED => Some(ReaperEvent::Exited { pid, status: value }),
        EVENT_EXEC_FAILED => Some(ReaperEvent::ExecFailed { errno: value }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn events(fd: OwnedFd) -> Vec<ReaperEvent> {
        let mut f = std::fs::File::from(fd);
        let mut all = Vec::new();
        f.read_to_end(&mut all).unwrap();
        all.chunks_exact(EVENT_LEN).map(|c| decode_event(c.try_into().unwrap()).unwrap()).collect()
    }

    fn env() -> Vec<String> {
        vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()]
    }

    #[test]
    fn reaps_the_program_and_what_it_leaves_behind() {
        // The shell starts a background sleep and exits at once, as runc does when it detaches:
        // the sleep is re-parented to the reaper, which reports both exits and then ends.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 0.2 & echo $! > {}; exit 3", pidfile.display());
        let args = vec!["-c".to_string(), script];
        let fd = spawn_reaped(&ReapedCommand { program: "sh", args: &args, env: &env(), stdio: [None, None, None] })
            .unwrap();
        let ev = events(fd);
        let ReaperEvent::Started { pid: sh } = ev[0] else { panic!("{ev:?}") };
        let orphan: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(ev.contains(&ReaperEvent::Exited { pid: sh, status: 3 << 8 }), "{ev:?}");
        assert!(ev.contains(&ReaperEvent::Exited { pid: orphan, status: 0 }), "{ev:?}");
    }

    #[test]
    fn stdio_reaches_the_program_and_inherited_fds_do_not_stay_open() {
        // A pipe whose write end only the caller should hold: if the reaper kept a copy, the
        // reader below would never see EOF.
        let (r, w) = rustix::pipe::pipe().unwrap();
        let args = vec!["-c".to_string(), "echo hello; sleep 0.3".to_string()];
        let fd = spawn_reaped(&ReapedCommand {
            program: "sh",
            args: &args,
            env: &env(),
            stdio: [None, Some(w.as_fd()), None],
        })
        .unwrap();
        drop(w);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello\n");
        assert_eq!(events(fd).len(), 2);
    }

    #[test]
    fn a_missing_program_is_an_error_or_an_event() {
        let e = spawn_reaped(&ReapedCommand {
            program: "no-such-program-x",
            args: &[],
            env: &env(),
            stdio: [None, None, None],
        });
        assert!(matches!(e, Err(ReaperError::NotFound { .. })));
        let fd = spawn_reaped(&ReapedCommand {
            program: "/nonexistent/x",
            args: &[],
            env: &env(),
            stdio: [None, None, None],
        })
        .unwrap();
        let ev = events(fd);
        assert!(ev.contains(&ReaperEvent::ExecFailed { errno: libc::ENOENT }), "{ev:?}");
    }
}
