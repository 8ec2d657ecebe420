//! Parsing and writing the `.npy` header, over bytes only (no I/O).
//!
//! Format (numpy's `format.py`): the magic `\x93NUMPY`, a major and minor
//! version byte, a little-endian header length (u16 for version 1, u32 for
//! versions 2 and 3), then a Python dict literal with the keys `descr`,
//! `fortran_order` and `shape`, padded with spaces and a newline so that the
//! data starts on a multiple of 64 (16 in files from numpy before 1.14).
//!
//! Why not npyz: npyz reads through `io::Read` (the header, then the data
//! element by element), while npyflow parses the header from the mapped
//! bytes and views the data in place. Its errors are `io::Error` strings;
//! here each failure is a [`HeaderProblem`] that becomes an [`ErrorKind`]
//! naming the file and the value, and the size checks a mapped view relies
//! on are part of the parse. The parser accepts versions 1 to 3 and only the
//! dtypes npyflow handles, refusing the others by name, and is fuzzed
//! (`fuzz/fuzz_targets/header.rs`). docs/ARCHITECTURE.md has the details.

use std::path::Path;

use super::dtype::Dtype;
use crate::{Error, ErrorKind};

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Headers longer than this are rejected as hostile (numpy itself caps at 10 KB
/// when reading untrusted files; we allow more for very high-rank shapes).
const MAX_HEADER_LEN: usize = 1 << 20;

/// The most bytes [`parse_header`] ever reads: the longest preamble (12
/// bytes, versions 2 and 3) plus the longest header it accepts. A reader
/// that fetches only a prefix of the file must fetch at least this much.
pub(crate) const MAX_HEADER_BYTES: usize = 12 + MAX_HEADER_LEN;

/// Quoted header text longer than this is cut in messages: a hostile
/// header may hold a megabyte-long "dtype", and an error line must stay
/// readable in a training log.
const MAX_QUOTED: usize = 80;

/// `text`, cut to [`MAX_QUOTED`] characters with its full length said.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}... ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// What the header of a `.npy` file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version `(major, minor)`: (1,0), (2,0) or (3,0).
    pub version: (u8, u8),
    /// Element type and byte order.
    pub dtype: Dtype,
    /// True for column-major data.
    pub fortran_order: bool,
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Offset of the first data byte from the start of the `.npy` bytes.
    pub data_offset: usize,
    /// Number of elements (product of the shape).
    pub num_elements: usize,
    /// Number of data bytes (elements × element size).
    pub data_len: usize,
}

/// Why a header could not be parsed; turned into an [`ErrorKind`] with the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    BadMagic(Vec<u8>),
    BadHeader(String),
    Unsupported(String),
    Overflow(Vec<u64>),
}

impl HeaderProblem {
    pub(crate) fn at(self, path: &Path) -> Error {
        let path = path.to_path_buf();
        Error::new(match self {
            HeaderProblem::BadMagic(found) => ErrorKind::BadMagic { path, found },
            HeaderProblem::BadHeader(reason) => ErrorKind::BadHeader { path, reason },
            HeaderProblem::Unsupported(descr) => ErrorKind::UnsupportedDtype { path, descr },
            HeaderProblem::Overflow(shape) => ErrorKind::SizeOverflow { path, shape },
        })
    }
}

