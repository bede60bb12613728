//! Test support: a raw tar writer that builds exactly the bytes a test wants (including
//! the hostile ones `tar::Builder` refuses), and helpers to apply a blob.
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use strata_core::ingest::layer::{apply_layer, ApplyRequest, ApplyResult, BlobSource, LayerError};

/// Header fields of one raw entry.
#[derive(Clone)]
pub struct H {
    pub name: Vec<u8>,
    pub kind: u8,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub link: Vec<u8>,
    pub major: u32,
    pub minor: u32,
}

impl H {
    pub fn new(name: impl AsRef<[u8]>, kind: u8) -> H {
        H {
            name: name.as_ref().to_vec(),
            kind,
            size: 0,
            mode: if kind == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: vec![],
            major: 0,
            minor: 0,
        }
    }
    pub fn mode(mut self, m: u32) -> H {
        self.mode = m;
        self
    }
    pub fn owner(mut self, uid: u32, gid: u32) -> H {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, t: u64) -> H {
        self.mtime = t;
        self
    }
    pub fn link(mut self, l: impl AsRef<[u8]>) -> H {
        self.link = l.as_ref().to_vec();
        self
    }
    pub fn dev(mut self, major: u32, minor: u32) -> H {
        self.major = major;
        self.minor = minor;
        self
    }
    pub fn size(mut self, s: u64) -> H {
        self.size = s;
        self
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

/// One ustar header block; names longer than 100 bytes are truncated (use PAX/GNU for them).
pub fn header(h: &H) -> [u8; 512] {
    let mut b = [0u8; 512];
    let n = h.name.len().min(100);
    b[..n].copy_from_slice(&h.name[..n]);
    octal(&mut b[100..108], h.mode as u64);
    octal(&mut b[108..116], h.uid as u64);
    octal(&mut b[116..124], h.gid as u64);
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime);
    b[156] = h.kind;
    let l = h.link.len().min(100);
    b[157..157 + l].copy_from_slice(&h.link[..l]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[265..269].copy_from_slice(b"root");
    b[297..301].copy_from_slice(b"root");
    octal(&mut b[329..337], h.major as u64);
    octal(&mut b[337..345], h.minor as u64);
    set_checksum(&mut b);
    b
}

pub fn set_checksum(b: &mut [u8; 512]) {
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| x as u32).sum();
    let s = format!("{:06o}\0 ", sum);
    b[148..156].copy_from_slice(s.as_bytes());
}

/// PAX record `len key=value\n` (len counts itself).
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while (body + len.to_string().len()) != len {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Builds a tar byte by byte.
#[derive(Default, Clone)]
pub struct Tar {
    pub buf: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }
    fn pad(&mut self) {
        let r = self.buf.len() % 512;
        if r != 0 {
            self.buf.extend(std::iter::repeat_n(0u8, 512 - r));
        }
    }
    /// A header and `data` (size field set from data unless `h.size` is already non-zero).
    pub fn entry(&mut self, mut h: H, data: &[u8]) -> &mut Tar {
        if h.size == 0 {
            h.size = data.len() as u64;
        }
        self.buf.extend_from_slice(&header(&h));
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }
    pub fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut Tar {
        self.entry(H::new(name, b'0'), data)
    }
    pub fn dir(&mut self, name: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(H::new(name, b'5'), b"")
    }
    pub fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(H::new(name, b'2').link(target).mode(0o777), b"")
    }
    pub fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut Tar {
        self.entry(H::new(name, b'1').link(target), b"")
    }
    /// A PAX `x` header with `records` for the next entry.
    pub fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut Tar {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        self.entry(H::new("PaxHeaders.0/x", b'x'), &data)
    }
    /// A GNU `L` long-name header for the next entry.
    pub fn gnu_longname(&mut self, name: &[u8]) -> &mut Tar {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(H::new("././@LongLink", b'L'), &data)
    }
    /// A GNU `K` long-link header for the next entry.
    pub fn gnu_longlink(&mut self, name: &[u8]) -> &mut Tar {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(H::new("././@LongLink", b'K'), &data)
    }
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Tar {
        self.buf.extend_from_slice(bytes);
        self
    }
    /// Two zero blocks.
    pub fn finish(&mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf.clone()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A scratch area: `blob`, `layer/diff`, `layer/tar-split.json.gz`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("layer")).unwrap();
        Scratch { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn dest(&self) -> PathBuf {
        self.path().join("layer/diff")
    }
    pub fn tar_split(&self) -> PathBuf {
        self.path().join("layer/tar-split.json.gz")
    }
    pub fn request(&self, blob: &[u8]) -> ApplyRequest {
        let p = self.path().join("blob");
        std::fs::write(&p, blob).unwrap();
        ApplyRequest {
            source: BlobSource { path: p, offset: 0, length: None },
            dest: self.dest(),
            tar_split: self.tar_split(),
            expected_diff_id: None,
            expected_digest: None,
        }
    }
    pub fn apply(&self, blob: &[u8]) -> Result<ApplyResult, LayerError> {
        apply_layer(&self.request(blob), &|_| {}, &AtomicBool::new(false))
    }
    /// As an archive rather than a layer (`apply_tar_stream`): a path named twice is allowed.
    pub fn apply_archive(&self, blob: &[u8]) -> Result<ApplyResult, LayerError> {
        strata_core::ingest::layer::apply_tar_stream(blob, &self.dest(), &self.tar_split(), &AtomicBool::new(false))
    }
    /// The same tar through `extract_tar_stream`, whose small files are written by worker
    /// threads (crate::ingest::extract::filepool), as commit writes them.
    pub fn apply_stream(&self, tar: &[u8]) -> Result<strata_core::ingest::layer::ExtractedTar, LayerError> {
        strata_core::ingest::layer::extract_tar_stream(tar, &self.dest(), &self.tar_split(), &AtomicBool::new(false))
    }
    /// A plain tar through [`Scratch::apply_stream`] (`workers`) or [`Scratch::apply`]: the
    /// layer's size.
    pub fn apply_either(&self, tar: &[u8], workers: bool) -> Result<u64, LayerError> {
        if workers {
            self.apply_stream(tar).map(|r| r.size)
        } else {
            self.apply(tar).map(|r| r.size)
        }
    }
    /// A tar that may name a path twice (an archive, not a layer: the later entry wins) through
    /// [`Scratch::apply_stream`] (`workers`) or [`Scratch::apply_archive`].
    pub fn apply_archive_either(&self, tar: &[u8], workers: bool) {
        if workers {
            self.apply_stream(tar).unwrap();
        } else {
            self.apply_archive(tar).unwrap();
        }
    }
}

/// A recursive snapshot of a tree (type, mode, owner, content/target, xattrs), for
/// "nothing changed outside the root" checks.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, u32, u32, u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let content = if md.file_type().is_symlink() {
            std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
        } else if md.is_file() {
            std::fs::read(&p).unwrap()
        } else {
            vec![]
        };
        out.push((p.clone(), md.mode(), md.uid(), md.gid(), content));
        if md.is_dir() {
            let mut kids: Vec<_> = std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()).collect();
            kids.sort();
            stack.extend(kids);
        }
    }
    out.sort();
    out
}

/// Reads an xattr of a path without following symlinks.
pub fn lgetxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}
