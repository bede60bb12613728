//! Overlay mounts: the *plan* (pure data, unit-testable without root) kept apart from
//! the *call* (the few functions here that touch the kernel), as containerd's overlay
//! snapshotter and moby's overlay2 driver do.
//!
//! ```text
//! MountPlan { lowerdirs: [top, ..., bottom], upperdir?, workdir?, target, options }
//!        │
//!        ├─ new mount API (kernel ≥ 6.8):  fsopen("overlay")
//!        │     fsconfig(SET_STRING, "lowerdir+", dir)   once per layer, top first
//!        │     fsconfig(SET_STRING, "upperdir"/"workdir"/<fs option>)
//!        │     fsconfig(CMD_CREATE) → fsmount(attrs: nosuid/nodev/ro...) → move_mount(target)
//!        │
//!        └─ legacy mount(2) with "lowerdir=a:b:c,upperdir=..,workdir=.." when the kernel
//!              has no fsopen or does not know "lowerdir+"; limited to one page of options.
//! ```
//!
//! `lowerdir+` passes each layer separately, so the page-size limit on the option string
//! no longer caps the stack: the kernel's own limit (`OVL_MAX_STACK` = 500) is the only one.
//! On failure the kernel's error text is read back from the fs-context fd and kept in
//! [`MountError::MountFailed`].
//!
//! It must not decide which layers make a stack (the store does) nor read the store's metadata.
use crate::error::ErrorCode;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};
use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// The kernel's maximum number of overlay lower layers (`OVL_MAX_STACK` in fs/overlayfs).
pub const OVERLAY_MAX_STACK: usize = 500;

/// Longest option string `mount(2)` accepts: the kernel copies one page of `data`
/// (`copy_mount_options`), and the string needs its terminating NUL inside that page.
pub const LEGACY_DATA_MAX: usize = 4095;

/// Filesystem type name passed to `fsopen`/`mount`.
pub const OVERLAY_FSTYPE: &str = "overlay";

/// Errors of overlay mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The plan is malformed (no lowers, upper without work, relative path, reserved option ...).
    #[error("invalid mount plan for {target}: {reason}")]
    InvalidPlan { target: PathBuf, reason: String },
    /// More lower layers than the kernel's overlay stack allows.
    #[error("{count} lower layers exceed the overlay maximum of {max}")]
    TooManyLayers { count: usize, max: usize },
    /// The legacy `lowerdir=` option string does not fit in one page, even with relative paths.
    #[error("legacy overlay option string is {len} bytes, more than the {max} mount(2) accepts")]
    OptionsTooLong { len: usize, max: usize },
    /// The kernel refused the mount; `kernel_message` is what overlayfs logged into the fs context.
    #[error("mounting overlay on {target} failed at {step} ({api} API): {errno_text}{}", kernel_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    MountFailed {
        target: PathBuf,
        /// `"new"` or `"legacy"`.
        api: &'static str,
        /// Which call failed, e.g. `fsconfig lowerdir+ /x`, `fsmount`, `mount`.
        step: String,
        errno: i32,
        errno_text: String,
        kernel_message: Option<String>,
    },
    /// `umount2` failed for a reason other than "not mounted".
    #[error("unmounting {target} failed: {source}")]
    UnmountFailed { target: PathBuf, source: std::io::Error },
}

impl crate::error::Coded for MountError {
    fn code(&self) -> ErrorCode {
        match self {
            MountError::InvalidPlan { .. } => ErrorCode::InvalidMountPlan,
            MountError::TooManyLayers { .. } => ErrorCode::TooManyLayers,
            MountError::OptionsTooLong { .. } => ErrorCode::MountOptionsTooLong,
            MountError::MountFailed { .. } => ErrorCode::MountFailed,
            MountError::UnmountFailed { .. } => ErrorCode::UnmountFailed,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            MountError::MountFailed { errno, .. } => Some(*errno),
            MountError::UnmountFailed { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            MountError::InvalidPlan { target, .. }
            | MountError::MountFailed { target, .. }
            | MountError::UnmountFailed { target, .. } => Some(target.display().to_string()),
            _ => None,
        }
    }
}

/// Everything needed to mount one overlay, computed without touching the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPlan {
    /// Read-only layers, **top first** (the order of overlayfs' `lowerdir=`).
    pub lowerdirs: Vec<PathBuf>,
    /// Writable layer; `None` for a read-only overlay.
    pub upperdir: Option<PathBuf>,
    /// Overlay's scratch dir on the same filesystem as `upperdir`; required with it.
    pub workdir: Option<PathBuf>,
    /// Mount point.
    pub target: PathBuf,
    /// Mount flags (`ro`, `nosuid`, `nodev`, `noexec`, `noatime`, `relatime`, `nodiratime`,
    /// `strictatime`) and overlay options (`index=off`, `metacopy=off`, `userxattr`, ...).
    pub options: Vec<String>,
}

