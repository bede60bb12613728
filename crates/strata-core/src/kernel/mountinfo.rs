//! `/proc/self/mountinfo`: which paths are mount points, and which overlays are mounted
//! under a directory (to find stale mounts left by a crash).
//!
//! Line format (proc(5)):
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)  (4)   (5)   (6)        (7)      (8) (9)  (10)      (11)
//! ```
//! Fields (4), (5), (10) and the super options (11) escape space, tab, newline and
//! backslash as octal `\ooo`; overlayfs additionally escapes `,` `:` and `=`-free chars it
//! uses as separators in its own options (`seq_escape`), so super options are split on
//! `,` (and `lowerdir` on `:`) *before* unescaping.
//!
//! It only reads: it must not mount or unmount.
use crate::error::ErrorCode;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Errors reading or parsing mountinfo.
#[derive(Debug, thiserror::Error)]
pub enum MountInfoError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("malformed mountinfo line {line}: {text:?}")]
    Malformed { line: usize, text: String },
}

impl crate::error::Coded for MountInfoError {
    fn code(&self) -> ErrorCode {
        match self {
            MountInfoError::Read { .. } => ErrorCode::Io,
            MountInfoError::Malformed { .. } => ErrorCode::MalformedMountInfo,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            MountInfoError::Read { source, .. } => source.raw_os_error(),
            MountInfoError::Malformed { .. } => None,
        }
    }
    fn path(&self) -> Option<String> {
        match self {
            MountInfoError::Read { path, .. } => Some(path.display().to_string()),
            MountInfoError::Malformed { .. } => None,
        }
    }
}

/// One line of mountinfo, unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub mount_options: String,
    /// Optional fields (`shared:1 master:2`).
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: OsString,
    /// Super-block options, *still escaped*: split them with [`split_super_options`].
    pub super_options: Vec<u8>,
}

/// An overlay mount and its layers as the kernel shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayMount {
    pub mount_point: PathBuf,
    /// Top first. Empty if the kernel hides them.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
}

/// Undoes the kernel's `\ooo` octal escapes. Invalid escapes are kept verbatim.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 3 < s.len() && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (s[i + 1] - b'0') as u32 * 64 + (s[i + 2] - b'0') as u32 * 8 + (s[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn unescape_path(s: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(s)))
}

/// Parses one mountinfo line (`line_no` is for error messages).
pub fn parse_line(text: &[u8], line_no: usize) -> Result<MountInfo, MountInfoError> {
    let bad = || MountInfoError::Malformed { line: line_no, text: String::from_utf8_lossy(text).into_owned() };
    let mut it = text.split(|&b| b == b' ');
    let mut next = || it.next().ok_or_else(bad);
    let num = |f: &[u8]| -> Result<u32, MountInfoError> {
        std::str::from_utf8(f).ok().and_then(|s| s.parse().ok()).ok_or_else(bad)
    };
    let mount_id = num(next()?)?;
    let parent_id = num(next()?)?;
    let dev = next()?;
    let colon = dev.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (major, minor) = (num(&dev[..colon])?, num(&dev[colon + 1..])?);
    let root = unescape_path(next()?);
    let mount_point = unescape_path(next()?);
    let mount_options = String::from_utf8_lossy(next()?).into_owned();
    let mut optional = Vec::new();
    loop {
        let f = next()?;
        if f == b"-" {
            break;
        }
        optional.push(String::from_utf8_lossy(f).into_owned());
    }
    let fs_type = String::from_utf8_lossy(&unescape(next()?)).into_owned();
    let source = OsString::from_vec(unescape(next()?));
    let super_options = next().unwrap_or_default().to_vec();
    Ok(MountInfo {
        mount_id,
        parent_id,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// Parses a whole mountinfo text. Paths are bytes: the kernel escapes only space, tab,
/// newline and backslash, so non-UTF-8 names appear raw.
pub fn parse(text: &[u8]) -> Result<Vec<MountInfo>, MountInfoError> {
    text.split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()).map(|(i, l)| parse_line(l, i + 1)).collect()
}

/// Reads and parses `/proc/self/mountinfo`.
pub fn read() -> Result<Vec<MountInfo>, MountInfoError> {
    let path = Path::new("/proc/self/mountinfo");
    let bytes = std::fs::read(path).map_err(|source| MountInfoError::Read { path: path.into(), source })?;
    parse(&bytes)
}

/// Splits escaped super options into `(key, value)` pairs, unescaping the value.
pub fn split_super_options(s: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    s.split(|&b| b == b',')
        .filter(|o| !o.is_empty())
        .map(|o| match o.iter().position(|&b| b == b'=') {
            Some(i) => (String::from_utf8_lossy(&o[..i]).into_owned(), Some(o[i + 1..].to_vec())),
            None => (String::from_utf8_lossy(o).into_owned(), None),
        })
        .collect()
}

/// Splits an overlay `lowerdir` value on unescaped `:` and unescapes each part. Overlayfs
/// shows a literal `:` in a path as `\:` (and since 6.5 via octal), so both are handled.
fn split_lowerdir(v: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\\' if i + 1 < v.len() && !v[i + 1].is_ascii_digit() => {
                cur.push(v[i + 1]);
                i += 2;
                continue;
            }
            b':' => out.push(std::mem::take(&mut cur)),
            b => cur.push(b),
        }
        i += 1;
    }
    out.push(cur);
    out.into_iter().filter(|c| !c.is_empty()).map(|c| PathBuf::from(OsString::from_vec(unescape(&c)))).collect()
}

/// Overlayfs' `ovl_unescape`: a backslash quotes the next byte.
fn ovl_unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            if let Some(&n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(b);
        }
    }
    out
}

