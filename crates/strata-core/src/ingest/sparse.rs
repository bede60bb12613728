//! GNU sparse files in PAX form, read as Go's `archive/tar` reads them (Docker's extractor), so
//! a layer holding one extracts to the file Docker makes of it.
//!
//! `tar --sparse --format=posix` (GNU tar) stores a sparse file as a regular entry whose body
//! holds only the data fragments, and describes the file in PAX records:
//!
//! * 0.0: `GNU.sparse.size`, `GNU.sparse.numblocks`, then `GNU.sparse.offset` /
//!   `GNU.sparse.numbytes` pairs (the same two keys repeated, in that order);
//! * 0.1: `GNU.sparse.size`, `GNU.sparse.numblocks`, `GNU.sparse.map` = `off,len,off,len,…` and
//!   `GNU.sparse.name` (the real name: the header says `./GNUSparseFile.PID/NAME`);
//! * 1.0: `GNU.sparse.major=1`, `GNU.sparse.minor=0`, `GNU.sparse.name`, `GNU.sparse.realsize`;
//!   the map opens the body: decimal numbers one per line (the count, then offset and length
//!   of each fragment), NUL-padded to a 512-byte boundary, then the fragments.
//!
//! Go's rules, kept here: the version is 0.x for major 0 / minor 0 or 1 (or, without version
//! records, when a map is present), 1.0 for 1/0; any other version means "not sparse" (a plain
//! file with the raw body and the header's name). `GNU.sparse.name` replaces the name,
//! `GNU.sparse.size` (else `realsize`) the size. Fragments must be in order, not overlap, not be
//! negative and end within the size; the body must hold exactly the fragments' bytes (fewer:
//! "references non-existent data", more: "contains unreferenced data"). Anything else is a
//! broken header (`CorruptArchive`).
//!
//! The old GNU form (type `S` headers) is not read: Docker's extractor refuses it ("unhandled
//! tar header type 83"), and so does strata (`UnsupportedArchive`).
use std::io;

/// A 1.0 map longer than this is refused (Go buffers the whole map; so would we).
pub const MAX_MAP_1X0: usize = 16 << 20;
const BLOCK: usize = 512;

/// One data fragment of a sparse file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    pub offset: u64,
    pub length: u64,
}

/// The `GNU.sparse.*` PAX records of one entry, as they come.
#[derive(Default, Debug)]
pub struct SparseRecords {
    major: Option<Vec<u8>>,
    minor: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    size: Option<Vec<u8>>,
    realsize: Option<Vec<u8>>,
    map: Option<Vec<u8>>,
    numblocks: Option<Vec<u8>>,
    /// 0.0's offset/numbytes values, alternating (what Go folds into `GNU.sparse.map`).
    pairs: Vec<Vec<u8>>,
}

/// How a sparse entry is laid out.
#[derive(Debug, PartialEq, Eq)]
pub enum Layout {
    /// 0.0 / 0.1: the map came in the PAX records.
    Records(Vec<Fragment>),
    /// 1.0: the map opens the body.
    InBody,
}

/// A sparse entry, resolved from its records.
#[derive(Debug, PartialEq, Eq)]
pub struct Sparse {
    /// `GNU.sparse.name` when present and not empty.
    pub name: Option<Vec<u8>>,
    /// The file's real size (`GNU.sparse.size` or `realsize`); None keeps the header's.
    pub size: Option<u64>,
    pub layout: Layout,
}

