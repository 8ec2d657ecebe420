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
        let (file, file_len) = super::array::open_data_file(path)?;
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

    /// The archive's members in directory order.
    pub fn members(&self) -> &[NpzMember] {
        &self.members
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
        let member = self
            .members
            .iter()
            .find(|m| m.name == name || m.name.trim_end_matches(".npy") == name)
            .ok_or_else(|| {
                npz_err(
                    &self.path,
                    format!("no member `{name}` (members: {})", self.names().join(", ")),
                )
            })?;
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
