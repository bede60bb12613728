//! The error contract between the core and its callers: one list of stable codes
//! ([`ErrorCode`]), and the trait ([`Coded`]) every core error enum implements.
//!
//! Each core module has its own `thiserror` enum with context (path, expected, found); the
//! napi crate turns any of them into a JS error object with `code`, `message`, `syscode`,
//! `errno` and `path` properties through [`Coded`]. [`ErrorCode::ALL`] is the one list of codes
//! the whole project uses: the TypeScript facade raises some of them itself (`ImageNotFound`,
//! `NameInUse`, ...) and a test checks its `StrataErrorCode` union against this list.
//!
//! It must not know napi or JS types: the napi crate converts.

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// A stable, machine-readable error code. Callers and tests match on it, never on messages.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $name,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)+];

            /// The code as JS sees it (the variant's name).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)+
                }
            }
        }
    };
}

error_codes! {
    /// No image by that name, ID or ID prefix.
    ImageNotFound,
    /// No container by that name, ID or ID prefix.
    ContainerNotFound,
    /// A layer the metadata names is missing.
    LayerNotFound,
    /// A malformed image reference (`Name:tag@digest`).
    InvalidReference,
    /// A caller mistake: a wrong type or value at the API boundary, an unknown option or filter.
    InvalidArgument,
    /// A malformed `sha256:<hex>` digest.
    InvalidDigest,
    /// Content does not hash to the digest that names it.
    DigestMismatch,
    /// An archive or blob that cannot be parsed (truncated, bad headers, bad JSON).
    CorruptArchive,
    /// A well-formed input in a format or variant strata does not handle.
    UnsupportedArchive,
    /// A layer entry that would escape the layer root or is otherwise unsafe to extract.
    UnsafeLayerEntry,
    /// The store's state forbids the operation (an image in use, a running container, ...).
    Conflict,
    /// A container name is taken.
    NameInUse,
    /// An ID prefix matches more than one object.
    AmbiguousReference,
    /// The caller's `AbortSignal` fired (also a cancelled export or commit).
    Aborted,
    /// A lock another process holds and the operation would not wait for.
    Locked,
    /// The kernel refused an overlay mount.
    MountFailed,
    /// The kernel refused to unmount.
    UnmountFailed,
    /// A mount plan the kernel would reject (no lowers, relative paths, reserved options).
    InvalidMountPlan,
    /// More lower layers than overlayfs stacks ([`crate::kernel::mount::OVERLAY_MAX_STACK`]).
    TooManyLayers,
    /// A legacy mount(2) option string longer than one page.
    MountOptionsTooLong,
    /// `/proc/self/mountinfo` could not be parsed.
    MalformedMountInfo,
    /// A file changed while it was being archived.
    FileChangedDuringArchive,
    /// A store metadata file (repositories.json, a record, a layer's metadata) cannot be parsed.
    CorruptMetadata,
    /// The OCI runtime failed.
    RuntimeFailed,
    /// The container is not running.
    NotRunning,
    /// A Dockerfile that does not parse, or an instruction, flag or argument strata does not take.
    DockerfileParse,
    /// A build target or `COPY --from` that names no stage (or image).
    StageNotFound,
    /// A COPY/ADD source that matches nothing in the build context or stage.
    SourceNotFound,
    /// A COPY/ADD source outside the build context (`../x`, a symlink leading out).
    ContextEscape,
    /// A build context over the caller's limits.
    ContextTooLarge,
    /// A build step's command exited non-zero.
    BuildFailed,
    /// A path in a container that does not exist (`cp`, `container stat`).
    PathNotFound,
    /// A path that must be a directory is something else (`cp`'s extraction point).
    NotADirectory,
    /// An operating-system I/O failure; `syscode` names its errno.
    Io,
    /// A registry refused the credentials (or asked for some): 401/403 after the auth flow.
    Unauthorized,
    /// A registry has no such repository, manifest or blob (404; `registryCode` says which).
    NotFound,
    /// A registry answered something unusable: an unexpected status, HTML, a garbage token.
    RegistryError,
    /// No endpoint of a registry could be reached (refused, TLS failure, timeouts).
    RegistryUnreachable,
    /// A registry's answer is larger than the caller accepts.
    ResponseTooLarge,
    /// A manifest or index that is not what it claims (bad JSON, sizes that lie, over 4 MiB).
    ManifestInvalid,
    /// A manifest format strata refuses (Docker image manifest schema 1).
    UnsupportedManifest,
    /// A `docker-credential-*` helper failed or could not be run.
    CredentialHelperFailed,
    /// Docker's config file (`config.json`) cannot be parsed, or names an invalid helper.
    ConfigInvalid,
    /// `login` without a username and password, and nothing stored for the server.
    NoCredentials,
    /// A bug in strata: a failure that has no code of its own. Reports should include the stack.
    Internal,
}

