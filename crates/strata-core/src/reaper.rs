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
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    pub stdio: [Option<RawFd>; 3],
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
        let c = CString::new(cand.as_os_str().as_bytes()).ok();
        // SAFETY: access(2) reads a NUL-terminated path.
        if c.is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0) && cand.is_file() {
            return Ok(cand);
        }
    }
    Err(ReaperError::NotFound { program: program.into() })
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
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());

    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(spawn_err)?;
    let stdio: [RawFd; 3] = [0, 1, 2].map(|i| cmd.stdio[i].unwrap_or(null.as_raw_fd()));
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(spawn_err(io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned here.
    let (events_r, events_w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    let plan = ChildPlan {
        events: events_w.as_raw_fd(),
        stdio,
        path: path.as_ptr(),
        argv: argv_p.as_ptr(),
        envp: envp_p.as_ptr(),
    };
    // SAFETY: the child only makes async-signal-safe calls (see `reaper_child`) and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(spawn_err(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: in the forked child; all pointers were prepared before the fork.
        unsafe { middle_child(&plan) }
    }
    drop(events_w);
    // The middle process exits as soon as it has forked the reaper.
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // SIGCHLD ignored by the host: the kernel reaped it already.
            Some(libc::ECHILD) => return Ok(events_r),
            _ => return Err(spawn_err(e)),
        }
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(spawn_err(io::Error::other("the reaper could not be forked")));
    }
    Ok(events_r)
}

/// Writes one event; a reader that went away is not the reaper's problem (SIGPIPE is ignored).
unsafe fn event(fd: RawFd, kind: u32, pid: i32, value: i32) {
    let mut b = [0u8; EVENT_LEN];
    b[0..4].copy_from_slice(&kind.to_le_bytes());
    b[4..8].copy_from_slice(&pid.to_le_bytes());
    b[8..12].copy_from_slice(&value.to_le_bytes());
    // 12 bytes < PIPE_BUF: atomic.
    // SAFETY: b is a live buffer of EVENT_LEN bytes.
    unsafe { libc::write(fd, b.as_ptr().cast(), EVENT_LEN) };
}

unsafe fn errno() -> i32 {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

unsafe fn set_all_signals(disposition: libc::sighandler_t) {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction with a plain disposition is valid.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = disposition;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    // SAFETY: an empty mask unblocks everything the parent had blocked.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Everything the forked processes need, prepared before the fork (they must not allocate).
#[derive(Clone, Copy)]
struct ChildPlan {
    events: RawFd,
    stdio: [RawFd; 3],
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
}

/// The middle process: new session, fork the reaper, exit.
unsafe fn middle_child(plan: &ChildPlan) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        libc::setsid();
        match libc::fork() {
            0 => reaper_child(plan),
            p if p < 0 => libc::_exit(1),
            _ => libc::_exit(0),
        }
    }
}

unsafe fn reaper_child(plan: &ChildPlan) -> ! {
    let ChildPlan { events, stdio, path, argv, envp } = *plan;
    // SAFETY: async-signal-safe calls only, on fds and pointers prepared before the fork.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        set_all_signals(libc::SIG_DFL);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let child = libc::fork();
        if child == 0 {
            // The runtime: stdio in place (dups first, so a source that is itself 0..2 survives).
            let mut high = [0; 3];
            for (i, fd) in stdio.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
            }
            for (i, fd) in high.iter().enumerate() {
                libc::dup2(*fd, i as RawFd);
            }
            // Whatever else the caller had open (without O_CLOEXEC) is not the runtime's; the
            // event pipe stays open until the exec, to report a failed one.
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execve(path, argv, envp);
            event(events, EVENT_EXEC_FAILED, 0, errno());
            libc::_exit(127);
        }
        if child < 0 {
            event(events, EVENT_EXEC_FAILED, 0, errno());
            libc::_exit(1);
        }
        event(events, EVENT_STARTED, child, 0);
        // Keep only the event pipe: see the module docs.
        if events > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (events - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (events + 1) as u32, u32::MAX, 0u32);
        loop {
            let mut status = 0;
            let pid = libc::waitpid(-1, &mut status, 0);
            if pid > 0 {
                event(events, EVENT_EXITED, pid, status);
            } else if errno() != libc::EINTR {
                libc::_exit(0);
            }
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
        let mut p = [0; 2];
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), 0) }, 0);
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        let args = vec!["-c".to_string(), "echo hello; sleep 0.3".to_string()];
        let fd = spawn_reaped(&ReapedCommand {
            program: "sh",
            args: &args,
            env: &env(),
            stdio: [None, Some(w.as_raw_fd()), None],
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
