//! What every core error enum offers the binding: a stable code, and the errno of I/O causes.
//!
//! Each core module has its own `thiserror` enum with context (path, expected, found);
//! the napi crate turns any of them into a JS error through this trait, so the codes
//! (`UnsafeLayerEntry`, `DigestMismatch`, ...) are defined next to the errors themselves.

/// A stable, machine-readable error code plus optional errno/path context.
pub trait Coded: std::error::Error {
    /// Stable code string, e.g. `"CorruptArchive"`. Tests and the TS facade match on it.
    fn code(&self) -> &'static str;
    /// The errno of an underlying I/O error, if any.
    fn errno(&self) -> Option<i32> {
        None
    }
    /// The path or entry name the error is about, if any.
    fn path(&self) -> Option<String> {
        None
    }
    /// The HTTP status a registry answered, for registry errors.
    fn http_status(&self) -> Option<u16> {
        None
    }
    /// The registry's own error code (`MANIFEST_UNKNOWN`, `DENIED`, ...), for registry errors.
    fn registry_code(&self) -> Option<String> {
        None
    }
}

/// errno name for an I/O error (`"ENOENT"`), as Node reports them.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ENOSYS => "ENOSYS",
        libc::ESTALE => "ESTALE",
        libc::EINTR => "EINTR",
        _ => "EUNKNOWN",
    }
}

/// A plain I/O failure at a path, for operations whose only failure mode is I/O.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct IoAt {
    pub op: &'static str,
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoAt {
    pub fn new(op: &'static str, path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        IoAt { op, path: path.into(), source }
    }
}

impl Coded for IoAt {
    fn code(&self) -> &'static str {
        "Io"
    }
    fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
    fn path(&self) -> Option<String> {
        Some(self.path.display().to_string())
    }
}
