//! A short-lived child process run to its end from a thread of the caller's: a build step's OCI
//! runtime (`runc run`), whose output streams back while it runs and whose exit status ends it.
//!
//! Node's `child_process` forks its whole process on the JS thread (a ~100 MB CLI heap: a few ms
//! of page-table copying, more the first time in a process) and hears of the end through its
//! signal pipe, its event loop and its stream machinery. Here the child is started with
//! `posix_spawn` (glibc: `clone(CLONE_VM|CLONE_VFORK)`, nothing copied), on the caller's thread,
//! and its two pipes are read there with `poll` until both reach EOF; then it is reaped.
//!
//! Its stdin is `/dev/null`, stdout and stderr are pipes; it inherits the caller's environment
//! and sees no other descriptor of the caller (everything the caller opens is close-on-exec).
//! The status is the exit code, or 128 + the signal that ended it (a shell's convention).
//!
//! It must not decide what the output means: the caller filters and routes it.
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("reading the output of {program}: {source}")]
    Read { program: String, source: io::Error },
    #[error("waiting for {program}: {source}")]
    Wait { program: String, source: io::Error },
}

impl crate::error::Coded for RunError {
    fn code(&self) -> crate::error::ErrorCode {
        match self {
            RunError::Spawn { .. } => crate::error::ErrorCode::RuntimeFailed,
            RunError::Read { .. } | RunError::Wait { .. } => crate::error::ErrorCode::Io,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            RunError::Spawn { source, .. } | RunError::Read { source, .. } | RunError::Wait { source, .. } => {
                source.raw_os_error()
            }
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            RunError::Spawn { program, .. } | RunError::Read { program, .. } | RunError::Wait { program, .. } => {
                Some(program.clone())
            }
        }
    }
}

/// Bytes read from a pipe at once (a pipe holds 64 KiB by default).
const READ: usize = 64 << 10;

/// Runs `program` (a path, or a name looked up in `PATH`) with `args` to its end, handing each
/// chunk of its output to `on_output` as it comes; returns its status (the exit code, or 128 +
/// the signal that ended it) once it has ended and both its output streams are closed.
pub fn run(program: &str, args: &[String], mut on_output: impl FnMut(Stream, &[u8])) -> Result<i32, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Spawn { program: program.into(), source })?;
    let out = child.stdout.take().map(OwnedFd::from);
    let err = child.stderr.take().map(OwnedFd::from);
    let pumped = pump([(Stream::Stdout, out), (Stream::Stderr, err)], &mut on_output);
    // Reaped even when reading failed: no zombie is left behind.
    let status = child.wait().map_err(|source| RunError::Wait { program: program.into(), source })?;
    pumped.map_err(|source| RunError::Read { program: program.into(), source })?;
    Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(255))
}

/// Reads both pipes until both are at EOF, in the order their data comes.
fn pump(mut pipes: [(Stream, Option<OwnedFd>); 2], on_output: &mut impl FnMut(Stream, &[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; READ];
    loop {
        let open: Vec<usize> = (0..pipes.len()).filter(|&i| pipes[i].1.is_some()).collect();
        if open.is_empty() {
            return Ok(());
        }
        let mut fds: Vec<PollFd<'_>> =
            open.iter().map(|&i| PollFd::new(pipes[i].1.as_ref().expect("open"), PollFlags::IN)).collect();
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        for (&i, ready) in open.iter().zip(ready) {
            if !ready {
                continue;
            }
            let (stream, fd) = &mut pipes[i];
            match rustix::io::read(fd.as_ref().expect("open"), &mut buf[..]) {
                // EOF (or, with POLLHUP/POLLERR, nothing more to come).
                Ok(0) => *fd = None,
                Ok(n) => on_output(*stream, &buf[..n]),
                Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (Result<i32, RunError>, Vec<u8>, Vec<u8>) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let r = run("sh", &["-c".into(), script.into()], |s, d| match s {
            Stream::Stdout => out.extend_from_slice(d),
            Stream::Stderr => err.extend_from_slice(d),
        });
        (r, out, err)
    }

    #[test]
    fn output_of_both_streams_and_the_exit_code() {
        let (r, out, err) = sh("echo out; echo err >&2; head -c 300000 /dev/zero; exit 3");
        assert_eq!(r.unwrap(), 3);
        assert_eq!(out.len(), 4 + 300_000);
        assert!(out.starts_with(b"out\n"));
        assert_eq!(err, b"err\n");
    }

    #[test]
    fn a_signal_is_128_plus_its_number() {
        assert_eq!(sh("kill -9 $$").0.unwrap(), 128 + 9);
        assert_eq!(sh("kill -TERM $$").0.unwrap(), 128 + 15);
        assert_eq!(sh("true").0.unwrap(), 0);
    }

    #[test]
    fn stdin_is_dev_null_and_no_descriptor_of_ours_is_inherited() {
        // Descriptors this process has open (close-on-exec, as everything std opens). (Only
        // these are checked: tests running beside this one may hold inheritable ones a moment.)
        let held: Vec<std::fs::File> = (0..8).map(|_| std::fs::File::open("/proc/self/status").unwrap()).collect();
        let (r, out, _) = sh("readlink /proc/$$/fd/0; ls /proc/$$/fd");
        assert_eq!(r.unwrap(), 0);
        let out = String::from_utf8(out).unwrap();
        let (stdin, fds) = out.split_once('\n').unwrap();
        assert_eq!(stdin, "/dev/null");
        let fds: Vec<i32> = fds.split_whitespace().map(|s| s.parse().unwrap()).collect();
        for f in &held {
            assert!(!fds.contains(&std::os::fd::AsRawFd::as_raw_fd(f)), "{fds:?}");
        }
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        match run("/nonexistent/strata-runtime", &[], |_, _| {}) {
            Err(e @ RunError::Spawn { .. }) => {
                assert_eq!(crate::error::Coded::code(&e), crate::error::ErrorCode::RuntimeFailed);
                assert_eq!(crate::error::Coded::errno(&e), Some(libc::ENOENT));
            }
            other => panic!("expected a spawn error, got {other:?}"),
        }
    }
}
