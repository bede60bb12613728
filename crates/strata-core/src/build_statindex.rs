//! The build context's stat index as the context scan reads it: for each path, the stat key it
//! had when it was hashed and the sha256 it hashed to, so that the scan hands a file's digest
//! over with its entry when the file's stat key now is the recorded one (a rebuild then needs
//! no index on the JavaScript side at all). ts/build/statindex.ts writes the file and documents
//! its format (version 3); here it is only read:
//!
//! ```text
//! {"v":3,"context":"/abs/path","entries":[<rel>,"<stat key>","sha256:…",…]}
//! ```
//!
//! `<rel>` is a path as JSON carries it between the two sides ([`WirePath`]). Whether a row
//! may be trusted was decided when it was written (git's racily-clean rule, see there), so a
//! lookup is only an equality of stat keys. A file is parsed once per version of it (its
//! device, inode, size and times: every save renames a new file into place).
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

/// What tells one version of an index file from the next: device, inode, size, mtime and ctime.
type FileVersion = (u64, u64, u64, i64, i64, i64, i64);

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
    let version =
        (meta.dev(), meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec());
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