/// Which kernel interface performed a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountApi {
    /// fsopen/fsconfig(`lowerdir+`)/fsmount/move_mount.
    New,
    /// mount(2) with a `lowerdir=a:b:c` string.
    Legacy,
}

impl MountApi {
    pub fn as_str(self) -> &'static str {
        match self {
            MountApi::New => "new",
            MountApi::Legacy => "legacy",
        }
    }
}

/// Which interface [`mount_overlay_with`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiChoice {
    /// New API when the kernel supports `lowerdir+`, legacy otherwise.
    Auto,
    /// New API only (fails where unsupported).
    New,
    /// Legacy mount(2) only.
    Legacy,
}

/// A plan's options split into what goes where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitOptions {
    /// Per-mount attributes for `fsmount` (new API).
    pub attrs: MountAttrFlags,
    /// The same as `mount(2)` flags (legacy API).
    pub flags: MountFlags,
    /// Filesystem parameters: `(key, Some(value))` for `key=value`, `(key, None)` for flags.
    pub fs_params: Vec<(String, Option<String>)>,
}

impl MountPlan {
    /// A read-write container mount: `lowers` top first, with `index=off` as Docker sets it
    /// (the index would tie the upper dir to these exact lower inodes and refuse remounts),
    /// and `redirect_dir=off`, `metacopy=off`: with either on, the upper dir of a renamed
    /// directory or a chmod'ed file refers back into the lowers through xattrs, and a layer
    /// tar of the upper dir alone would be wrong (Docker falls back to a slow "naive diff"
    /// then). With them off, the kernel answers EXDEV to a directory rename and `mv` copies.
    pub fn container(lowers: Vec<PathBuf>, upper: PathBuf, work: PathBuf, target: PathBuf) -> Self {
        MountPlan {
            lowerdirs: lowers,
            upperdir: Some(upper),
            workdir: Some(work),
            target,
            options: vec!["index=off".into(), "redirect_dir=off".into(), "metacopy=off".into()],
        }
    }

    /// A read-only view of `lowers` (top first), e.g. for `export` or an image preview.
    pub fn readonly(lowers: Vec<PathBuf>, target: PathBuf) -> Self {
        MountPlan { lowerdirs: lowers, upperdir: None, workdir: None, target, options: vec!["ro".into()] }
    }

    /// Checks the plan against the rules overlayfs will apply, so that most mistakes
    /// surface as a typed error before any syscall.
    pub fn validate(&self) -> Result<(), MountError> {
        let bad = |reason: String| MountError::InvalidPlan { target: self.target.clone(), reason };
        if self.lowerdirs.is_empty() {
            return Err(bad("at least one lowerdir is required".into()));
        }
        if self.lowerdirs.len() > OVERLAY_MAX_STACK {
            return Err(MountError::TooManyLayers { count: self.lowerdirs.len(), max: OVERLAY_MAX_STACK });
        }
        if self.upperdir.is_some() != self.workdir.is_some() {
            return Err(bad("upperdir and workdir must be given together".into()));
        }
        let all = self.lowerdirs.iter().chain(self.upperdir.iter()).chain(self.workdir.iter());
        for p in all.chain(std::iter::once(&self.target)) {
            if !p.is_absolute() {
                return Err(bad(format!("path {} is not absolute", p.display())));
            }
            if p.as_os_str().as_bytes().contains(&0) {
                return Err(bad(format!("path {} contains NUL", p.display())));
            }
        }
        for o in &self.options {
            let key = o.split('=').next().unwrap_or("");
            if matches!(key, "lowerdir" | "lowerdir+" | "upperdir" | "workdir" | "datadir+") {
                return Err(bad(format!("option {o:?} must be given through the plan's fields")));
            }
            if o.is_empty() || o.contains(',') || o.contains('\0') {
                return Err(bad(format!("option {o:?} is empty or contains ',' or NUL")));
            }
        }
        Ok(())
    }

