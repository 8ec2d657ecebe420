//! `.npz` archives: members stored uncompressed (what `np.savez` writes) are
//! mapped zero-copy at their offset inside the archive.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::array::{NpyArray, OpenOptions, Parts, SourceKind};
use crate::{sys, Error, ErrorKind, Result};

/// One member of an archive, as listed in its central directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpzMember {
    /// The name inside the archive, e.g. `x.npy`.
    pub name: String,
    /// True when stored compressed (`np.savez_compressed`): not mappable.
    pub compressed: bool,
    /// Offset of the member's bytes inside the archive.
    pub data_start: u64,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Bytes the member occupies in the archive (its size when stored).
    pub compressed_size: u64,
    /// The CRC-32 of the uncompressed bytes, as the archive records it
    /// (checked by [`NpzArchive::verify`], never by mapping).
    pub crc32: u32,
    /// How it is stored (npyflow inflates deflate, what numpy writes).
    pub(crate) method: zip::CompressionMethod,
}

/// An opened `.npz` archive.
#[derive(Debug)]
pub struct NpzArchive {
    path: PathBuf,
    file: File,
    file_len: u64,
    map: Option<Arc<sys::Map>>,
    members: Vec<NpzMember>,
    options: OpenOptions,
}

/// The most members an archive may list. numpy writes one member per
/// array, so real archives hold a handful; listing costs a local-header
/// read and about 300 bytes per member, so a directory of millions (a
/// hostile or mistaken file: 10^6 empty members fit in 100 MB) is refused
/// from its end record before any entry is read.
pub const MAX_MEMBERS: u64 = 1 << 16;

