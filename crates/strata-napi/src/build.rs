//! `strata build`'s native pieces (see `strata_core::build_ctx`, `strata_core::egress::build_commit`):
//! conversion only. Large results cross as one JSON string (a context of thousands of entries
//! converts field by field far slower than `JSON.parse` reads it); 64-bit times as decimal strings.
#![cfg_attr(test, allow(dead_code))]
use crate::cancel::NativeCancel;
use crate::BlockingTask;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use strata_core::build_add;
use strata_core::build_ctx::{self, CopyOp};
use strata_core::build_statindex::{self, push_wire, StatIndexRows, WirePath};
use strata_core::digest::Digest;
use strata_core::egress::build_commit;
use strata_core::error::ErrorCode;

type Outcome<T> = std::result::Result<T, crate::Failure>;

fn flag(cancel: Option<&NativeCancel>) -> Arc<AtomicBool> {
    NativeCancel::flag_of(cancel)
}

/// A file name from JSON as bytes (see [`WirePath`]).
fn wire(p: WirePath) -> Outcome<Vec<u8>> {
    p.into_bytes().map_err(|e| crate::Failure::new(ErrorCode::InvalidArgument, format!("bad path bytes: {e}")))
}

pub struct ScanDirs {
    root: PathBuf,
    dirs: Vec<Vec<u8>>,
    /// The stat index file the files' digests are looked up in.
    index: Option<PathBuf>,
}

/// The JSON `scanDirs` returns for `entries` of the directories `dirs` (see there). Written by
/// hand: building a `serde_json::Value` per entry cost more than the walk itself.
fn scan_json(dirs: &[Vec<u8>], entries: &[build_ctx::ScanEntry], index: &StatIndexRows) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 + entries.len() * 200);
    let mut key = String::new();
    out.push('[');
    let mut at = 0;
    for (i, dir) in dirs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        let mut first = true;
        while at < entries.len() && entries[at].dir as usize == i {
            let e = &entries[at];
            at += 1;
            if !first {
                out.push(',');
            }
            first = false;
            let rel = if dir.is_empty() { e.name.clone() } else { [&dir[..], b"/", &e.name[..]].concat() };
            out.push_str("{\"rel\":");
            push_wire(&mut out, &rel);
            let (mtime, ctime) = (e.mtime_ns, e.ctime_ns);
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                ",\"mode\":{},\"uid\":{},\"gid\":{},\"size\":{},\"dev\":{},\"ino\":{},\"nlink\":{},\"mtimeNs\":\"{mtime}\",\"ctimeNs\":\"{ctime}\"",
                e.mode, e.uid, e.gid, e.size, e.dev, e.ino, e.nlink
            );
            key.clear();
            build_ctx::write_stat_key(&mut key, e.dev, e.ino, e.size, mtime, ctime, e.mode);
            // A regular file the index has a digest for under this very stat key: the digest
            // instead of the key (nothing on the JS side then needs the one or the index).
            match index.lookup(&rel, &key).filter(|_| e.mode & 0o170000 == 0o100000) {
                Some(sha) => {
                    out.push_str(",\"sha256\":\"");
                    out.push_str(sha);
                    out.push('"');
                }
                None => {
                    out.push_str(",\"statKey\":\"");
                    out.push_str(&key);
                    out.push('"');
                }
            }
            if let Some(link) = &e.link {
                out.push_str(",\"link\":");
                push_wire(&mut out, link);
            }
            if !e.xattrs.is_empty() {
                use base64::Engine;
                out.push_str(",\"xattrs\":[");
                for (j, (k, v)) in e.xattrs.iter().enumerate() {
                    out.push_str(if j > 0 { ",[" } else { "[" });
                    push_wire(&mut out, k);
                    out.push_str(",\"");
                    out.push_str(&base64::engine::general_purpose::STANDARD.encode(v));
                    out.push_str("\"]");
                }
                out.push(']');
            }
            out.push('}');
        }
        out.push(']');
    }
    out.push(']');
    out
}

impl crate::NativeTask for ScanDirs {
    type Output = String;
    type JsValue = String;
    fn compute(&mut self) -> Outcome<String> {
        let entries = build_ctx::scan_dirs(&self.root, &self.dirs)?;
        let index = match &self.index {
            Some(file) => build_statindex::load(file, &self.root.to_string_lossy()),
            None => Default::default(),
        };
        Ok(scan_json(&self.dirs, &entries, &index))
    }
    fn resolve(&mut self, _: Env, out: String) -> Result<Self::JsValue> {
        Ok(out)
    }
}