/// Lets tests and callers compare a code with the string JS sees.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every core error offers the binding: a stable code, and the errno of I/O causes.
pub trait Coded: std::error::Error {
    /// The error's code; tests and the TS facade match on it.
    fn code(&self) -> ErrorCode;
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

/// The symbolic name of an errno number (`2` → `"ENOENT"`), as Node names them: every
/// number Linux defines, the aliases `EWOULDBLOCK`, `EDEADLOCK` and `EOPNOTSUPP` under the
/// names Node (libuv) reports for them (`EAGAIN`, `EDEADLK`, `ENOTSUP`). `None` for a
/// number Linux does not define.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::ENOTBLK => "ENOTBLK",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::EDOM => "EDOM",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOLCK => "ENOLCK",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENOMSG => "ENOMSG",
        libc::EIDRM => "EIDRM",
        libc::ECHRNG => "ECHRNG",
        libc::EL2NSYNC => "EL2NSYNC",
        libc::EL3HLT => "EL3HLT",
        libc::EL3RST => "EL3RST",
        libc::ELNRNG => "ELNRNG",
        libc::EUNATCH => "EUNATCH",
        libc::ENOCSI => "ENOCSI",
        libc::EL2HLT => "EL2HLT",
        libc::EBADE => "EBADE",
        libc::EBADR => "EBADR",
        libc::EXFULL => "EXFULL",
        libc::ENOANO => "ENOANO",
        libc::EBADRQC => "EBADRQC",
        libc::EBADSLT => "EBADSLT",
        libc::EBFONT => "EBFONT",
        libc::ENOSTR => "ENOSTR",
        libc::ENODATA => "ENODATA",
        libc::ETIME => "ETIME",
        libc::ENOSR => "ENOSR",
        libc::ENONET => "ENONET",
        libc::ENOPKG => "ENOPKG",
        libc::EREMOTE => "EREMOTE",
        libc::ENOLINK => "ENOLINK",
        libc::EADV => "EADV",
        libc::ESRMNT => "ESRMNT",
        libc::ECOMM => "ECOMM",
        libc::EPROTO => "EPROTO",
        libc::EMULTIHOP => "EMULTIHOP",
        libc::EDOTDOT => "EDOTDOT",
        libc::EBADMSG => "EBADMSG",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOTUNIQ => "ENOTUNIQ",
        libc::EBADFD => "EBADFD",
        libc::EREMCHG => "EREMCHG",
        libc::ELIBACC => "ELIBACC",
        libc::ELIBBAD => "ELIBBAD",
        libc::ELIBSCN => "ELIBSCN",
        libc::ELIBMAX => "ELIBMAX",
        libc::ELIBEXEC => "ELIBEXEC",
        libc::EILSEQ => "EILSEQ",
        libc::ERESTART => "ERESTART",
        libc::ESTRPIPE => "ESTRPIPE",
        libc::EUSERS => "EUSERS",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EDESTADDRREQ => "EDESTADDRREQ",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EOPNOTSUPP => "ENOTSUP",
        libc::EPFNOSUPPORT => "EPFNOSUPPORT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENETRESET => "ENETRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::ETOOMANYREFS => "ETOOMANYREFS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ESTALE => "ESTALE",
        libc::EUCLEAN => "EUCLEAN",
        libc::ENOTNAM => "ENOTNAM",
        libc::ENAVAIL => "ENAVAIL",
        libc::EISNAM => "EISNAM",
        libc::EREMOTEIO => "EREMOTEIO",
        libc::EDQUOT => "EDQUOT",
        libc::ENOMEDIUM => "ENOMEDIUM",
        libc::EMEDIUMTYPE => "EMEDIUMTYPE",
        libc::ECANCELED => "ECANCELED",
        libc::ENOKEY => "ENOKEY",
        libc::EKEYEXPIRED => "EKEYEXPIRED",
        libc::EKEYREVOKED => "EKEYREVOKED",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EOWNERDEAD => "EOWNERDEAD",
        libc::ENOTRECOVERABLE => "ENOTRECOVERABLE",
        libc::ERFKILL => "ERFKILL",
        libc::EHWPOISON => "EHWPOISON",
        _ => return None,
    })
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
    fn code(&self) -> ErrorCode {
        ErrorCode::Io
    }
    fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
    fn path(&self) -> Option<String> {
        Some(self.path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_named_after_their_variant() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert_eq!(format!("{c:?}"), c.as_str());
        }
    }

    #[test]
    fn errno_names_cover_every_linux_errno() {
        assert_eq!(errno_name(libc::ENOENT), Some("ENOENT"));
        assert_eq!(errno_name(libc::ENOSPC), Some("ENOSPC"));
        assert_eq!(errno_name(libc::EPIPE), Some("EPIPE"));
        assert_eq!(errno_name(libc::EWOULDBLOCK), Some("EAGAIN"));
        assert_eq!(errno_name(libc::EOPNOTSUPP), Some("ENOTSUP"));
        assert_eq!(errno_name(libc::EHWPOISON), Some("EHWPOISON"));
        // 41 and 58 are holes in Linux's numbering.
        let named = (1..=libc::EHWPOISON).filter(|&n| errno_name(n).is_some()).count();
        assert_eq!(named, libc::EHWPOISON as usize - 2);
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(4000), None);
    }
}
