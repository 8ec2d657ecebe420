//! The integration test binary: one module per concept.
mod npy;
mod generator;
mod transform;
mod iterator;
mod props;
mod util;
mod resample;
mod standardize;
mod fit;
mod cache;
mod convert;
mod pipeline;
mod hostile;
mod changing;
mod concurrency;
mod memcap;
mod flow;