/// Lists `dirs` (relative to `root` as bytes, empty = the root) one level each, as a JSON array
/// holding, for each of `dirs` in order, the array of its entries sorted by name (byte-wise):
/// `{"rel", "mode", "uid", "gid", "size", "dev", "ino", "nlink", "mtimeNs", "ctimeNs", "statKey"
/// | "sha256", "link"?, "xattrs"?}`. `rel` is the entry's path below `root` (`dir/name`), `link` a
/// symlink's target — each a string, or `{"b": base64}` when its bytes are not UTF-8
/// (ts/internal/bytepath.ts) —, times in ns as decimal strings, `statKey` the fields the stat
/// index keys on as one string, `"dev:ino:size:mtimeNs:ctimeNs:mode"` (ts/build/statindex.ts),
/// `xattrs` (absent: none) sorted `[name, base64 value]` pairs. With `index` (a stat index file
/// of the context `root`, `strata_core::build_statindex`), a regular file that it records under
/// its stat key now has `sha256` (the recorded digest) in place of `statKey`. A directory that
/// vanished lists as empty.
#[napi(ts_return_type = "Promise<string>")]
pub fn scan_dirs(root: String, dirs: Vec<Buffer>, index: Option<String>) -> AsyncTask<crate::error::Job<ScanDirs>> {
    crate::job(ScanDirs {
        root: root.into(),
        dirs: dirs.into_iter().map(|b| b.to_vec()).collect(),
        index: index.map(PathBuf::from),
    })
}

/// Records the rows a build hashed in the stat index file `index` of the context `root`
/// (`strata_core::build_statindex::update`), on a pool thread: `rels[i]` gets `keys[i]`,
/// `shas[i]` (its stat key and digest), or loses its row when `keys[i]` is empty. Written through
/// `tmp` when the result has `expectRows` rows ("written"), left alone when nothing changed
/// ("same"); "declined" (nothing written) when the count differs: the index has rows the caller
/// did not account for.
#[napi(ts_return_type = "Promise<'same' | 'written' | 'declined'>")]
pub fn stat_index_update(
    root: String,
    index: String,
    tmp: String,
    rels: Vec<Buffer>,
    keys: Vec<String>,
    shas: Vec<String>,
    expect_rows: u32,
) -> BlockingTask<String> {
    let rels: Vec<Vec<u8>> = rels.into_iter().map(|b| b.to_vec()).collect();
    crate::blocking(move || {
        if rels.len() != keys.len() || rels.len() != shas.len() {
            let msg = "statIndexUpdate: rels, keys and shas differ in length";
            return Err(crate::Failure::new(ErrorCode::InvalidArgument, msg));
        }
        let changes = rels
            .into_iter()
            .zip(keys.into_iter().zip(shas))
            .map(|(rel, (key, sha))| (rel, if key.is_empty() { None } else { Some((key, sha)) }))
            .collect();
        let updated = build_statindex::update(Path::new(&index), &root, Path::new(&tmp), changes, expect_rows as usize)?;
        Ok(match updated {
            build_statindex::Updated::Same => "same".to_string(),
            build_statindex::Updated::Written => "written".to_string(),
            build_statindex::Updated::Declined => "declined".to_string(),
        })
    })
}

/// What `hashFiles` found.
#[napi(object)]
pub struct NativeHashed {
    /// `sha256:<hex>` of each file, in order.
    pub digests: Vec<String>,
    pub bytes_read: f64,
}

impl From<build_ctx::Hashed> for NativeHashed {
    fn from(out: build_ctx::Hashed) -> Self {
        NativeHashed { digests: out.digests.iter().map(|d| d.to_string()).collect(), bytes_read: out.bytes_read as f64 }
    }
}

/// sha256 of files below `root` (relative paths as bytes, never through a symlink), on a few threads.
#[napi(ts_return_type = "Promise<NativeHashed>")]
pub fn hash_files(
    root: String,
    files: Vec<Buffer>,
    cancel: Option<&NativeCancel>,
) -> BlockingTask<build_ctx::Hashed, NativeHashed> {
    let files: Vec<Vec<u8>> = files.into_iter().map(|b| b.to_vec()).collect();
    let cancel = flag(cancel);
    crate::blocking(move || build_ctx::hash_files(Path::new(&root), &files, &cancel))
}

