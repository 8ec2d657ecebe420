//! Arbitrary bytes as a `.npy` file: opened with the map and with `pread`
//! (same outcome required); what opens is read row by row, viewed and, when
//! it is a small rank-4 array, iterated for one epoch (same bytes required).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = npyflow_fuzz::write_input("input.npy", data);
    npyflow_fuzz::exercise_npy_file(&path);
});
