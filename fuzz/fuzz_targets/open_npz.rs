//! Arbitrary bytes as a `.npz` archive: opened with both sources (same
//! outcome required), members listed, each member opened and exercised as
//! `open_npy` does (the shared oracle's `exercise_npz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = npyflow_fuzz::write_input("input.npz", data);
    npyflow_fuzz::exercise_npz(&path);
});