    /// Splits `options` into mount attributes/flags and overlay parameters.
    pub fn split_options(&self) -> SplitOptions {
        split_options(&self.options)
    }
}

/// See [`MountPlan::split_options`].
pub fn split_options(options: &[String]) -> SplitOptions {
    let mut out = SplitOptions { attrs: MountAttrFlags::empty(), flags: MountFlags::empty(), fs_params: Vec::new() };
    for o in options {
        let (attr, flag) = match o.as_str() {
            "ro" | "rdonly" => (MountAttrFlags::MOUNT_ATTR_RDONLY, MountFlags::RDONLY),
            "nosuid" => (MountAttrFlags::MOUNT_ATTR_NOSUID, MountFlags::NOSUID),
            "nodev" => (MountAttrFlags::MOUNT_ATTR_NODEV, MountFlags::NODEV),
            "noexec" => (MountAttrFlags::MOUNT_ATTR_NOEXEC, MountFlags::NOEXEC),
            "noatime" => (MountAttrFlags::MOUNT_ATTR_NOATIME, MountFlags::NOATIME),
            "relatime" => (MountAttrFlags::MOUNT_ATTR_RELATIME, MountFlags::RELATIME),
            "strictatime" => (MountAttrFlags::MOUNT_ATTR_STRICTATIME, MountFlags::STRICTATIME),
            "nodiratime" => (MountAttrFlags::MOUNT_ATTR_NODIRATIME, MountFlags::NODIRATIME),
            // "rw" is the default; accepting it keeps plans written for mount(8) valid.
            "rw" => continue,
            _ => {
                let (k, v) = match o.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (o.clone(), None),
                };
                out.fs_params.push((k, v));
                continue;
            }
        };
        out.attrs |= attr;
        out.flags |= flag;
    }
    out
}

