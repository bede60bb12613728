//! Tar headers as Go's `archive/tar` writes them (`strata_core::egress::layertar::encode_header`), for
//! tar streams the TS side assembles itself (`docker cp` archives).
use napi::bindgen_prelude::*;
use napi_derive::napi;
use strata_core::egress::layertar::{encode_header, Entry};
use strata_core::error::ErrorCode;

/// One entry's metadata; `kind` is the typeflag character (`"0"`, `"2"`, `"5"`, ...).
#[napi(object)]
pub struct NativeTarHeader {
    pub name: String,
    pub kind: String,
    pub mode: u32,
    pub uid: f64,
    pub gid: f64,
    pub mtime: f64,
    pub size: f64,
    pub linkname: String,
    pub devmajor: u32,
    pub devminor: u32,
    pub uname: String,
    pub gname: String,
    /// `[name, value]` pairs, written as `SCHILY.xattr.<name>` PAX records.
    pub xattrs: Vec<NativeTarXattr>,
}

#[napi(object)]
pub struct NativeTarXattr {
    pub name: String,
    pub value: Buffer,
}

/// The header block(s) of one entry (a PAX header first when USTAR cannot hold a field).
#[napi]
pub fn tar_header(env: Env, h: NativeTarHeader) -> Result<Buffer> {
    let kind = *h
        .kind
        .as_bytes()
        .first()
        .ok_or_else(|| crate::Failure::new(ErrorCode::InvalidArgument, "empty tar typeflag").into_js(&env))?;
    let e = Entry {
        name: h.name.into_bytes(),
        kind,
        mode: h.mode,
        uid: h.uid as u64,
        gid: h.gid as u64,
        mtime: h.mtime as i64,
        size: h.size as u64,
        link: h.linkname.into_bytes(),
        devmajor: h.devmajor,
        devminor: h.devminor,
        xattrs: h.xattrs.into_iter().map(|x| (x.name.into_bytes(), x.value.to_vec())).collect(),
        uname: h.uname.into_bytes(),
        gname: h.gname.into_bytes(),
    };
    Ok(encode_header(&e).into())
}