impl MountInfo {
    /// The layers of an overlay mount, from its super options. Handles both the classic
    /// `lowerdir=a:b` form and the repeated `lowerdir+=a,lowerdir+=b` form newer kernels
    /// print for mounts made with `lowerdir+`; `::` data-only separators are skipped.
    pub fn overlay(&self) -> Option<OverlayMount> {
        if self.fs_type != "overlay" {
            return None;
        }
        let mut m =
            OverlayMount { mount_point: self.mount_point.clone(), lowerdirs: vec![], upperdir: None, workdir: None };
        for (k, v) in split_super_options(&self.super_options) {
            let Some(v) = v else { continue };
            match k.as_str() {
                "lowerdir" => m.lowerdirs.extend(split_lowerdir(&v)),
                "lowerdir+" => m.lowerdirs.push(PathBuf::from(OsString::from_vec(unescape(&v)))),
                // Shown as configured, i.e. still with overlayfs' own backslash quoting.
                "upperdir" => m.upperdir = Some(PathBuf::from(OsString::from_vec(ovl_unescape(&unescape(&v))))),
                "workdir" => m.workdir = Some(PathBuf::from(OsString::from_vec(ovl_unescape(&unescape(&v))))),
                _ => {}
            }
        }
        Some(m)
    }
}

/// Overlay mounts whose mount point is `under` or below it, deepest first (the order in
/// which to unmount them).
pub fn overlay_mounts_under(under: &Path) -> Result<Vec<OverlayMount>, MountInfoError> {
    let under = std::fs::canonicalize(under).unwrap_or_else(|_| under.to_path_buf());
    let mut v: Vec<OverlayMount> =
        read()?.iter().filter(|m| m.mount_point.starts_with(&under)).filter_map(MountInfo::overlay).collect();
    v.sort_by(|a, b| b.mount_point.as_os_str().as_bytes().cmp(a.mount_point.as_os_str().as_bytes()));
    v.dedup_by(|a, b| a.mount_point == b.mount_point);
    Ok(v)
}

/// The overlay mounted exactly at `path`, if any (the topmost if several are stacked).
pub fn overlay_at(path: &Path) -> Result<Option<OverlayMount>, MountInfoError> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let all = read()?;
    // Later lines are mounted later, so the last match is the one visible at `path`.
    Ok(all.iter().rev().find(|m| m.mount_point == path).and_then(MountInfo::overlay))
}

/// Whether `path` is a mount point (of any filesystem). Uses `statx`'s
/// `STATX_ATTR_MOUNT_ROOT` (no parsing, works for bind mounts of the same fs), and falls
/// back to mountinfo where the kernel does not report that attribute.
pub fn is_mount_point(path: &Path) -> Result<bool, MountInfoError> {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
    match statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
        }
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(false),
        _ => {
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            Ok(read()?.iter().any(|m| m.mount_point == path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
98 22 0:50 / /var/lib/strata/overlay2/abc/merged rw,relatime shared:50 - overlay overlay rw,lowerdir=/s/l/A:/s/l/B,upperdir=/s/abc/diff,workdir=/s/abc/work,index=off
99 22 0:51 / /mnt/with\\040space/and\\011tab rw - overlay overlay rw,lowerdir+=/s/l/with\\054comma,lowerdir+=/s/l/B,upperdir=/u\\134\\134x,workdir=/w
100 22 0:52 /sub /mnt/tmp rw,nosuid master:3 shared:4 - tmpfs tmp\\040fs rw,size=10k
";

    #[test]
    fn parses_fields_and_octal_escapes() {
        let v = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].mount_point, Path::new("/"));
        assert_eq!(v[0].fs_type, "ext4");
        assert_eq!((v[1].major, v[1].minor), (0, 50));
        assert_eq!(v[2].mount_point, Path::new("/mnt/with space/and\ttab"));
        assert_eq!(v[3].root, Path::new("/sub"));
        assert_eq!(v[3].optional, vec!["master:3".to_string(), "shared:4".to_string()]);
        assert_eq!(v[3].source, OsString::from("tmp fs"));
        assert!(v[3].overlay().is_none());
    }

    #[test]
    fn overlay_layers_from_super_options() {
        let v = parse(SAMPLE.as_bytes()).unwrap();
        let o = v[1].overlay().unwrap();
        assert_eq!(o.lowerdirs, vec![PathBuf::from("/s/l/A"), PathBuf::from("/s/l/B")]);
        assert_eq!(o.upperdir.as_deref(), Some(Path::new("/s/abc/diff")));
        assert_eq!(o.workdir.as_deref(), Some(Path::new("/s/abc/work")));
        let o = v[2].overlay().unwrap();
        assert_eq!(o.lowerdirs, vec![PathBuf::from("/s/l/with,comma"), PathBuf::from("/s/l/B")]);
        assert_eq!(o.upperdir.as_deref(), Some(Path::new("/u\\x")));
    }

    #[test]
    fn lowerdir_escaped_colons() {
        assert_eq!(split_lowerdir(b"/a\\:b:/c"), vec![PathBuf::from("/a:b"), PathBuf::from("/c")]);
        assert_eq!(split_lowerdir(b"/a\\072b::/d"), vec![PathBuf::from("/a:b"), PathBuf::from("/d")]);
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        use crate::error::Coded;
        assert_eq!(parse(b"1 2 x / / rw - a b c").unwrap_err().code(), "MalformedMountInfo");
        assert_eq!(parse(b"1 2 0:1 / / rw shared:1").unwrap_err().code(), "MalformedMountInfo");
    }

    #[test]
    fn proc_root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        let d = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(&d.path().join("nope")).unwrap());
        assert!(!read().unwrap().is_empty());
    }
}
