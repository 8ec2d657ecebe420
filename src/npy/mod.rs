//! `.npy` and `.npz`: header parsing over bytes, element types, the mapped
//! array, archive members, per-sample conversion and crash-safe writers.

mod array;
mod cast;
mod dtype;
mod header;
mod npz;
mod open;
mod partial;
mod raw;
mod verify;
mod view;
mod write;

pub(crate) use array::RowFrom;
pub use array::{MemoryOwner, NpyArray, OpenOptions, SourceKind};
pub(crate) use cast::cast_into;
pub(crate) use cast::Pace;
pub use dtype::{ByteOrder, Dtype, ElemType};
pub use header::{header_bytes, Header, MAGIC};
pub(crate) use npz::check_member_count;
pub use npz::{NpzArchive, NpzMember, MAX_MEMBERS};
pub(crate) use open::open_data_file;
pub use partial::abandon_writes;
pub(crate) use partial::{persist_all, Partial};
pub(crate) use verify::{into_error, CheckedMember};
pub use view::Element;
pub(crate) use write::{create_atomic, persist, temp_beside};
pub use write::{write_atomic, write_npy, NpyWriter, NpzWriter};

/// Parses a `.npy` header from bytes (pure; no I/O).
///
/// # Errors
/// The same kinds as [`NpyArray::open`], with `path` as the name to report.
pub fn parse_header(bytes: &[u8], path: &std::path::Path) -> crate::Result<Header> {
    header::parse_header(bytes).map_err(|p| p.at(path))
}
