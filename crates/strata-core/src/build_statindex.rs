//! The build context's stat index as the context scan reads it: for each path, the stat key it
//! had when it was hashed and the sha256 it hashed to, so that the scan hands a file's digest
//! over with its entry when the file's stat key now is the recorded one (a rebuild then needs
//! no index on the JavaScript side at all). ts/build/statindex.ts documents its format (version
//! 3) and writes it when paths are to be dropped; [`update`] writes it otherwise:
//!
//! ```text
//! {"v":3,"context":"/abs/path","entries":[<rel>,"<stat key>","sha256:…",…]}
//! ```
//!
//! `<rel>` is a path as JSON carries it between the two sides ([`WirePath`]). Whether a row
//! may be trusted was decided when it was written (git's racily-clean rule, see there), so a
//! lookup is only an equality of stat keys. A file is parsed once per version of it (its
//! device, inode, size and times: every save renames a new file into place).
//!
//! [`update`] writes the next version of a file from the rows parsed here and the few rows a
//! build hashed (or dropped), so a rebuild after one file changed neither parses nor writes the
//! index in JavaScript; it declines when the index holds rows the build did not account for
//! (paths deleted or ignored since), which ts/build/context.ts then drops itself.
use crate::error::{Coded, ErrorCode};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The version of the file this reads (ts/build/statindex.ts `VERSION`).
pub const VERSION: u32 = 3;

/// A file name inside JSON: a string when it is UTF-8, else `{"b": base64}` of its bytes
/// (ts/internal/bytepath.ts `toWire`).
#[derive(serde::Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum WirePath {
    Text(String),
    Bytes { b: String },
}

/// Appends `b` to `out` as JSON carries a name ([`WirePath`]): a string when it is UTF-8, else
/// `{"b": base64}`.
pub fn push_wire(out: &mut String, b: &[u8]) {
    use base64::Engine;
    match std::str::from_utf8(b) {
        // A `str` always serializes.
        Ok(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Err(_) => {
            out.push_str("{\"b\":\"");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push_str("\"}");
        }
    }
}

impl WirePath {
    /// The name's bytes.
    pub fn into_bytes(self) -> Result<Vec<u8>, base64::DecodeError> {
        use base64::Engine;
        match self {
            WirePath::Text(s) => Ok(s.into_bytes()),
            WirePath::Bytes { b } => base64::engine::general_purpose::STANDARD.decode(b),
        }
    }
}

/// The rows of one stat index: path bytes → (stat key, sha256).
#[derive(Debug, Default)]
pub struct StatIndexRows {
    rows: HashMap<Vec<u8>, (String, String)>,
}

#[derive(serde::Deserialize)]
struct IndexFile {
    v: u32,
    context: String,
    entries: Vec<WirePath>,
}

impl StatIndexRows {
    /// The rows of an index file's bytes, if it is of this version and of `context`.
    pub fn parse(bytes: &[u8], context: &str) -> Option<StatIndexRows> {
        // A file of another version may not even parse as this one's shape.
        let f: IndexFile = serde_json::from_slice(bytes).ok()?;
        if f.v != VERSION || f.context != context || !f.entries.len().is_multiple_of(3) {
            return None;
        }
        let n = f.entries.len() / 3;
        let mut rows = HashMap::with_capacity(n);
        let mut it = f.entries.into_iter();
        for _ in 0..n {
            // A key or digest that is not a string: not a file this version wrote.
            let (Some(rel), Some(WirePath::Text(key)), Some(WirePath::Text(sha))) = (it.next(), it.next(), it.next())
            else {
                return None;
            };
            rows.insert(rel.into_bytes().ok()?, (key, sha));
        }
        Some(StatIndexRows { rows })
    }

    /// The recorded sha256 of `rel` if `stat_key` is the one it was recorded with.
    pub fn lookup(&self, rel: &[u8], stat_key: &str) -> Option<&str> {
        match self.rows.get(rel) {
            Some((key, sha)) if key == stat_key => Some(sha),
            _ => None,
        }
    }

    /// How many paths it has a row for.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Why [`update`] could not write the index.
#[derive(Debug, thiserror::Error)]
pub enum StatIndexError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: String, source: std::io::Error },
}

impl Coded for StatIndexError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Io
    }
    fn errno(&self) -> Option<i32> {
        let StatIndexError::Io { source, .. } = self;
        source.raw_os_error()
    }
    fn path(&self) -> Option<String> {
        let StatIndexError::Io { path, .. } = self;
        Some(path.clone())
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StatIndexError + 'a {
    move |source| StatIndexError::Io { op, path: path.display().to_string(), source }
}

