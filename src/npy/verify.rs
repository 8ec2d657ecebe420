//! Integrity of `.npz` members: their bytes streamed (inflated when
//! compressed) against the CRC-32 the archive records.
//!
//! Mapping a stored member never reads it as a whole, so nothing on the
//! zero-copy path can check its CRC; [`NpzArchive::verify`] is the explicit
//! pass that does, and the extractor streams every member through the same
//! [`CheckedMember`] so both report a damaged member alike.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;

use super::array::chunk_buffer;
use super::npz::{NpzArchive, NpzMember};
use crate::{sys, Error, ErrorKind, Result};

/// `pread`s of `len` bytes from `offset` of `file`, as a `Read`.
struct SliceReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for SliceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = sys::read_at(self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            // The directory promised these bytes; the file ends before them.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside the member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

enum Source<R: Read> {
    Stored(R),
    Deflated(Box<DeflateDecoder<R>>),
}

/// A member's uncompressed bytes, streamed from its raw (as stored) bytes,
/// with its size and CRC-32 checked at the end: reading past the size the
/// directory records, ending before it, or a CRC that differs is an error
/// naming the archive and the member. As a `Read`, errors come wrapped in
/// `io::Error`; [`into_error`] unwraps them.
pub(crate) struct CheckedMember<R: Read> {
    source: Source<R>,
    crc: flate2::Crc,
    read: u64,
    size: u64,
    expected_crc: u32,
    path: PathBuf,
    member: String,
    done: bool,
}

impl<R: Read> CheckedMember<R> {
    /// Streams member `member` of archive `path` from `raw`, its bytes as
    /// stored in the archive.
    ///
    /// # Errors
    /// [`ErrorKind::Npz`] for a compression method other than deflate.
    pub(crate) fn new(
        raw: R,
        path: &Path,
        member: &str,
        method: zip::CompressionMethod,
        size: u64,
        expected_crc: u32,
    ) -> Result<Self> {
        let source = match method {
            zip::CompressionMethod::Stored => Source::Stored(raw),
            zip::CompressionMethod::Deflated => Source::Deflated(Box::new(DeflateDecoder::new(raw))),
            other => {
                return Err(ErrorKind::Npz {
                    path: path.to_path_buf(),
                    reason: format!(
                        "member `{member}` is compressed with {other:?}; npyflow reads stored and deflated members (what numpy writes)"
                    ),
                }
                .into())
            }
        };
        Ok(CheckedMember {
            source,
            crc: flate2::Crc::new(),
            read: 0,
            size,
            expected_crc,
            path: path.to_path_buf(),
            member: member.to_string(),
            done: false,
        })
    }

    fn npz_err(&self, reason: String) -> Error {
        ErrorKind::Npz {
            path: self.path.clone(),
            reason: format!("member `{}`: {reason}", self.member),
        }
        .into()
    }

    /// Reads the next bytes into `buf`; `Ok(0)` only at the member's end,
    /// once its size and CRC have been checked.
    pub(crate) fn read_checked(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        // One byte more than the member may hold: a stream longer than its
        // recorded size is caught without reading it all.
        let left = self.size - self.read;
        let want = (left.saturating_add(1)).min(buf.len() as u64) as usize;
        let n = loop {
            let r = match &mut self.source {
                Source::Stored(r) => r.read(&mut buf[..want]),
                Source::Deflated(d) => d.read(&mut buf[..want]),
            };
            match r {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(match &self.source {
                        Source::Stored(_) => self.npz_err(e.to_string()),
                        Source::Deflated(_) => self.npz_err(format!("cannot inflate: {e}")),
                    })
                }
            }
        };
        if n as u64 > left {
            return Err(self.npz_err(format!(
                "holds more than the {} bytes the archive records",
                self.size
            )));
        }
        if n == 0 {
            if self.read < self.size {
                return Err(self.npz_err(format!(
                    "ends after {} of the {} bytes the archive records",
                    self.read, self.size
                )));
            }
            let found = self.crc.sum();
            if found != self.expected_crc {
                return Err(ErrorKind::ChecksumMismatch {
                    path: self.path.clone(),
                    member: self.member.clone(),
                    expected: self.expected_crc,
                    found,
                }
                .into());
            }
            self.done = true;
            return Ok(0);
        }
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Read> Read for CheckedMember<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_checked(buf).map_err(io::Error::other)
    }
}

/// The npyflow error inside an `io::Error` from [`CheckedMember`]'s `Read`,
/// or `other(e)` for an error that did not come from it.
pub(crate) fn into_error(e: io::Error, other: impl FnOnce(io::Error) -> Error) -> Error {
    if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return other(e);
    }
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(err)) => *err,
        Some(Err(inner)) => other(io::Error::other(inner)),
        None => other(io::Error::other("an I/O error without details")),
    }
}

impl NpzArchive {
    /// Checks every member's bytes against the CRC-32 the archive records,
    /// streamed a chunk at a time with `pread` (compressed members inflated
    /// on the fly; memory stays at a few MiB whatever the archive's size),
    /// and returns the number of uncompressed bytes checked. `progress`
    /// receives `(bytes checked, bytes in all members)` after each chunk.
    ///
    /// Opening an archive and mapping its members never checks a CRC (a
    /// map reads only the pages used), so this is the way to know that an
    /// archive copied or downloaded is whole before a long run.
    ///
    /// # Errors
    /// [`ErrorKind::ChecksumMismatch`] naming the first damaged member;
    /// [`ErrorKind::Truncated`] when the archive ends inside a member;
    /// [`ErrorKind::Npz`] for corrupt compressed data or a member whose
    /// length differs from the directory's; I/O errors.
    pub fn verify(&self, mut progress: impl FnMut(u64, u64)) -> Result<u64> {
        let total = self
            .members()
            .iter()
            .fold(0u64, |t, m| t.saturating_add(m.size));
        let mut done = 0u64;
        let mut buf = chunk_buffer(total);
        for m in self.members() {
            let before = done;
            done += self.check_member(m, &mut buf, |n| progress(before + n, total))?;
        }
        progress(total, total);
        Ok(total)
    }

    /// Checks one member (named with or without `.npy`) as
    /// [`NpzArchive::verify`] does, and returns its uncompressed size.
    /// `progress` receives `(bytes checked, member size)`.
    ///
    /// # Errors
    /// As [`NpzArchive::verify`]; [`ErrorKind::Npz`] when there is no such member.
    pub fn verify_member(&self, name: &str, mut progress: impl FnMut(u64, u64)) -> Result<u64> {
        let m = self.member(name)?;
        let mut buf = chunk_buffer(m.size);
        self.check_member(m, &mut buf, |n| progress(n, m.size))
    }

    fn check_member(
        &self,
        m: &NpzMember,
        buf: &mut [u8],
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let end = m.data_start.saturating_add(m.compressed_size);
        if end > self.file_len() {
            return Err(ErrorKind::Truncated {
                path: self.path().to_path_buf(),
                expected: end,
                found: self.file_len(),
            }
            .into());
        }
        let raw = SliceReader {
            file: self.file(),
            pos: m.data_start,
            end,
        };
        let mut reader = CheckedMember::new(raw, self.path(), &m.name, m.method, m.size, m.crc32)?;
        let mut n = 0u64;
        loop {
            let got = reader.read_checked(buf)?;
            if got == 0 {
                return Ok(n);
            }
            n += got as u64;
            progress(n);
        }
    }
}
