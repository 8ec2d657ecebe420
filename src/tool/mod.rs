//! What the `npyflow` tool does beyond iterating, as a library: conversions
//! into mappable `.npy` files, contact-sheet previews and the synthetic
//! dataset of the demo.

pub(crate) mod convert;
pub(crate) mod preview;
pub(crate) mod synth;
