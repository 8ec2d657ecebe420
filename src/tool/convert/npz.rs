//! `.npz` → one `.npy` per member, decompressing compressed members on the fly.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::Progress;
use crate::npy::{into_error, parse_header, persist_all, CheckedMember, Header, Partial};
use crate::{Error, ErrorKind, Result};

/// One member written by [`extract_npz`].
#[derive(Clone, Debug)]
pub struct ExtractedMember {
    /// The array's name (the member name without `.npy`).
    pub name: String,
    /// Where it was written: `OUT/NAME.npy`.
    pub path: PathBuf,
    /// Its header (dtype, byte order, order and shape are kept as stored).
    pub header: Header,
    /// True when the member was compressed in the archive.
    pub compressed: bool,
}

const COPY_BUF: usize = 1 << 20;

fn npz_err(path: &Path, reason: impl Into<String>) -> Error {
    ErrorKind::Npz {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
    .into()
}

/// Extracts every member of the `.npz` archive `file` into `out_dir/NAME.npy`
/// (the folder is created if needed), streaming: stored members are copied,
/// compressed ones (`np.savez_compressed`) are inflated a buffer at a time.
///
/// Each member's `.npy` header is validated and its byte count and the
/// archive's CRC checked. Bytes are copied verbatim, so byte order and
/// memory order stay as stored; rewrite them with [`super::convert_array`].
/// Outputs are renamed into place together at the end, only when every
/// member extracted cleanly. `progress` receives `(bytes done, bytes total)`
/// of uncompressed member data.
///
/// # Errors
/// I/O errors (including an unwritable `out_dir`); [`ErrorKind::Npz`] for an
/// unreadable archive, a member name that would escape `out_dir`, or a CRC
/// mismatch; the header errors of [`crate::NpyArray::open`] (with the path
/// written `archive.npz:member`); [`ErrorKind::Truncated`] when a member
/// holds fewer bytes than its header promises.
pub fn extract_npz(
    file: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    progress: Option<Progress<'_>>,
) -> Result<Vec<ExtractedMember>> {
    let (file, out_dir) = (file.as_ref(), out_dir.as_ref());
    if file.is_dir() {
        return Err(npz_err(file, "is a folder, not an .npz archive"));
    }
    let (opened, len) = crate::npy::open_data_file(file)?;
    crate::npy::check_member_count(file, &opened, len)?;
    let reader = BufReader::new(opened);
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| npz_err(file, format!("not a readable .npz archive: {e}")))?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        total += zip
            .by_index_raw(i)
            .map_err(|e| npz_err(file, format!("member {i}: {e}")))?
            .size();
    }
    fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut done = 0u64;
    let mut pending: Vec<(Partial, ExtractedMember)> = Vec::with_capacity(zip.len());
    let mut buf = vec![0u8; COPY_BUF];
    for i in 0..zip.len() {
        // Raw bytes, inflated and checked here: the error for a damaged
        // member is npyflow's, naming it with the CRCs expected and found.
        let raw = zip
            .by_index_raw(i)
            .map_err(|e| npz_err(file, format!("member {i}: {e}")))?;
        if raw.is_dir() {
            continue;
        }
        let member_name = raw
            .name()
            .map_err(|e| npz_err(file, format!("member {i}: {e}")))?
            .into_owned();
        let label = PathBuf::from(format!("{}:{member_name}", file.display()));
        let mut rel = raw.enclosed_name().ok_or_else(|| {
            npz_err(
                file,
                format!("member name {member_name:?} would be written outside the output folder"),
            )
        })?;
        if rel.extension().is_none_or(|e| e != "npy") {
            let mut s = rel.into_os_string();
            s.push(".npy");
            rel = PathBuf::from(s);
        }
        let dest = out_dir.join(&rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let compressed = raw.compression() != zip::CompressionMethod::Stored;
        let (method, size, crc) = (raw.compression(), raw.size(), raw.crc32());
        let mut member = CheckedMember::new(raw, file, &member_name, method, size, crc)?;

        let head = read_npy_header(&mut member, &label)?;
        let header = parse_header(&head, &label)?;
        let tmp = Partial::create_replacing(&dest)?;
        let mut out = BufWriter::with_capacity(COPY_BUF, tmp);
        let io_out = |e| Error::io(&dest, e);
        out.write_all(&head).map_err(io_out)?;
        done += head.len() as u64;
        let mut left = header.data_len as u64;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = member.read_checked(&mut buf[..want])?;
            if n == 0 {
                let found = header.data_offset as u64 + header.data_len as u64 - left;
                return Err(ErrorKind::Truncated {
                    path: label,
                    expected: header.data_offset as u64 + header.data_len as u64,
                    found,
                }
                .into());
            }
            out.write_all(&buf[..n]).map_err(io_out)?;
            left -= n as u64;
            done += n as u64;
            if let Some(p) = progress {
                p(done.min(total), total);
            }
        }
        // Read to the member's end, where its size and CRC are checked.
        // Trailing bytes beyond the array are ignored, as numpy does.
        loop {
            let n = member.read_checked(&mut buf)?;
            if n == 0 {
                break;
            }
            done += n as u64;
        }
        let tmp = out
            .into_inner()
            .map_err(|e| Error::io(&dest, e.into_error()))?;
        let name = member_name
            .strip_suffix(".npy")
            .unwrap_or(&member_name)
            .to_string();
        pending.push((
            tmp,
            ExtractedMember {
                name,
                path: dest,
                header,
                compressed,
            },
        ));
    }
    if pending.is_empty() {
        return Err(npz_err(file, "archive has no members"));
    }
    if let Some(p) = progress {
        p(total, total);
    }
    let (partials, extracted): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .map(|(tmp, member)| ((tmp, member.path.clone()), member))
        .unzip();
    persist_all(partials)?;
    Ok(extracted)
}