/// A change [`update`] makes to one path's row: record (stat key, sha256), or drop it (`None`).
pub type RowChange = (Vec<u8>, Option<(String, String)>);

/// What [`update`] did.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Updated {
    /// Nothing changed: the file is as it was.
    Same,
    /// The next version of the file was written.
    Written,
    /// The rows after the changes were not `expect_rows`: nothing was written.
    Declined,
}

impl StatIndexRows {
    /// The file's text (the format above): rows in no particular order.
    fn to_json(&self, context: &str) -> String {
        let mut out = String::with_capacity(64 + self.rows.len() * 160);
        out.push_str("{\"v\":");
        out.push_str(&VERSION.to_string());
        out.push_str(",\"context\":");
        // A `str` always serializes.
        out.push_str(&serde_json::to_string(context).unwrap_or_default());
        out.push_str(",\"entries\":[");
        for (i, (rel, (key, sha))) in self.rows.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_wire(&mut out, rel);
            for v in [key, sha] {
                out.push(',');
                out.push_str(&serde_json::to_string(v).unwrap_or_default());
            }
        }
        out.push_str("]}");
        out
    }
}

/// Applies `changes` to the rows of the index `file` of `context` (as [`load`] reads them) and,
/// when the result has exactly `expect_rows` rows, writes it to `tmp` and renames that over
/// `file` (no fsync: the index is a cache; a torn file reads as no index). `expect_rows` is
/// how many present paths the caller knows to have a row (the scan's hits plus the rows it
/// records): any other count means rows of paths no longer in the context, and the caller
/// drops those itself ([`Updated::Declined`]).
pub fn update(
    file: &Path,
    context: &str,
    tmp: &Path,
    changes: Vec<RowChange>,
    expect_rows: usize,
) -> Result<Updated, StatIndexError> {
    let old = load(file, context);
    // A rebuild that hashed nothing (the common case): only the count to check, no copy of the rows.
    if changes.is_empty() {
        return Ok(if old.len() == expect_rows { Updated::Same } else { Updated::Declined });
    }
    let mut rows = StatIndexRows { rows: old.rows.clone() };
    let mut changed = false;
    for (rel, row) in changes {
        changed |= match row {
            Some(row) => rows.rows.insert(rel, row.clone()).is_none_or(|was| was != row),
            None => rows.rows.remove(&rel).is_some(),
        };
    }
    if rows.len() != expect_rows {
        return Ok(Updated::Declined);
    }
    if !changed {
        return Ok(Updated::Same);
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io_error("mkdir", dir))?;
    }
    let written = std::fs::write(tmp, rows.to_json(context))
        .map_err(io_error("write", tmp))
        .and_then(|()| std::fs::rename(tmp, file).map_err(io_error("rename", file)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    // The next scan in this process reads these rows without parsing the file again.
    if let Ok(meta) = std::fs::metadata(file) {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let version = version_of(&meta);
        *last = Some(Parsed { file: file.to_path_buf(), context: context.to_string(), version, rows: Arc::new(rows) });
    }
    Ok(Updated::Written)
}

/// What tells one version of an index file from the next: device, inode, size, mtime and ctime.
type FileVersion = (u64, u64, u64, i64, i64, i64, i64);

fn version_of(meta: &std::fs::Metadata) -> FileVersion {
    (meta.dev(), meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec())
}

/// An index as parsed: its file, context and version, and its rows.
struct Parsed {
    file: PathBuf,
    context: String,
    version: FileVersion,
    rows: Arc<StatIndexRows>,
}

/// The last index parsed in this process (a build scans a context level by level, one call each).
static LAST: Mutex<Option<Parsed>> = Mutex::new(None);

/// The rows of the index `file` for `context`; empty when there is none, or it is unreadable,
/// torn, of another version or of another context (its files are then hashed, and the index
/// written again).
pub fn load(file: &Path, context: &str) -> Arc<StatIndexRows> {
    let Ok(meta) = std::fs::metadata(file) else { return Arc::default() };
    let version = version_of(&meta);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = last.as_ref() {
        if p.file == file && p.context == context && p.version == version {
            return p.rows.clone();
        }
    }
    let rows = Arc::new(std::fs::read(file).ok().and_then(|b| StatIndexRows::parse(&b, context)).unwrap_or_default());
    *last = Some(Parsed { file: file.to_path_buf(), context: context.to_string(), version, rows: rows.clone() });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "1:2:3:4:5:33188";
    const SHA: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn rows_of_text_and_byte_names() {
        let json =
            format!(r#"{{"v":3,"context":"/c","entries":["a/b","{KEY}","{SHA}",{{"b":"Zv8="}},"{KEY}","{SHA}"]}}"#);
        let rows = StatIndexRows::parse(json.as_bytes(), "/c").expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.lookup(b"a/b", KEY), Some(SHA));
        assert_eq!(rows.lookup(b"f\xff", KEY), Some(SHA));
        // Another stat key, another path: no digest.
        assert_eq!(rows.lookup(b"a/b", "1:2:3:4:6:33188"), None);
        assert_eq!(rows.lookup(b"a/c", KEY), None);
    }

    #[test]
    fn another_version_context_or_shape_is_no_index() {
        let v2 = format!(r#"{{"v":2,"context":"/c","entries":["a","{KEY}","{SHA}"]}}"#);
        assert!(StatIndexRows::parse(v2.as_bytes(), "/c").is_none());
        let other = format!(r#"{{"v":3,"context":"/d","entries":["a","{KEY}","{SHA}"]}}"#);
        assert!(StatIndexRows::parse(other.as_bytes(), "/c").is_none());
        let short = format!(r#"{{"v":3,"context":"/c","entries":["a","{KEY}"]}}"#);
        assert!(StatIndexRows::parse(short.as_bytes(), "/c").is_none());
        let bytes_key = format!(r#"{{"v":3,"context":"/c","entries":["a",{{"b":"eA=="}},"{SHA}"]}}"#);
        assert!(StatIndexRows::parse(bytes_key.as_bytes(), "/c").is_none());
        assert!(StatIndexRows::parse(b"{\"v\":3,", "/c").is_none());
    }

    #[test]
    fn update_records_drops_and_declines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sub").join("idx.json");
        let tmp = dir.path().join("sub").join(".idx.json.tmp");
        let row = |k: &str| Some((k.to_string(), SHA.to_string()));
        // A first index: two rows, one of them a name that is not UTF-8.
        let first = vec![(b"a".to_vec(), row(KEY)), (b"f\xff".to_vec(), row(KEY))];
        assert_eq!(update(&file, "/c", &tmp, first, 2).expect("update"), Updated::Written);
        let text = std::fs::read(&file).expect("read");
        let rows = StatIndexRows::parse(&text, "/c").expect("parses as written");
        assert_eq!((rows.lookup(b"a", KEY), rows.lookup(b"f\xff", KEY)), (Some(SHA), Some(SHA)));
        assert!(!tmp.exists());
        // The same rows again: nothing written.
        assert_eq!(update(&file, "/c", &tmp, vec![(b"a".to_vec(), row(KEY))], 2).expect("update"), Updated::Same);
        // A row changed and one dropped.
        let next = vec![(b"a".to_vec(), row("9:9:9:9:9:33188")), (b"f\xff".to_vec(), None)];
        assert_eq!(update(&file, "/c", &tmp, next, 1).expect("update"), Updated::Written);
        let rows = StatIndexRows::parse(&std::fs::read(&file).expect("read"), "/c").expect("parses");
        assert_eq!((rows.len(), rows.lookup(b"a", "9:9:9:9:9:33188")), (1, Some(SHA)));
        assert_eq!(update(&file, "/c", &tmp, Vec::new(), 1).expect("update"), Updated::Same);
        assert_eq!(update(&file, "/c", &tmp, Vec::new(), 2).expect("update"), Updated::Declined);
        // Another count than the caller expects (a row of a path it does not know): declined, file kept.
        let before = std::fs::read(&file).expect("read");
        assert_eq!(update(&file, "/c", &tmp, vec![(b"b".to_vec(), row(KEY))], 1).expect("update"), Updated::Declined);
        assert_eq!(std::fs::read(&file).expect("read"), before);
    }

    #[test]
    fn load_reads_a_replaced_file_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("idx.json");
        assert!(load(&file, "/c").is_empty());
        let write = |rel: &str| {
            let tmp = dir.path().join("tmp");
            std::fs::write(&tmp, format!(r#"{{"v":3,"context":"/c","entries":["{rel}","{KEY}","{SHA}"]}}"#))
                .expect("write");
            std::fs::rename(&tmp, &file).expect("rename");
        };
        write("a");
        assert_eq!(load(&file, "/c").lookup(b"a", KEY), Some(SHA));
        assert!(load(&file, "/other").is_empty());
        write("b");
        let rows = load(&file, "/c");
        assert_eq!((rows.lookup(b"a", KEY), rows.lookup(b"b", KEY)), (None, Some(SHA)));
    }
}