impl SparseRecords {
    /// Takes one PAX record if it is a `GNU.sparse.*` key this module reads; returns whether
    /// it did. Keys that may repeat (0.0's offset/numbytes) are checked for order here.
    pub fn record(&mut self, key: &[u8], value: &[u8]) -> Result<bool, &'static str> {
        let slot = match key {
            b"GNU.sparse.major" => &mut self.major,
            b"GNU.sparse.minor" => &mut self.minor,
            b"GNU.sparse.name" => &mut self.name,
            b"GNU.sparse.size" => &mut self.size,
            b"GNU.sparse.realsize" => &mut self.realsize,
            b"GNU.sparse.map" => &mut self.map,
            b"GNU.sparse.numblocks" => &mut self.numblocks,
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let want_offset = self.pairs.len().is_multiple_of(2);
                if want_offset != (key == b"GNU.sparse.offset") || value.contains(&b',') {
                    return Err("GNU.sparse.offset/numbytes records out of order");
                }
                self.pairs.push(value.to_vec());
                return Ok(true);
            }
            _ => return Ok(false),
        };
        *slot = Some(value.to_vec());
        Ok(true)
    }

    /// Whether the entry is sparse, and how (see the module docs for Go's rules).
    pub fn resolve(&self) -> Result<Option<Sparse>, &'static str> {
        let map: Option<Vec<u8>> =
            if !self.pairs.is_empty() { Some(self.pairs.join(&b","[..])) } else { self.map.clone() };
        let (major, minor) = (self.major.as_deref().unwrap_or(b""), self.minor.as_deref().unwrap_or(b""));
        let v1 = match (major, minor) {
            (b"0", b"0" | b"1") => false,
            (b"1", b"0") => true,
            (b"", b"") if map.as_deref().is_some_and(|m| !m.is_empty()) => false,
            _ => return Ok(None),
        };
        let size =
            match self.size.as_deref().filter(|s| !s.is_empty()).or(self.realsize.as_deref().filter(|s| !s.is_empty()))
            {
                Some(s) => Some(parse_u64(s).ok_or("bad GNU.sparse size")?),
                None => None,
            };
        let layout = if v1 {
            Layout::InBody
        } else {
            let n = self.numblocks.as_deref().and_then(parse_u64).ok_or("bad GNU.sparse.numblocks")?;
            let m = map.unwrap_or_default();
            let fields: Vec<&[u8]> = if m.is_empty() { Vec::new() } else { m.split(|&b| b == b',').collect() };
            if fields.len() as u64 != n.saturating_mul(2) {
                return Err("GNU.sparse.map does not hold numblocks entries");
            }
            Layout::Records(pairs_of(&fields)?)
        };
        Ok(Some(Sparse { name: self.name.clone().filter(|n| !n.is_empty()), size, layout }))
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)` for values that must not be negative.
fn parse_i64(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse::<i64>().ok()
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    parse_i64(s).and_then(|v| u64::try_from(v).ok())
}

fn pairs_of(fields: &[&[u8]]) -> Result<Vec<Fragment>, &'static str> {
    let mut out = Vec::with_capacity(fields.len() / 2);
    for p in fields.chunks_exact(2) {
        let (o, l) = (parse_i64(p[0]).ok_or("bad sparse offset")?, parse_i64(p[1]).ok_or("bad sparse length")?);
        if o < 0 || l < 0 {
            return Err("negative sparse offset or length");
        }
        out.push(Fragment { offset: o as u64, length: l as u64 });
    }
    Ok(out)
}

/// Go's `validateSparseEntries`: in order, not overlapping, within `size`.
pub fn validate(map: &[Fragment], size: u64) -> Result<(), &'static str> {
    let mut end = 0u64;
    for f in map {
        let fend =
            f.offset.checked_add(f.length).filter(|&e| e <= i64::MAX as u64).ok_or("sparse fragment overflows")?;
        if fend > size {
            return Err("sparse fragment ends past the file's size");
        }
        if end > f.offset {
            return Err("sparse fragments overlap or are out of order");
        }
        end = fend;
    }
    Ok(())
}

/// Reads a 1.0 map from the start of a body, a 512-byte block at a time (as Go: whole blocks,
/// until enough newlines are buffered). Returns the map and the bytes of body it took.
pub fn read_map_1x0(
    mut next_block: impl FnMut(&mut [u8; BLOCK]) -> io::Result<()>,
) -> io::Result<(Vec<Fragment>, u64)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut text: Vec<u8> = Vec::new();
    let mut newlines = 0usize;
    let mut taken = 0u64;
    let mut feed = |want: usize, text: &mut Vec<u8>, newlines: &mut usize, taken: &mut u64| -> io::Result<()> {
        while *newlines < want {
            if text.len() + BLOCK > MAX_MAP_1X0 {
                return Err(io::Error::new(io::ErrorKind::Unsupported, format!("sparse map over {MAX_MAP_1X0} bytes")));
            }
            let mut blk = [0u8; BLOCK];
            next_block(&mut blk)?;
            *taken += BLOCK as u64;
            *newlines += blk.iter().filter(|&&b| b == b'\n').count();
            text.extend_from_slice(&blk);
        }
        Ok(())
    };
    feed(1, &mut text, &mut newlines, &mut taken)?;
    let mut tokens = Tokens { text: &text, at: 0 };
    let count = tokens.next().and_then(parse_i64).filter(|&n| n >= 0).ok_or_else(|| bad("bad sparse map count"))?;
    let count = usize::try_from(count).map_err(|_| bad("bad sparse map count"))?;
    let need = count.checked_mul(2).and_then(|n| n.checked_add(1)).ok_or_else(|| bad("bad sparse map count"))?;
    let at = tokens.at;
    feed(need, &mut text, &mut newlines, &mut taken)?;
    let mut tokens = Tokens { text: &text, at };
    let mut fields: Vec<&[u8]> = Vec::new();
    for _ in 0..count * 2 {
        fields.push(tokens.next().ok_or_else(|| bad("short sparse map"))?);
    }
    let map = pairs_of(&fields).map_err(bad)?;
    Ok((map, taken))
}

/// Newline-terminated tokens of a buffer.
struct Tokens<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.text[self.at..];
        let nl = rest.iter().position(|&b| b == b'\n')?;
        self.at += nl + 1;
        Some(&rest[..nl])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(pairs: &[(&str, &str)]) -> Result<Option<Sparse>, &'static str> {
        let mut r = SparseRecords::default();
        for (k, v) in pairs {
            assert!(r.record(k.as_bytes(), v.as_bytes())?);
        }
        r.resolve()
    }

    #[test]
    fn versions_as_go_reads_them() {
        let v01 = recs(&[
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.map", "0,5,10,0"),
            ("GNU.sparse.name", "real"),
            ("GNU.sparse.size", "10"),
        ]);
        assert_eq!(
            v01.unwrap().unwrap(),
            Sparse {
                name: Some(b"real".to_vec()),
                size: Some(10),
                layout: Layout::Records(vec![Fragment { offset: 0, length: 5 }, Fragment { offset: 10, length: 0 }])
            }
        );
        let v00 = recs(&[
            ("GNU.sparse.size", "7"),
            ("GNU.sparse.numblocks", "1"),
            ("GNU.sparse.offset", "3"),
            ("GNU.sparse.numbytes", "4"),
        ]);
        assert_eq!(v00.unwrap().unwrap().layout, Layout::Records(vec![Fragment { offset: 3, length: 4 }]));
        let v10 = recs(&[("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.realsize", "9")]);
        assert_eq!(v10.unwrap().unwrap(), Sparse { name: None, size: Some(9), layout: Layout::InBody });
        // An unknown version is not sparse at all; nor is a name alone.
        assert_eq!(recs(&[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")]).unwrap(), None);
        assert_eq!(recs(&[("GNU.sparse.name", "x")]).unwrap(), None);
        // Broken ones.
        assert!(recs(&[("GNU.sparse.numblocks", "2"), ("GNU.sparse.map", "0,5")]).is_err());
        assert!(recs(&[("GNU.sparse.numblocks", "1"), ("GNU.sparse.map", "0,-5")]).is_err());
        assert!(recs(&[("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.realsize", "x")]).is_err());
        let mut r = SparseRecords::default();
        assert!(r.record(b"GNU.sparse.numbytes", b"1").is_err());
        assert!(!r.record(b"GNU.sparse.other", b"1").unwrap());
    }

    #[test]
    fn fragments_are_validated() {
        let f = |o, l| Fragment { offset: o, length: l };
        assert!(validate(&[f(0, 4), f(4, 4), f(8, 0)], 8).is_ok());
        assert!(validate(&[f(0, 4), f(3, 1)], 8).is_err());
        assert!(validate(&[f(0, 9)], 8).is_err());
        assert!(validate(&[f(u64::MAX - 1, 4)], u64::MAX).is_err());
    }

    #[test]
    fn maps_in_the_body() {
        let mut body = b"2\n0\n4096\n1048576\n0\n".to_vec();
        body.resize(1024, 0);
        let mut at = 0;
        let (map, taken) = read_map_1x0(|b| {
            b.copy_from_slice(&body[at..at + BLOCK]);
            at += BLOCK;
            Ok(())
        })
        .unwrap();
        assert_eq!(map, vec![Fragment { offset: 0, length: 4096 }, Fragment { offset: 1048576, length: 0 }]);
        assert_eq!(taken, 512);
        // A map across two blocks.
        let mut body = b"3\n".to_vec();
        body.resize(510, b'0');
        body.extend_from_slice(b"\n1\n2\n3\n4\n5\n");
        body.resize(1024, 0);
        let mut at = 0;
        let (map, taken) = read_map_1x0(|b| {
            b.copy_from_slice(&body[at..at + BLOCK]);
            at += BLOCK;
            Ok(())
        })
        .unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(taken, 1024);
        let short = read_map_1x0(|_| Err(io::ErrorKind::UnexpectedEof.into()));
        assert!(short.is_err());
    }
}