/// Parses the header at the start of `bytes` (the whole file or at least its header).
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header, HeaderProblem> {
    if bytes.len() < 6 || &bytes[..6] != MAGIC {
        return Err(HeaderProblem::BadMagic(
            bytes[..bytes.len().min(6)].to_vec(),
        ));
    }
    let bad = |s: String| Err(HeaderProblem::BadHeader(s));
    if bytes.len() < 10 {
        return bad(format!(
            "file ends inside the preamble ({} bytes)",
            bytes.len()
        ));
    }
    let version = (bytes[6], bytes[7]);
    let (len_bytes, start) = match version.0 {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => return bad(format!("unsupported format version {v}.{}", version.1)),
    };
    if bytes.len() < start {
        return bad(format!(
            "file ends inside the preamble ({} bytes)",
            bytes.len()
        ));
    }
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    if header_len > MAX_HEADER_LEN {
        return bad(format!(
            "header length {header_len} exceeds {MAX_HEADER_LEN} bytes"
        ));
    }
    let end = start + header_len;
    if bytes.len() < end {
        return bad(format!(
            "header length {header_len} runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    let text = match std::str::from_utf8(&bytes[start..end]) {
        Ok(t) => t,
        Err(_) if version.0 < 3 => {
            // Versions 1 and 2 are latin-1; every valid header is ASCII anyway.
            return bad("header is not ASCII text".into());
        }
        Err(e) => return bad(format!("header is not UTF-8: {e}")),
    };
    let dict = parse_dict(text).map_err(HeaderProblem::BadHeader)?;
    let descr = match dict.descr {
        Some(Value::Str(s)) => s,
        Some(Value::Other(raw)) => return Err(HeaderProblem::Unsupported(clip(&raw))),
        Some(v) => return bad(clip(&format!("'descr' is not a string: {v:?}"))),
        None => return bad("missing key 'descr'".into()),
    };
    let dtype = Dtype::parse_descr(&descr)
        .ok_or_else(|| HeaderProblem::Unsupported(clip(&format!("'{descr}'"))))?;
    let fortran_order = match dict.fortran_order {
        Some(Value::Bool(b)) => b,
        Some(v) => return bad(format!("'fortran_order' is not True/False: {v:?}")),
        None => return bad("missing key 'fortran_order'".into()),
    };
    let shape64 = match dict.shape {
        Some(Value::Tuple(s)) => s,
        Some(v) => return bad(format!("'shape' is not a tuple: {v:?}")),
        None => return bad("missing key 'shape'".into()),
    };
    let overflow = || HeaderProblem::Overflow(shape64.clone());
    let mut num_elements: usize = 1;
    let mut shape = Vec::with_capacity(shape64.len());
    for &d in &shape64 {
        let d = usize::try_from(d).map_err(|_| overflow())?;
        num_elements = num_elements.checked_mul(d).ok_or_else(overflow)?;
        shape.push(d);
    }
    let data_len = num_elements
        .checked_mul(dtype.size())
        .ok_or_else(overflow)?;
    // A zero dimension makes the data empty but not the rows: `(0, 3, 2**62, 16)`
    // would overflow every row-size computation. numpy refuses such shapes
    // too (it multiplies the non-zero dimensions: "array is too big").
    let nonzero_bytes = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
    match nonzero_bytes {
        Some(b) if b <= isize::MAX as usize => {}
        _ => return Err(overflow()),
    }
    // Mapped views index with isize; keep the end offset addressable.
    // (`match`, not `Option::is_none_or`: that needs Rust 1.82, the MSRV is 1.80.)
    match data_len.checked_add(end) {
        Some(total) if total <= isize::MAX as usize => {}
        _ => return Err(overflow()),
    }
    Ok(Header {
        version,
        dtype,
        fortran_order,
        shape,
        data_offset: end,
        num_elements,
        data_len,
    })
}

/// The header bytes numpy would write for a C-order array (version 1, or 2
/// when the header does not fit a u16 length), padded to 64 bytes.
pub fn header_bytes(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        dtype.descr()
    );
    for (version, preamble) in [(1u8, 10usize), (2, 12)] {
        let unpadded = preamble + dict.len() + 1;
        let total = unpadded.div_ceil(64) * 64;
        let header_len = total - preamble;
        if version == 1 && header_len > u16::MAX as usize {
            continue;
        }
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header_len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header_len as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        return out;
    }
    unreachable!("a version-2 header holds any shape that fits in memory")
}

/// A value of the header dict.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    /// Anything else (lists for structured dtypes...), kept as raw text for the error.
    Other(String),
}

#[derive(Default)]
struct Dict {
    descr: Option<Value>,
    fortran_order: Option<Value>,
    shape: Option<Value>,
}