/// One COPY step as ts/build/copy.ts writes it (JSON): `op` is `mkdirs` | `dir` | `file` |
/// `symlink` | `hardlink` | `dirTimes`; paths of the destination are absolute in its rootfs,
/// `src` relative to the source root; `mtime` in ns as a decimal string.
/// Paths are strings or `{"b": base64}` (ts/internal/bytepath.ts); `xattrs` are `[name, base64 value]`
/// pairs set on the new file, directory or symlink.
#[derive(serde::Deserialize)]
struct CopyStep {
    op: String,
    dst: WirePath,
    src: Option<WirePath>,
    target: Option<WirePath>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: Option<String>,
    expect: Option<String>,
    /// `file`: the stat key under which `expect` is known to be the content (`CopyOp::File`).
    verified: Option<String>,
    xattrs: Option<Vec<(WirePath, String)>>,
    /// `file`: try a hard link from the reuse root first (see `copyIn`).
    #[serde(default)]
    reuse: bool,
}

fn convert(s: CopyStep) -> Outcome<CopyOp> {
    use base64::Engine;
    let bad = |m: String| crate::Failure::new(ErrorCode::InvalidArgument, format!("copyIn: {m}"));
    let mtime_ns = s.mtime.as_deref().unwrap_or("0").parse::<i64>().map_err(|e| bad(format!("mtime: {e}")))?;
    let (mode, uid, gid) = (s.mode.unwrap_or(0o755), s.uid.unwrap_or(0), s.gid.unwrap_or(0));
    let need = |v: Option<WirePath>, what: &str| -> Outcome<Vec<u8>> {
        wire(v.ok_or_else(|| bad(format!("{} needs {what}", s.op)))?)
    };
    let mut xattrs = Vec::new();
    for (k, v) in s.xattrs.clone().unwrap_or_default() {
        let value =
            base64::engine::general_purpose::STANDARD.decode(v).map_err(|e| bad(format!("xattr value: {e}")))?;
        xattrs.push((wire(k)?, value));
    }
    let dst = wire(s.dst.clone())?;
    Ok(match s.op.as_str() {
        "mkdirs" => CopyOp::Mkdirs { dst, mode, uid, gid },
        "dir" => CopyOp::Dir { dst, mode, uid, gid, mtime_ns, xattrs },
        "file" => CopyOp::File {
            src: need(s.src.clone(), "src")?,
            dst,
            mode,
            uid,
            gid,
            mtime_ns,
            expect: s.expect.as_deref().map(Digest::parse).transpose()?,
            verified: s.verified.clone(),
            xattrs,
            reuse: s.reuse,
        },
        "symlink" => CopyOp::Symlink { dst, target: need(s.target.clone(), "target")?, uid, gid, mtime_ns, xattrs },
        "hardlink" => CopyOp::Hardlink { dst, to: need(s.target.clone(), "target")? },
        "dirTimes" => CopyOp::DirTimes { dst, mtime_ns },
        other => return Err(bad(format!("unknown step {other:?}"))),
    })
}

/// What `copyIn` did.
#[napi(object)]
pub struct NativeCopied {
    pub files: f64,
    pub bytes: f64,
    /// Files whose unchanged stat key vouched for their content (not hashed again).
    pub verified: f64,
}

pub struct CopyIn {
    src: PathBuf,
    dst: PathBuf,
    reuse: Option<PathBuf>,
    ops: Vec<CopyOp>,
    cancel: Arc<AtomicBool>,
}

impl crate::NativeTask for CopyIn {
    type Output = build_ctx::Copied;
    type JsValue = NativeCopied;
    fn compute(&mut self) -> Outcome<Self::Output> {
        Ok(build_ctx::copy_in_reusing(&self.src, &self.dst, self.reuse.as_deref(), &self.ops, &self.cancel)?)
    }
    fn resolve(&mut self, _: Env, out: Self::Output) -> Result<NativeCopied> {
        Ok(NativeCopied { files: out.files as f64, bytes: out.bytes as f64, verified: out.verified as f64 })
    }
}

