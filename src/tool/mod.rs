//! What the `npyflow` tool does beyond iterating, as a library: conversions
//! into mappable `.npy` files and contact-sheet previews (re-exported at the
//! crate root as `convert` and `preview`).

pub mod convert;
pub mod preview;
