//! Pseudo-terminals of containers: runc's console socket, and window sizes.
//!
//! A process that runs with `"terminal": true` gets the slave side of a new pty inside the
//! container; runc hands the *master* to whoever asked for the terminal by connecting to a unix
//! socket (`--console-socket PATH`) and sending the master fd as `SCM_RIGHTS` ancillary data
//! (runc's `utils.SendFd`: one message whose payload is the pty's name, one fd attached). Node
//! cannot receive fds over a socket, so that handshake happens here; the master then goes back
//! to JS as a plain fd number (`O_CLOEXEC`), where it is read and written as a tty stream.
//!
//! The window size of a pty lives on the master: `TIOCSWINSZ` sets it, and the kernel sends
//! `SIGWINCH` to the foreground process group of the terminal when it changes — which is how
//! `stty size` in the container sees a resize of the user's terminal.
//!
//! Every call goes through rustix (`net` for the `SCM_RIGHTS` message, `termios` for window
//! sizes and raw mode, `event` for poll): this module has no `unsafe`. Fds arrive as
//! `BorrowedFd`s; turning a number JS holds into one is the napi crate's business.
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::termios::{OptionalActions, SpecialCodeIndex, Termios, Winsize};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("cannot listen on console socket {path}: {source}")]
    Listen { path: PathBuf, source: io::Error },
    #[error("console socket {path}: {source}")]
    Receive { path: PathBuf, source: io::Error },
    #[error("console socket {path}: the runtime sent no terminal ({what})")]
    NoTerminal { path: PathBuf, what: &'static str },
    #[error("console socket {path}: no terminal received within {ms} ms")]
    TimedOut { path: PathBuf, ms: u64 },
    #[error("console socket {path}: cancelled")]
    Cancelled { path: PathBuf },
    #[error("cannot set the window size of the terminal: {source}")]
    Resize { source: io::Error },
}

impl crate::error::Coded for ConsoleError {
    fn code(&self) -> crate::error::ErrorCode {
        match self {
            ConsoleError::Cancelled { .. } => crate::error::ErrorCode::Aborted,
            ConsoleError::TimedOut { .. } | ConsoleError::NoTerminal { .. } => crate::error::ErrorCode::RuntimeFailed,
            _ => crate::error::ErrorCode::Io,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            ConsoleError::Listen { source, .. }
            | ConsoleError::Receive { source, .. }
            | ConsoleError::Resize { source } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            ConsoleError::Listen { path, .. }
            | ConsoleError::Receive { path, .. }
            | ConsoleError::NoTerminal { path, .. }
            | ConsoleError::TimedOut { path, .. }
            | ConsoleError::Cancelled { path } => Some(path.display().to_string()),
            ConsoleError::Resize { .. } => None,
        }
    }
}

/// A listening console socket (removed from the file system when dropped).
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens on `path` (a fresh name in a directory only the caller can write).
    pub fn bind(path: &Path) -> Result<Self, ConsoleError> {
        let listener = UnixListener::bind(path).map_err(|source| ConsoleError::Listen { path: path.into(), source })?;
        listener.set_nonblocking(true).map_err(|source| ConsoleError::Listen { path: path.into(), source })?;
        Ok(ConsoleSocket { listener, path: path.into() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the runtime to connect and send the pty master; returns it (`O_CLOEXEC`).
    /// Gives up after `timeout`, or soon after `cancel` is set (the runtime failed).
    pub fn receive(&self, timeout: Duration, cancel: &AtomicBool) -> Result<OwnedFd, ConsoleError> {
        let deadline = Instant::now() + timeout;
        let err = |source| ConsoleError::Receive { path: self.path.clone(), source };
        let conn = loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(ConsoleError::Cancelled { path: self.path.clone() });
            }
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(e)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConsoleError::TimedOut { path: self.path.clone(), ms: timeout.as_millis() as u64 });
            }
            // Short polls: a cancel (the runtime exited without connecting) is seen quickly.
            poll_in(self.listener.as_fd(), left.min(Duration::from_millis(20))).map_err(err)?;
        };
        conn.set_nonblocking(false).map_err(err)?;
        conn.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100))))
            .map_err(err)?;
        let fd = recv_fd(conn.as_fd()).map_err(err)?;
        let fd = fd.ok_or(ConsoleError::NoTerminal { path: self.path.clone(), what: "no file descriptor attached" })?;
        if !rustix::termios::isatty(&fd) {
            return Err(ConsoleError::NoTerminal {
                path: self.path.clone(),
                what: "the file descriptor is not a terminal",
            });
        }
        Ok(fd)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn poll_in(fd: BorrowedFd<'_>, wait: Duration) -> io::Result<()> {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    // A wait too long for a timespec cannot happen (callers wait at most 20 ms); a second is
    // as good as any bound there.
    let wait = Timespec::try_from(wait.max(Duration::from_millis(1))).unwrap_or(Timespec { tv_sec: 1, tv_nsec: 0 });
    match rustix::event::poll(&mut fds, Some(&wait)) {
        Ok(_) | Err(Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Room for a few fds: if a peer sends more than one, the extras are closed (when the
/// ancillary buffer is dropped), not leaked.
const MAX_FDS: usize = 4;

/// One `recvmsg` with room for [`MAX_FDS`] `SCM_RIGHTS` fds (received `O_CLOEXEC`); the first.
fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut name = [0u8; 4096];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        let mut iov = [io::IoSliceMut::new(&mut name)];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) => break m,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    if got.bytes == 0 && fds.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed without sending a terminal"));
    }
    Ok(fds.into_iter().next())
}

/// Sets the window size of the terminal whose master (or slave) is `fd` (`TIOCSWINSZ`).
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), ConsoleError> {
    let ws = Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(fd, ws).map_err(|e| ConsoleError::Resize { source: e.into() })
}