/// Carries out a COPY's steps (a JSON array) from `srcRoot` into the rootfs at `dstRoot`; `file`
/// steps marked `reuse` are hard-linked from the same path below `reuseRoot` when what is there
/// has their mode, owner and mtime (strata_core::build_ctx::copy_in_reusing).
#[napi(ts_return_type = "Promise<NativeCopied>")]
pub fn copy_in(
    env: Env,
    src_root: String,
    dst_root: String,
    steps_json: String,
    cancel: Option<&NativeCancel>,
    reuse_root: Option<String>,
) -> Result<AsyncTask<crate::error::Job<CopyIn>>> {
    let steps: Vec<CopyStep> = serde_json::from_str(&steps_json).map_err(|e| {
        crate::Failure::new(ErrorCode::InvalidArgument, format!("copyIn: bad steps: {e}")).into_js(&env)
    })?;
    let ops = steps.into_iter().map(convert).collect::<Outcome<Vec<_>>>().map_err(|e| e.into_js(&env))?;
    Ok(crate::job(CopyIn {
        src: src_root.into(),
        dst: dst_root.into(),
        reuse: reuse_root.map(PathBuf::from),
        ops,
        cancel: flag(cancel),
    }))
}

/// A path of a rootfs, as `statInRoot` found it.
#[napi(object)]
pub struct NativeRootStat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: f64,
}

/// `stat` of `path` inside the rootfs at `root` (symlinks followed inside it), or null. Synchronous:
/// one `openat2` + `fstat`.
#[napi]
pub fn stat_in_root(env: Env, root: String, path: String) -> Result<Option<NativeRootStat>> {
    Ok(build_ctx::stat_in_root(std::path::Path::new(&root), path.as_bytes())
        .map_err(crate::throw(&env))?
        .map(|s| NativeRootStat { mode: s.mode, uid: s.uid, gid: s.gid, size: s.size as f64 }))
}

/// The first `limit` bytes of a file inside the rootfs at `root`, or null. Synchronous (small files).
#[napi]
pub fn read_in_root(env: Env, root: String, path: String, limit: u32) -> Result<Option<Buffer>> {
    Ok(build_ctx::read_in_root(std::path::Path::new(&root), path.as_bytes(), limit as u64)
        .map_err(crate::throw(&env))?
        .map(Buffer::from))
}

/// Whether ADD unpacks the file at `path` (a tar: plain, gzip, bzip2 or xz — what Docker
/// 20.10's builder unpacks).
#[napi(ts_return_type = "Promise<boolean>")]
pub fn is_archive(path: String) -> BlockingTask<bool> {
    crate::blocking(move || build_add::is_archive(Path::new(&path)))
}

/// ADD of a local archive: unpacks the tar at `path` (plain, gzip, bzip2 or xz) into `dest`
/// (made; must not exist), its tar-split to `tarSplit`.
#[napi(ts_return_type = "Promise<void>")]
pub fn unpack_archive(
    path: String,
    dest: String,
    tar_split: String,
    cancel: Option<&NativeCancel>,
) -> BlockingTask<()> {
    let cancel = flag(cancel);
    crate::blocking(move || {
        build_add::unpack(Path::new(&path), Path::new(&dest), Path::new(&tar_split), &cancel).map(|_| ())
    })
}

/// What `sealLayer` found.
#[napi(object)]
pub struct NativeSealed {
    pub diff_id: String,
    pub size: f64,
    pub tar_size: f64,
    pub entries: f64,
}

impl From<build_commit::Sealed> for NativeSealed {
    fn from(out: build_commit::Sealed) -> Self {
        NativeSealed {
            diff_id: out.diff_id.to_string(),
            size: out.size as f64,
            tar_size: out.tar_size as f64,
            entries: out.entries as f64,
        }
    }
}

/// Commit by rename: describes the layer whose files are in `diff` (a build step's unmounted
/// upper dir, already in its final place) — DiffID, size, tar-split written to `tarSplit` (not
/// fsynced: registering the layer does) — in one walk that also drops overlay's bookkeeping xattrs.
#[napi(ts_return_type = "Promise<NativeSealed>")]
pub fn seal_layer(
    diff: String,
    tar_split: String,
    cancel: Option<&NativeCancel>,
) -> BlockingTask<build_commit::Sealed, NativeSealed> {
    let cancel = flag(cancel);
    crate::blocking(move || build_commit::seal_layer(Path::new(&diff), Path::new(&tar_split), &cancel))
}
