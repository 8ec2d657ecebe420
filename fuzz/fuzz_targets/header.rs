//! `parse_header` over arbitrary bytes: never a panic; what parses is
//! self-consistent and survives a write/parse round trip.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use npyflow::npy::{header_bytes, parse_header};

fuzz_target!(|data: &[u8]| {
    let h = match parse_header(data, Path::new("fuzz.npy")) {
        Ok(h) => h,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(
        h.data_offset <= data.len(),
        "data offset past the bytes given"
    );
    let product = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    assert_eq!(product, Some(h.num_elements));
    assert_eq!(h.num_elements.checked_mul(h.dtype.size()), Some(h.data_len));
    assert!(h
        .data_offset
        .checked_add(h.data_len)
        .is_some_and(|e| e <= isize::MAX as usize));
    // The rows an iterator would index must be addressable too.
    let row: Option<usize> = h
        .shape
        .iter()
        .skip(1)
        .try_fold(h.dtype.size(), |acc, &d| acc.checked_mul(d));
    assert!(
        row.is_some_and(|r| r <= isize::MAX as usize),
        "row size of {:?} overflows",
        h.shape
    );

    // What we would write for this array parses back to the same array.
    let again = parse_header(&header_bytes(h.dtype, &h.shape), Path::new("again.npy"))
        .expect("our own header parses");
    assert_eq!(
        (again.dtype, &again.shape, again.fortran_order),
        (h.dtype, &h.shape, false)
    );
    assert_eq!(again.data_offset % 64, 0);
});