/// The window size of the terminal `fd` (`TIOCGWINSZ`) as `(rows, cols)`.
pub fn window_size(fd: BorrowedFd<'_>) -> Result<(u16, u16), ConsoleError> {
    let ws = rustix::termios::tcgetwinsize(fd).map_err(|e| ConsoleError::Resize { source: e.into() })?;
    Ok((ws.ws_row, ws.ws_col))
}

/// A terminal's settings as they were, to put back with [`restore_terminal`].
#[derive(Clone, Debug)]
pub struct SavedTerminal(Termios);

/// Puts the terminal `fd` in raw mode as docker's CLI does (moby/term `MakeRaw` = cfmakeraw:
/// no echo, no line editing, no signals from keys, and no output processing — Node's own raw
/// mode keeps `ONLCR`, which would turn the container's `\r\n` into `\r\r\n`). Returns what to
/// restore.
pub fn make_raw(fd: BorrowedFd<'_>) -> Result<SavedTerminal, ConsoleError> {
    let resize = |e: Errno| ConsoleError::Resize { source: e.into() };
    let saved = rustix::termios::tcgetattr(fd).map_err(resize)?;
    let mut t = saved.clone();
    t.make_raw();
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    rustix::termios::tcsetattr(fd, OptionalActions::Now, &t).map_err(resize)?;
    Ok(SavedTerminal(saved))
}

/// Puts back what [`make_raw`] saved.
pub fn restore_terminal(fd: BorrowedFd<'_>, saved: &SavedTerminal) -> Result<(), ConsoleError> {
    rustix::termios::tcsetattr(fd, OptionalActions::Now, &saved.0)
        .map_err(|e| ConsoleError::Resize { source: e.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use rustix::pty::OpenptFlags;
    use rustix::termios::{LocalModes, OutputModes};
    use std::os::unix::net::UnixStream;

    /// Sends `fd` the way runc's `utils.SendFd` does: the name as payload, one SCM_RIGHTS fd.
    fn send_fd(sock: &UnixStream, fd: BorrowedFd<'_>, name: &[u8]) {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [fd];
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(sock, &[io::IoSlice::new(name)], &mut control, SendFlags::empty()).unwrap();
    }

    /// What `sock` receives when a peer thread connects and sends `fd` named `name`.
    fn receive_from_peer(sock: &ConsoleSocket, fd: OwnedFd, name: &'static [u8]) -> Result<OwnedFd, ConsoleError> {
        let path = sock.path().to_path_buf();
        let sender = std::thread::spawn(move || send_fd(&UnixStream::connect(&path).unwrap(), fd.as_fd(), name));
        let got = sock.receive(Duration::from_secs(5), &AtomicBool::new(false));
        sender.join().unwrap();
        got
    }

    /// A new pty: (master, slave).
    fn openpty() -> (OwnedFd, OwnedFd) {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).unwrap();
        rustix::pty::grantpt(&master).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).unwrap();
        (master, slave)
    }

    #[test]
    fn receives_a_master_and_sets_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let sock = ConsoleSocket::bind(&path).unwrap();
        let (master, slave) = openpty();
        let got = receive_from_peer(&sock, master, b"/dev/ptmx").unwrap();
        set_window_size(got.as_fd(), 33, 101).unwrap();
        assert_eq!(window_size(slave.as_fd()).unwrap(), (33, 101));
        drop(sock);
        assert!(!path.exists(), "the socket file goes with the listener");
    }

    #[test]
    fn refuses_what_is_not_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let sock = ConsoleSocket::bind(&path).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let e = receive_from_peer(&sock, file.into(), b"null").unwrap_err();
        assert!(matches!(e, ConsoleError::NoTerminal { .. }), "{e}");
        // A peer that connects and closes without an fd is an error too, not a hang.
        let p = path.clone();
        std::thread::spawn(move || drop(UnixStream::connect(&p).unwrap())).join().unwrap();
        let e = sock.receive(Duration::from_secs(5), &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(e, ConsoleError::Receive { .. }), "{e}");
    }

    #[test]
    fn raw_mode_and_back() {
        let (_master, slave) = openpty();
        let fd = slave.as_fd();
        let saved = make_raw(fd).unwrap();
        let t = rustix::termios::tcgetattr(fd).unwrap();
        assert!(!t.local_modes.intersects(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG));
        assert!(!t.output_modes.contains(OutputModes::OPOST));
        let again = saved.clone();
        restore_terminal(fd, &again).unwrap();
        let t = rustix::termios::tcgetattr(fd).unwrap();
        assert!(t.local_modes.contains(LocalModes::ICANON));
    }

    #[test]
    fn cancel_and_timeout_end_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let sock = ConsoleSocket::bind(&dir.path().join("c.sock")).unwrap();
        let e = sock.receive(Duration::from_secs(5), &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(e, ConsoleError::Cancelled { .. }));
        let e = sock.receive(Duration::from_millis(50), &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(e, ConsoleError::TimedOut { .. }));
    }
}
