//! `NativeUnionView`: the userspace union view, every call an `AsyncTask` on the libuv pool.
//! Only conversions live here; semantics are in `strata_core::union`.
#![cfg_attr(test, allow(dead_code))]
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use strata_core::union::{CreateKind, Stat, UnionError, UnionView};

/// The `AsyncTask` of a view operation.
pub type ViewTask<T> = crate::BlockingTask<T>;

fn job<T: Send + ToNapiValue + TypeName + 'static>(
    f: impl FnOnce() -> std::result::Result<T, UnionError> + Send + 'static,
) -> ViewTask<T> {
    crate::blocking(f)
}

/// Metadata of a view object (numbers as Node's `fs.Stats` has them; exact ns as bigint).
#[napi(object)]
pub struct NativeUnionStat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: f64,
    pub nlink: f64,
    pub ino: f64,
    pub dev: f64,
    pub rdev: f64,
    pub blksize: f64,
    pub blocks: f64,
    pub atime_ms: f64,
    pub mtime_ms: f64,
    pub ctime_ms: f64,
    pub atime_ns: BigInt,
    pub mtime_ns: BigInt,
    pub ctime_ns: BigInt,
    /// Layer index the metadata comes from (0 = top: the upper if the view is writable).
    pub layer: u32,
}

fn big(v: i128) -> BigInt {
    BigInt::from(v)
}

impl From<Stat> for NativeUnionStat {
    fn from(s: Stat) -> Self {
        NativeUnionStat {
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.size as f64,
            nlink: s.nlink as f64,
            ino: s.ino as f64,
            dev: s.dev as f64,
            rdev: s.rdev as f64,
            blksize: s.blksize as f64,
            blocks: s.blocks as f64,
            atime_ms: s.atime_ns as f64 / 1e6,
            mtime_ms: s.mtime_ns as f64 / 1e6,
            ctime_ms: s.ctime_ns as f64 / 1e6,
            atime_ns: big(s.atime_ns),
            mtime_ns: big(s.mtime_ns),
            ctime_ns: big(s.ctime_ns),
            layer: s.layer,
        }
    }
}

/// A merged directory entry: `kind` is `file`, `dir`, `symlink`, `fifo`, `socket`, `char`, `block`.
#[napi(object)]
pub struct NativeUnionDirent {
    pub name: String,
    pub kind: String,
}

#[napi(object)]
pub struct NativeUnionXattr {
    pub name: String,
    pub value: Buffer,
}

#[napi]
pub struct NativeUnionView {
    inner: Arc<UnionView>,
}

fn ms_to_ns(ms: f64) -> i128 {
    (ms * 1e6).round() as i128
}

#[napi]
impl NativeUnionView {
    /// Opens a view over `lowers` (top first) and an optional writable `upper`.
    #[napi(factory)]
    pub fn open(env: Env, lowers: Vec<String>, upper: Option<String>, work: Option<String>) -> Result<Self> {
        let lowers: Vec<PathBuf> = lowers.into_iter().map(PathBuf::from).collect();
        let v = UnionView::open(&lowers, upper.as_deref().map(Path::new), work.as_deref().map(Path::new))
            .map_err(crate::throw(&env))?;
        Ok(NativeUnionView { inner: Arc::new(v) })
    }

    #[napi(getter)]
    pub fn writable(&self) -> bool {
        self.inner.writable()
    }

    #[napi(getter)]
    pub fn depth(&self) -> u32 {
        self.inner.depth() as u32
    }

    /// Drops cached lookups (after a kernel mount changed the upper behind the view).
    #[napi]
    pub fn invalidate(&self) {
        self.inner.invalidate()
    }

    #[napi(ts_return_type = "Promise<NativeUnionStat>")]
    pub fn stat(&self, path: String, follow: bool) -> ViewTask<NativeUnionStat> {
        let v = self.inner.clone();
        job(move || if follow { v.stat(&path) } else { v.lstat(&path) }.map(Into::into))
    }

    #[napi(ts_return_type = "Promise<string>")]
    pub fn readlink(&self, path: String) -> ViewTask<String> {
        let v = self.inner.clone();
        job(move || v.readlink(&path))
    }

    #[napi(ts_return_type = "Promise<NativeUnionDirent[]>")]
    pub fn readdir(&self, path: String) -> ViewTask<Vec<NativeUnionDirent>> {
        let v = self.inner.clone();
        job(move || {
            v.readdir(&path).map(|es| {
                es.into_iter().map(|e| NativeUnionDirent { name: e.name, kind: e.kind.as_str().to_string() }).collect()
            })
        })
    }

    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn read_file(&self, path: String) -> ViewTask<Buffer> {
        let v = self.inner.clone();
        job(move || v.read_file(&path).map(Buffer::from))
    }

    /// Opens the file in the layer holding it; the caller owns the returned fd.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn open_read(&self, path: String) -> ViewTask<i32> {
        let v = self.inner.clone();
        job(move || v.open_read(&path).map(|fd| fd.into_raw_fd()))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn write_file(&self, path: String, data: Buffer, append: bool, mode: u32) -> ViewTask<()> {
        let v = self.inner.clone();
        let data: Vec<u8> = data.to_vec();
        job(move || v.write_file(&path, &data, append, mode))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn truncate(&self, path: String, len: f64) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.truncate(&path, len as u64))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn mkdir(&self, path: String, mode: u32, recursive: bool) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || if recursive { v.mkdir_all(&path, mode) } else { v.create(&path, &CreateKind::Dir { mode }) })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn symlink(&self, target: String, path: String) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.create(&path, &CreateKind::Symlink { target }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn mkfifo(&self, path: String, mode: u32) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.create(&path, &CreateKind::Fifo { mode }))
    }

    /// A character (`block` false) or block device.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn mknod(&self, path: String, block: bool, mode: u32, major: u32, minor: u32) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.create(&path, &CreateKind::Device { mode, block, major, minor }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn link(&self, existing: String, path: String) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.link(&existing, &path))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn unlink(&self, path: String) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.unlink(&path))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn rmdir(&self, path: String) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.rmdir(&path))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn rm(&self, path: String, recursive: bool, force: bool) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.rm(&path, recursive, force))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn rename(&self, from: String, to: String) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.rename(&from, &to))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn chmod(&self, path: String, mode: u32) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.chmod(&path, mode))
    }

    /// `uid`/`gid` of -1 leave that id unchanged.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn chown(&self, path: String, uid: i64, gid: i64, follow: bool) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.chown(&path, uid as u32, gid as u32, follow))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn utimes(&self, path: String, atime_ms: f64, mtime_ms: f64, follow: bool) -> ViewTask<()> {
        let v = self.inner.clone();
        job(move || v.utimes(&path, ms_to_ns(atime_ms), ms_to_ns(mtime_ms), follow))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn setxattr(&self, path: String, name: String, value: Buffer) -> ViewTask<()> {
        let v = self.inner.clone();
        let value = value.to_vec();
        job(move || v.setxattr(&path, &name, &value))
    }

    #[napi(ts_return_type = "Promise<NativeUnionXattr[]>")]
    pub fn xattrs(&self, path: String) -> ViewTask<Vec<NativeUnionXattr>> {
        let v = self.inner.clone();
        job(move || {
            v.xattrs(&path)
                .map(|xs| xs.into_iter().map(|(name, value)| NativeUnionXattr { name, value: value.into() }).collect())
        })
    }
}