fn npz_err(path: &Path, reason: impl Into<String>) -> Error {
    ErrorKind::Npz {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
    .into()
}

impl NpzArchive {
    /// Opens an archive and reads its directory (memory-mapped source).
    ///
    /// # Errors
    /// I/O errors; [`ErrorKind::Npz`] when it is not a readable zip archive.
    pub fn open(path: impl AsRef<Path>) -> Result<NpzArchive> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens an archive with explicit options for its members.
    ///
    /// # Errors
    /// As [`NpzArchive::open`].
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<NpzArchive> {
        let path = path.as_ref();
        let (file, file_len) = super::open::open_data_file(path)?;
        check_member_count(path, &file, file_len)?;
        let mut zip = zip::ZipArchive::new(&file)
            .map_err(|e| npz_err(path, format!("not a readable .npz archive: {e}")))?;
        let mut members = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let f = zip
                .by_index_raw(i)
                .map_err(|e| npz_err(path, format!("member {i}: {e}")))?;
            let name = f
                .name()
                .map_err(|e| npz_err(path, format!("member {i}: {e}")))?
                .into_owned();
            // Known once the entry is opened: opening reads its local header.
            let data_start = f
                .data_start()
                .ok_or_else(|| npz_err(path, format!("member {name}: no data offset")))?;
            members.push(NpzMember {
                name,
                compressed: f.compression() != zip::CompressionMethod::Stored,
                data_start,
                size: f.size(),
                compressed_size: f.compressed_size(),
                crc32: f.crc32(),
                method: f.compression(),
            });
        }
        let map = match options.source {
            SourceKind::Mmap => Some(Arc::new(
                sys::map_readonly(&file).map_err(|e| Error::io(path, e))?,
            )),
            SourceKind::Read => None,
        };
        Ok(NpzArchive {
            path: path.to_path_buf(),
            file,
            file_len,
            map,
            members,
            options,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The archive's members in directory order.
    pub fn members(&self) -> &[NpzMember] {
        &self.members
    }

    /// The member called `name`, with or without the `.npy` suffix.
    pub(crate) fn member(&self, name: &str) -> Result<&NpzMember> {
        self.members
            .iter()
            .find(|m| m.name == name || m.name.trim_end_matches(".npy") == name)
            .ok_or_else(|| {
                let names = self.names();
                // An archive may hold many members: the message lists a few.
                let listed = match names.len() {
                    n if n > 8 => format!("{}, and {} more", names[..8].join(", "), n - 8),
                    _ => names.join(", "),
                };
                npz_err(
                    &self.path,
                    format!("no member `{name}` (members: {listed})"),
                )
            })
    }

    /// Array names (member names without `.npy`), in directory order.
    pub fn names(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.name.trim_end_matches(".npy").to_string())
            .collect()
    }

    /// The member called `name` (with or without the `.npy` suffix), mapped zero-copy.
    ///
    /// # Errors
    /// [`ErrorKind::Npz`] when missing, [`ErrorKind::CompressedMember`] when
    /// compressed, and every `.npy` validation error of [`NpyArray::open`].
    pub fn array(&self, name: &str) -> Result<NpyArray> {
        let member = self.member(name)?;
        if member.compressed {
            return Err(ErrorKind::CompressedMember {
                path: self.path.clone(),
                member: member.name.clone(),
            }
            .into());
        }
        let end = member.data_start.saturating_add(member.size);
        if end > self.file_len {
            return Err(ErrorKind::Truncated {
                path: self.path.clone(),
                expected: end,
                found: self.file_len,
            }
            .into());
        }
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io(&self.path, e))?;
        let parts = Parts {
            path: self.path.clone(),
            member: Some(member.name.trim_end_matches(".npy").to_string()),
            file,
            map: self.map.clone(),
            base: member.data_start,
            len: member.size,
            file_len: self.file_len,
        };
        NpyArray::from_parts(parts, self.options)
    }
}

/// The number of members an archive's end record declares (the zip64
/// record's when there is one), or `None` when there is no end record to
/// read (the zip reader then says what is wrong).
pub(crate) fn declared_members(file: &File, file_len: u64) -> std::io::Result<Option<u64>> {
    const EOCD: &[u8; 4] = b"PK\x05\x06";
    const LOCATOR: &[u8; 4] = b"PK\x06\x07";
    const EOCD64: &[u8; 4] = b"PK\x06\x06";
    // The end record is 22 bytes plus a comment of at most 65535.
    let tail_len = file_len.min(22 + 0xffff);
    let tail_start = file_len - tail_len;
    let mut tail = vec![0u8; tail_len as usize];
    sys::read_exact_at(file, &mut tail, tail_start)?;
    let Some(at) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| &tail[i..i + 4] == EOCD)
    else {
        return Ok(None);
    };
    let count = u16::from_le_bytes([tail[at + 10], tail[at + 11]]);
    if count != u16::MAX {
        return Ok(Some(count as u64));
    }
    // zip64: a locator just before the end record points at the zip64 record.
    let locator = tail_start + at as u64;
    if locator < 20 {
        return Ok(Some(count as u64));
    }
    let mut loc = [0u8; 20];
    sys::read_exact_at(file, &mut loc, locator - 20)?;
    if &loc[..4] != LOCATOR {
        return Ok(Some(count as u64));
    }
    let record = u64::from_le_bytes(loc[8..16].try_into().unwrap_or_default());
    let mut rec = [0u8; 56];
    if record.saturating_add(56) > file_len {
        return Ok(None);
    }
    sys::read_exact_at(file, &mut rec, record)?;
    if &rec[..4] != EOCD64 {
        return Ok(None);
    }
    Ok(Some(u64::from_le_bytes(
        rec[32..40].try_into().unwrap_or_default(),
    )))
}

/// [`ErrorKind::Npz`] when the archive declares more than [`MAX_MEMBERS`].
pub(crate) fn check_member_count(path: &Path, file: &File, file_len: u64) -> Result<()> {
    match declared_members(file, file_len).map_err(|e| Error::io(path, e))? {
        Some(n) if n > MAX_MEMBERS => Err(npz_err(
            path,
            format!(
                "holds {n} members, more than the {MAX_MEMBERS} npyflow lists (numpy writes one member per array)"
            ),
        )),
        _ => Ok(()),
    }
}