/// Escapes a path for overlayfs' `lowerdir=` list, where `:` separates layers and `\`
/// escapes. (`,` separates mount options and cannot be escaped for mount(2) at all; such
/// paths are rejected by [`legacy_data`].)
fn escape_lower(p: &[u8], out: &mut Vec<u8>) {
    for &b in p {
        if b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Overlayfs unescapes `upperdir`/`workdir` values (`ovl_unescape`: a backslash quotes the
/// next byte), for mount(2) and fsconfig alike, while `lowerdir+` is taken verbatim.
fn escape_upper(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    for &b in p {
        if b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The `mount(2)` data string for `plan`: `lowerdir=a:b:c[,upperdir=u,workdir=w][,opts]`.
///
/// With `base`, every layer path is written relative to it (the caller then mounts with its
/// working directory at `base`, as Docker does from its store root with `l/<short>` links).
/// Returns `None` if a path contains `,` (unrepresentable) or does not lie under `base`.
pub fn legacy_data(plan: &MountPlan, base: Option<&Path>) -> Option<OsString> {
    let rel = |p: &Path| -> Option<Vec<u8>> {
        let bytes = match base {
            Some(b) => {
                let r = p.strip_prefix(b).ok()?;
                if r.as_os_str().is_empty() {
                    b".".to_vec()
                } else {
                    r.as_os_str().as_bytes().to_vec()
                }
            }
            None => p.as_os_str().as_bytes().to_vec(),
        };
        if bytes.contains(&b',') {
            None
        } else {
            Some(bytes)
        }
    };
    let mut s = b"lowerdir=".to_vec();
    for (i, l) in plan.lowerdirs.iter().enumerate() {
        if i > 0 {
            s.push(b':');
        }
        escape_lower(&rel(l)?, &mut s);
    }
    if let (Some(u), Some(w)) = (&plan.upperdir, &plan.workdir) {
        s.extend_from_slice(b",upperdir=");
        s.extend_from_slice(&escape_upper(&rel(u)?));
        s.extend_from_slice(b",workdir=");
        s.extend_from_slice(&escape_upper(&rel(w)?));
    }
    for (k, v) in split_options(&plan.options).fs_params {
        s.push(b',');
        s.extend_from_slice(k.as_bytes());
        if let Some(v) = v {
            s.push(b'=');
            s.extend_from_slice(v.as_bytes());
        }
    }
    Some(OsString::from_vec(s))
}

/// The deepest directory containing every layer, upper and work dir of `plan`.
pub fn common_base(plan: &MountPlan) -> PathBuf {
    let mut dirs = plan.lowerdirs.iter().chain(plan.upperdir.iter()).chain(plan.workdir.iter());
    let mut base: PathBuf = match dirs.next() {
        Some(d) => d.clone(),
        None => return PathBuf::from("/"),
    };
    for d in dirs {
        while !d.starts_with(&base) {
            if !base.pop() {
                return PathBuf::from("/");
            }
        }
    }
    // A layer equal to the base would become ".", which is fine, but a base that *is* a
    // layer usually means one layer nests another; step up so every path stays a name.
    if plan.lowerdirs.iter().any(|l| l == &base) && base.parent().is_some() {
        base.pop();
    }
    base
}

/// Mounts `plan`, choosing the API automatically. Returns the API that was used.
pub fn mount_overlay(plan: &MountPlan) -> Result<MountApi, MountError> {
    mount_overlay_with(plan, ApiChoice::Auto)
}

// 0 = unknown, 1 = new API with lowerdir+ works, 2 = not supported: use legacy.
static NEW_API_STATE: AtomicU8 = AtomicU8::new(0);

/// Mounts `plan` with the given API choice (tests force one path or the other).
pub fn mount_overlay_with(plan: &MountPlan, choice: ApiChoice) -> Result<MountApi, MountError> {
    plan.validate()?;
    match choice {
        ApiChoice::Legacy => legacy_mount(plan).map(|_| MountApi::Legacy),
        ApiChoice::New => new_api_mount(plan).map_err(|e| e.into_error(plan)).map(|_| MountApi::New),
        ApiChoice::Auto => {
            if NEW_API_STATE.load(Ordering::Relaxed) == 2 {
                return legacy_mount(plan).map(|_| MountApi::Legacy);
            }
            match new_api_mount(plan) {
                Ok(()) => {
                    NEW_API_STATE.store(1, Ordering::Relaxed);
                    Ok(MountApi::New)
                }
                Err(NewApiError::Unsupported) => {
                    NEW_API_STATE.store(2, Ordering::Relaxed);
                    legacy_mount(plan).map(|_| MountApi::Legacy)
                }
                Err(e) => Err(e.into_error(plan)),
            }
        }
    }
}

enum NewApiError {
    /// No fsopen, or overlayfs without `lowerdir+` (kernel < 6.8).
    Unsupported,
    Failed {
        step: String,
        errno: Errno,
        kernel_message: Option<String>,
    },
}

impl NewApiError {
    fn into_error(self, plan: &MountPlan) -> MountError {
        match self {
            NewApiError::Unsupported => MountError::MountFailed {
                target: plan.target.clone(),
                api: "new",
                step: "fsopen/lowerdir+".into(),
                errno: libc::ENOSYS,
                errno_text: std::io::Error::from_raw_os_error(libc::ENOSYS).to_string(),
                kernel_message: Some("kernel lacks the new mount API or overlay lowerdir+".into()),
            },
            NewApiError::Failed { step, errno, kernel_message } => MountError::MountFailed {
                target: plan.target.clone(),
                api: "new",
                step,
                errno: errno.raw_os_error(),
                errno_text: std::io::Error::from(errno).to_string(),
                kernel_message,
            },
        }
    }
}

/// Drains the fs context's message queue. Each message is one `read()` and starts with
/// `e ` (error), `w ` (warning) or `i ` (info); the queue holds the last few messages.
fn kernel_messages(fs: &OwnedFd) -> Option<String> {
    let mut msgs = Vec::new();
    let mut buf = [0u8; 1024];
    // The kernel keeps at most 8 messages; the bound also guards against a misbehaving fd.
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                let m = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
                let m = m.strip_prefix("e ").map(str::to_string).unwrap_or(m);
                msgs.push(m);
            }
            _ => break,
        }
    }
    if msgs.is_empty() {
        None
    } else {
        Some(msgs.join("; "))
    }
}

fn new_api_mount(plan: &MountPlan) -> Result<(), NewApiError> {
    let fs = match fsopen(OVERLAY_FSTYPE, FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        // ENOSYS: no new mount API; EPERM under some seccomp profiles that predate it.
        Err(Errno::NOSYS) => return Err(NewApiError::Unsupported),
        Err(errno) => return Err(NewApiError::Failed { step: "fsopen".into(), errno, kernel_message: None }),
    };
    let fail = |fs: &OwnedFd, step: String, errno: Errno| NewApiError::Failed {
        step,
        errno,
        kernel_message: kernel_messages(fs),
    };
    let opts = plan.split_options();
    // What mountinfo shows as the source; mount(8) and Docker use "overlay" too.
    fsconfig_set_string(fs.as_fd(), "source", OVERLAY_FSTYPE).map_err(|e| fail(&fs, "fsconfig source".into(), e))?;
    // Overlay parameters that change layer lookup (e.g. userxattr) must precede the layers.
    for (k, v) in &opts.fs_params {
        let r = match v {
            Some(v) => fsconfig_set_string(fs.as_fd(), k.as_str(), v.as_str()),
            None => fsconfig_set_flag(fs.as_fd(), k.as_str()),
        };
        r.map_err(|e| fail(&fs, format!("fsconfig {k}"), e))?;
    }
    for (i, l) in plan.lowerdirs.iter().enumerate() {
        if let Err(e) = fsconfig_set_string(fs.as_fd(), "lowerdir+", l.as_path()) {
            let msg = kernel_messages(&fs);
            // Before 6.8 overlayfs rejects the unknown key with EINVAL on the very first layer.
            let unknown = msg.as_deref().is_none_or(|m| m.contains("nknown parameter"));
            if i == 0 && e == Errno::INVAL && unknown {
                return Err(NewApiError::Unsupported);
            }
            return Err(NewApiError::Failed {
                step: format!("fsconfig lowerdir+ {}", l.display()),
                errno: e,
                kernel_message: msg,
            });
        }
    }
    if let (Some(u), Some(w)) = (&plan.upperdir, &plan.workdir) {
        let (u, w) = (escape_upper(u.as_os_str().as_bytes()), escape_upper(w.as_os_str().as_bytes()));
        let (u, w) = (std::ffi::OsStr::from_bytes(&u), std::ffi::OsStr::from_bytes(&w));
        fsconfig_set_string(fs.as_fd(), "upperdir", u).map_err(|e| fail(&fs, "fsconfig upperdir".into(), e))?;
        fsconfig_set_string(fs.as_fd(), "workdir", w).map_err(|e| fail(&fs, "fsconfig workdir".into(), e))?;
    }
    fsconfig_create(fs.as_fd()).map_err(|e| fail(&fs, "fsconfig create".into(), e))?;
    let mnt =
        fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, opts.attrs).map_err(|e| fail(&fs, "fsmount".into(), e))?;
    move_mount(mnt.as_fd(), "", rustix::fs::CWD, plan.target.as_path(), MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| NewApiError::Failed { step: "move_mount".into(), errno: e, kernel_message: None })?;
    Ok(())
}

fn legacy_failed(plan: &MountPlan, errno: Errno) -> MountError {
    MountError::MountFailed {
        target: plan.target.clone(),
        api: "legacy",
        step: "mount".into(),
        errno: errno.raw_os_error(),
        errno_text: std::io::Error::from(errno).to_string(),
        // mount(2) reports overlayfs' reason only to the kernel log.
        kernel_message: None,
    }
}

/// Classic `mount(2)`. If the absolute option string does not fit in a page, the layer
/// paths are made relative to their common base directory and the mount is done with the
/// working directory there — Docker's trick (it mounts from the store root with
/// `l/<short>` names).
///
/// Why a dedicated thread with `unshare(CLONE_FS)` rather than `chdir` or a fork: the cwd
/// is shared by every thread of the process, so a `chdir` here would race with Node and
/// libuv threads resolving relative paths. `unshare(CLONE_FS)` gives only the calling
/// thread its own cwd/umask/root (it is allowed in multi-threaded processes, unlike
/// `CLONE_NEWUSER`), and running it on a short-lived thread means no pooled thread is
/// left with a diverged cwd. A `fork()` of a large multi-threaded Node process would copy
/// page tables and may only call async-signal-safe functions; `/proc/self/fd/N` paths are
/// ~17 bytes per layer and would not lift the limit much.
fn legacy_mount(plan: &MountPlan) -> Result<(), MountError> {
    let flags = plan.split_options().flags;
    let invalid = |reason: &str| MountError::InvalidPlan { target: plan.target.clone(), reason: reason.into() };
    let abs = legacy_data(plan, None).ok_or_else(|| invalid("a path contains ',' which mount(2) cannot express"))?;
    if abs.len() <= LEGACY_DATA_MAX {
        return rustix::mount::mount(
            OVERLAY_FSTYPE,
            plan.target.as_path(),
            OVERLAY_FSTYPE,
            flags,
            Some(to_cstring(&abs).as_c_str()),
        )
        .map_err(|e| legacy_failed(plan, e));
    }
    let base = common_base(plan);
    let rel = legacy_data(plan, Some(&base)).ok_or_else(|| invalid("a path contains ','"))?;
    if rel.len() > LEGACY_DATA_MAX {
        return Err(MountError::OptionsTooLong { len: rel.len(), max: LEGACY_DATA_MAX });
    }
    let rel = to_cstring(&rel);
    let target = plan.target.clone();
    let joined = std::thread::Builder::new()
        .name("strata-mount".into())
        .spawn(move || -> Result<(), Errno> {
            // SAFETY: CLONE_FS only detaches this thread's cwd/root/umask; no fds are unshared.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
            rustix::process::chdir(&base)?;
            rustix::mount::mount(OVERLAY_FSTYPE, target.as_path(), OVERLAY_FSTYPE, flags, Some(rel.as_c_str()))
        })
        .map_err(|e| invalid(&format!("cannot spawn mount thread: {e}")))?
        .join()
        .map_err(|_| invalid("mount thread panicked"))?;
    joined.map_err(|e| legacy_failed(plan, e))
}

fn to_cstring(s: &OsString) -> std::ffi::CString {
    // validate() rejected NUL in paths and options, so this cannot fail.
    std::ffi::CString::new(s.as_bytes()).unwrap_or_default()
}

/// Unmounts `target`. Returns `Ok(false)` if nothing was mounted there (EINVAL/ENOENT),
/// `Ok(true)` after a successful unmount. `detach` = `MNT_DETACH` (lazy: the mount leaves
/// the namespace now and is freed when its last user goes away). Symlinks at `target` are
/// not followed.
pub fn unmount(target: &Path, detach: bool) -> Result<bool, MountError> {
    let mut flags = UnmountFlags::NOFOLLOW;
    if detach {
        flags |= UnmountFlags::DETACH;
    }
    match rustix::mount::unmount(target, flags) {
        Ok(()) => Ok(true),
        Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(MountError::UnmountFailed { target: target.into(), source: e.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn container_plan_and_legacy_string() {
        let plan =
            MountPlan::container(vec![p("/s/l/B"), p("/s/l/A")], p("/s/c/diff"), p("/s/c/work"), p("/s/c/merged"));
        plan.validate().unwrap();
        assert_eq!(
            legacy_data(&plan, None).unwrap(),
            "lowerdir=/s/l/B:/s/l/A,upperdir=/s/c/diff,workdir=/s/c/work,index=off,redirect_dir=off,metacopy=off"
        );
        assert_eq!(common_base(&plan), p("/s"));
        assert_eq!(
            legacy_data(&plan, Some(Path::new("/s"))).unwrap(),
            "lowerdir=l/B:l/A,upperdir=c/diff,workdir=c/work,index=off,redirect_dir=off,metacopy=off"
        );
    }

    #[test]
    fn readonly_plan_uses_flags_not_fs_params() {
        let mut plan = MountPlan::readonly(vec![p("/a"), p("/b")], p("/m"));
        plan.options.extend(["nosuid".into(), "nodev".into(), "metacopy=off".into(), "userxattr".into()]);
        let s = plan.split_options();
        assert!(s.attrs.contains(MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NOSUID));
        assert!(s.attrs.contains(MountAttrFlags::MOUNT_ATTR_NODEV));
        assert!(s.flags.contains(MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV));
        assert_eq!(s.fs_params, vec![("metacopy".into(), Some("off".into())), ("userxattr".into(), None)]);
        assert_eq!(legacy_data(&plan, None).unwrap(), "lowerdir=/a:/b,metacopy=off,userxattr");
    }

    #[test]
    fn colons_are_escaped_and_commas_rejected() {
        let plan = MountPlan::readonly(vec![p("/x:y"), p("/b\\c")], p("/m"));
        assert_eq!(legacy_data(&plan, None).unwrap(), "lowerdir=/x\\:y:/b\\\\c");
        let plan = MountPlan::readonly(vec![p("/x,y")], p("/m"));
        assert!(legacy_data(&plan, None).is_none());
    }

    #[test]
    fn validation_catches_mistakes() {
        let ok = MountPlan::container(vec![p("/l")], p("/u"), p("/w"), p("/m"));
        let code = |pl: &MountPlan| pl.validate().unwrap_err().code();
        let mut pl = ok.clone();
        pl.lowerdirs.clear();
        assert_eq!(code(&pl), "InvalidMountPlan");
        let mut pl = ok.clone();
        pl.workdir = None;
        assert_eq!(code(&pl), "InvalidMountPlan");
        let mut pl = ok.clone();
        pl.lowerdirs = vec![p("rel")];
        assert_eq!(code(&pl), "InvalidMountPlan");
        let mut pl = ok.clone();
        pl.options.push("lowerdir=/x".into());
        assert_eq!(code(&pl), "InvalidMountPlan");
        let mut pl = ok.clone();
        pl.lowerdirs = (0..501).map(|i| p(&format!("/l{i}"))).collect();
        assert_eq!(code(&pl), "TooManyLayers");
        pl.lowerdirs.pop();
        pl.validate().unwrap();
    }

    #[test]
    fn common_base_steps_above_a_layer() {
        let plan = MountPlan::readonly(vec![p("/s/a"), p("/s/a/b")], p("/m"));
        assert_eq!(common_base(&plan), p("/s"));
        let plan = MountPlan::readonly(vec![p("/x/a"), p("/y/b")], p("/m"));
        assert_eq!(common_base(&plan), p("/"));
    }

    /// The kernel's own limit, past our validation: 501 `lowerdir+` calls fail with EINVAL
    /// and overlayfs' reason. Needs root (these machines have it).
    #[test]
    fn kernel_rejects_layer_501_itself() {
        let t = tempfile::tempdir().unwrap();
        let lowers: Vec<PathBuf> = (0..501)
            .map(|i| {
                let d = t.path().join(format!("l{i}"));
                std::fs::create_dir(&d).unwrap();
                d
            })
            .collect();
        let target = t.path().join("m");
        std::fs::create_dir(&target).unwrap();
        let plan = MountPlan::readonly(lowers, target);
        let e = match new_api_mount(&plan) {
            Err(e) => e.into_error(&plan),
            Ok(()) => panic!("501 layers mounted"),
        };
        assert_eq!(e.code(), "MountFailed");
        assert_eq!(e.errno(), Some(libc::EINVAL));
        let msg = e.to_string();
        assert!(msg.contains("too many lower directories, limit is 500"), "{msg}");
        assert!(msg.contains("l500"), "{msg}");
    }
}