/// Reads the preamble and header of a `.npy` stream (nothing more).
fn read_npy_header(r: &mut impl Read, label: &Path) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(128);
    read_up_to(r, &mut head, 10, label)?;
    if head.len() == 10 && head.starts_with(crate::npy::MAGIC) {
        let header_len = match head[6] {
            1 => u16::from_le_bytes([head[8], head[9]]) as usize,
            2 | 3 => {
                read_up_to(r, &mut head, 12, label)?;
                if head.len() < 12 {
                    return Ok(head);
                }
                u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize
            }
            // Let the parser report the bad version.
            _ => return Ok(head),
        };
        let preamble = head.len();
        // The parser caps the header length; stop reading past that cap.
        read_up_to(r, &mut head, preamble + header_len.min(1 << 20), label)?;
    }
    Ok(head)
}

/// Appends from `r` until `head` holds `len` bytes or the stream ends.
fn read_up_to(r: &mut impl Read, head: &mut Vec<u8>, len: usize, label: &Path) -> Result<()> {
    let want = len.saturating_sub(head.len()) as u64;
    r.take(want)
        .read_to_end(head)
        .map_err(|e| into_error(e, |e| Error::io(label, e)))?;
    Ok(())
}

/// The `.npy` header of member `member` (with or without `.npy`) of the
/// archive `file`, read by inflating only the header bytes when the member
/// is compressed (for `info` on `np.savez_compressed` archives).
///
/// # Errors
/// I/O errors; [`ErrorKind::Npz`] for an unreadable archive or a missing
/// member; the header errors of [`crate::NpyArray::open`].
pub fn npz_member_header(file: impl AsRef<Path>, member: &str) -> Result<Header> {
    let file = file.as_ref();
    let (opened, len) = crate::npy::open_data_file(file)?;
    crate::npy::check_member_count(file, &opened, len)?;
    let reader = BufReader::new(opened);
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| npz_err(file, format!("not a readable .npz archive: {e}")))?;
    let name = if zip.index_for_name(member).is_some() {
        member.to_string()
    } else {
        format!("{member}.npy")
    };
    let mut m = zip
        .by_name(&name)
        .map_err(|e| npz_err(file, format!("member `{member}`: {e}")))?;
    let label = PathBuf::from(format!("{}:{name}", file.display()));
    let head = read_npy_header(&mut m, &label)?;
    parse_header(&head, &label)
}
