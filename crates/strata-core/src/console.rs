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
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
            poll_in(self.listener.as_raw_fd(), left.min(Duration::from_millis(20))).map_err(err)?;
        };
        conn.set_nonblocking(false).map_err(err)?;
        conn.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100))))
            .map_err(err)?;
        let fd = recv_fd(conn.as_raw_fd()).map_err(err)?;
        let fd = fd.ok_or(ConsoleError::NoTerminal { path: self.path.clone(), what: "no file descriptor attached" })?;
        // SAFETY: isatty only inspects the fd we own.
        if unsafe { libc::isatty(fd.as_raw_fd()) } != 1 {
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

fn poll_in(fd: RawFd, wait: Duration) -> io::Result<()> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, wait.as_millis().max(1) as libc::c_int) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// One `recvmsg` with room for one `SCM_RIGHTS` fd (received `O_CLOEXEC`).
fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    let mut name = [0u8; 4096];
    let mut iov = libc::iovec { iov_base: name.as_mut_ptr().cast(), iov_len: name.len() };
    // Room for a few fds: if a peer sends more than one, the extras are closed, not leaked.
    const MAX_FDS: usize = 4;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    let n = loop {
        // SAFETY: msg points at live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut got: Vec<OwnedFd> = Vec::new();
    // SAFETY: the CMSG_* walk stays within msg_controllen as the kernel filled it in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    got.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if n == 0 && got.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed without sending a terminal"));
    }
    Ok(got.into_iter().next())
}

/// Sets the window size of the terminal whose master (or slave) is `fd` (`TIOCSWINSZ`).
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> Result<(), ConsoleError> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(ConsoleError::Resize { source: io::Error::last_os_error() });
    }
    Ok(())
}

/// The window size of the terminal `fd` (`TIOCGWINSZ`) as `(rows, cols)`.
pub fn window_size(fd: RawFd) -> Result<(u16, u16), ConsoleError> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize to the pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return Err(ConsoleError::Resize { source: io::Error::last_os_error() });
    }
    Ok((ws.ws_row, ws.ws_col))
}

/// A terminal's settings as they were, to put back with [`restore_terminal`].
#[derive(Clone)]
pub struct SavedTerminal(libc::termios);

impl SavedTerminal {
    /// The raw bytes of the saved `termios` (to hand to JS and back).
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = (&self.0 as *const libc::termios).cast::<u8>();
        // SAFETY: termios is plain old data of this size.
        unsafe { std::slice::from_raw_parts(p, std::mem::size_of::<libc::termios>()) }.to_vec()
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != std::mem::size_of::<libc::termios>() {
            return None;
        }
        // SAFETY: any bit pattern of the right size is a termios; read unaligned from the bytes.
        Some(SavedTerminal(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<libc::termios>()) }))
    }
}

/// Puts the terminal `fd` in raw mode as docker's CLI does (moby/term `MakeRaw` = cfmakeraw:
/// no echo, no line editing, no signals from keys, and no output processing — Node's own raw
/// mode keeps `ONLCR`, which would turn the container's `\r\n` into `\r\r\n`). Returns what to
/// restore.
pub fn make_raw(fd: RawFd) -> Result<SavedTerminal, ConsoleError> {
    // SAFETY: a zeroed termios is filled in by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: t is a valid termios to fill.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(ConsoleError::Resize { source: io::Error::last_os_error() });
    }
    let saved = SavedTerminal(t);
    // SAFETY: cfmakeraw edits the struct in place.
    unsafe { libc::cfmakeraw(&mut t) };
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: t is a valid termios.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(ConsoleError::Resize { source: io::Error::last_os_error() });
    }
    Ok(saved)
}

/// Puts back what [`make_raw`] saved.
pub fn restore_terminal(fd: RawFd, saved: &SavedTerminal) -> Result<(), ConsoleError> {
    // SAFETY: saved.0 is a termios read from a terminal.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved.0) } != 0 {
        return Err(ConsoleError::Resize { source: io::Error::last_os_error() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// Sends `fd` the way runc's `utils.SendFd` does: the name as payload, one SCM_RIGHTS fd.
    fn send_fd(sock: &UnixStream, fd: RawFd, name: &[u8]) {
        let mut iov = libc::iovec { iov_base: name.as_ptr() as *mut _, iov_len: name.len() };
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
            assert!(libc::sendmsg(sock.as_raw_fd(), &msg, 0) >= 0);
        }
    }

    fn openpty() -> (OwnedFd, OwnedFd) {
        let (mut m, mut s) = (0, 0);
        assert_eq!(
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) },
            0
        );
        unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
    }

    #[test]
    fn receives_a_master_and_sets_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let sock = ConsoleSocket::bind(&path).unwrap();
        let (master, slave) = openpty();
        let p = path.clone();
        let sender = std::thread::spawn(move || {
            let s = UnixStream::connect(&p).unwrap();
            send_fd(&s, master.as_raw_fd(), b"/dev/ptmx");
        });
        let got = sock.receive(Duration::from_secs(5), &AtomicBool::new(false)).unwrap();
        sender.join().unwrap();
        set_window_size(got.as_raw_fd(), 33, 101).unwrap();
        assert_eq!(window_size(slave.as_raw_fd()).unwrap(), (33, 101));
        drop(sock);
        assert!(!path.exists(), "the socket file goes with the listener");
    }

    #[test]
    fn refuses_what_is_not_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let sock = ConsoleSocket::bind(&path).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let p = path.clone();
        let fd = file.as_raw_fd();
        let sender = std::thread::spawn(move || {
            let s = UnixStream::connect(&p).unwrap();
            send_fd(&s, fd, b"null");
        });
        let e = sock.receive(Duration::from_secs(5), &AtomicBool::new(false)).unwrap_err();
        sender.join().unwrap();
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
        let fd = slave.as_raw_fd();
        let saved = make_raw(fd).unwrap();
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        unsafe { libc::tcgetattr(fd, &mut t) };
        assert_eq!(t.c_lflag & (libc::ECHO | libc::ICANON | libc::ISIG), 0);
        assert_eq!(t.c_oflag & libc::OPOST, 0);
        let again = SavedTerminal::from_bytes(&saved.to_bytes()).unwrap();
        restore_terminal(fd, &again).unwrap();
        unsafe { libc::tcgetattr(fd, &mut t) };
        assert_ne!(t.c_lflag & libc::ICANON, 0);
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