/// A minimal parser for the dict literal numpy writes. It accepts any key
/// order, single or double quotes, trailing commas and Python 2 `L` suffixes,
/// and rejects unknown keys and duplicate keys.
fn parse_dict(text: &str) -> Result<Dict, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let mut dict = Dict::default();
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        let slot = match key.as_str() {
            "descr" => &mut dict.descr,
            "fortran_order" => &mut dict.fortran_order,
            "shape" => &mut dict.shape,
            other => return Err(clip(&format!("unexpected key '{other}'"))),
        };
        if slot.replace(value).is_some() {
            return Err(clip(&format!("duplicate key '{key}'")));
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    Ok(dict)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r' | 0) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at byte {}, found {}",
                c as char,
                self.i,
                self.s
                    .get(self.i)
                    .map_or("end of header".to_string(), |b| format!("'{}'", *b as char))
            ))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != quote {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("unterminated string".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.s.get(self.i) {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => self.tuple(),
            Some(b'T') if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            Some(b'F') if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            Some(b'[') => {
                // A structured dtype's field list: skip to the matching bracket.
                let start = self.i;
                let mut depth = 0i32;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'[' | b'(' => depth += 1,
                        b']' | b')' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                    if depth == 0 {
                        return Ok(Value::Other(
                            String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                        ));
                    }
                }
                Err("unterminated list".into())
            }
            _ => Err(format!("unexpected value at byte {}", self.i)),
        }
    }

    fn tuple(&mut self) -> Result<Value, String> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(Value::Tuple(items));
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!(
                    "expected a non-negative integer in 'shape' at byte {start}"
                ));
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let v: u64 = digits
                .parse()
                .map_err(|_| format!("shape dimension {digits} does not fit in 64 bits"))?;
            items.push(v);
            self.eat(b'L');
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(Value::Tuple(items));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::{ByteOrder, ElemType};

    fn file(dict: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        v
    }

    #[test]
    fn parses_what_numpy_writes() {
        let h = parse_header(&file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n",
        ))
        .unwrap();
        assert_eq!(h.dtype.elem, ElemType::F32);
        assert_eq!(h.dtype.order, ByteOrder::Little);
        assert_eq!(h.shape, vec![3, 4]);
        assert_eq!(h.num_elements, 12);
        assert_eq!(h.data_len, 48);
        assert!(!h.fortran_order);
    }

    #[test]
    fn accepts_key_order_scalars_and_long_suffix() {
        let h = parse_header(&file(
            "{\"shape\": (), \"fortran_order\": True, \"descr\": \">i2\"}",
        ))
        .unwrap();
        assert!(h.shape.is_empty());
        assert_eq!(h.num_elements, 1);
        assert!(h.fortran_order);
        let h = parse_header(&file(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (5L,)}",
        ))
        .unwrap();
        assert_eq!(h.shape, vec![5]);
    }

    #[test]
    fn written_header_parses_back_and_is_64_aligned() {
        for shape in [
            vec![],
            vec![7],
            vec![2, 3, 4, 5],
            vec![1_000_000, 224, 224, 3],
        ] {
            let d = Dtype {
                elem: ElemType::F64,
                order: ByteOrder::Big,
            };
            let bytes = header_bytes(d, &shape);
            assert_eq!(bytes.len() % 64, 0);
            let h = parse_header(&bytes).unwrap();
            assert_eq!(h.shape, shape);
            assert_eq!(h.dtype, d);
            assert_eq!(h.data_offset, bytes.len());
        }
    }

    #[test]
    fn each_hostile_header_gets_its_kind() {
        assert!(matches!(
            parse_header(b"PK\x03\x04xxxxxxxx"),
            Err(HeaderProblem::BadMagic(_))
        ));
        assert!(matches!(parse_header(b""), Err(HeaderProblem::BadMagic(_))));
        assert!(matches!(
            parse_header(b"\x93NUMPY\x01"),
            Err(HeaderProblem::BadHeader(_))
        ));
        let mut v9 = file("{}");
        v9[6] = 9;
        assert!(matches!(
            parse_header(&v9),
            Err(HeaderProblem::BadHeader(_))
        ));
        for dict in [
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} trailing",
            "not a dict",
        ] {
            assert!(
                matches!(parse_header(&file(dict)), Err(HeaderProblem::BadHeader(_))),
                "{dict}"
            );
        }
        let mut short = file("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}");
        short.truncate(20);
        assert!(matches!(
            parse_header(&short),
            Err(HeaderProblem::BadHeader(_))
        ));
        for dict in [
            "{'descr': '<c8', 'fortran_order': False, 'shape': (3,)}",
            "{'descr': [('a', '<i4'), ('b', '<f4')], 'fortran_order': False, 'shape': (3,)}",
            "{'descr': '|O', 'fortran_order': False, 'shape': (3,)}",
        ] {
            assert!(
                matches!(
                    parse_header(&file(dict)),
                    Err(HeaderProblem::Unsupported(_))
                ),
                "{dict}"
            );
        }
        for dict in [
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1152921504606846976,)}",
        ] {
            let r = parse_header(&file(dict));
            assert!(
                matches!(
                    r,
                    Err(HeaderProblem::Overflow(_)) | Err(HeaderProblem::BadHeader(_))
                ),
                "{dict}: {r:?}"
            );
        }
        assert!(matches!(
            parse_header(&file(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1152921504606846976,)}"
            )),
            Err(HeaderProblem::Overflow(_))
        ));
    }
}
