//! Shared by the benches: where their data lives and how it is generated.
//!
//! Each bench binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use npyflow::npy::{Dtype, ElemType, NpyWriter};
use npyflow::NpyArray;

/// `target/npyflow-bench/` (or under `CARGO_TARGET_DIR`), created if missing.
/// Data is kept between runs: generating gigabytes takes longer than most
/// measurements.
pub fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("npyflow-bench");
    std::fs::create_dir_all(&dir).expect("cannot create the bench data folder");
    dir
}

/// A `.npy` of `n` u8 images `h`×`w`×`c` of pseudo-random noise, written
/// once (streamed, so any size fits) and reused while its shape matches.
pub fn images_u8(n: usize, h: usize, w: usize, c: usize) -> PathBuf {
    images_u8_in(&bench_dir(), n, h, w, c)
}

/// [`images_u8`] in the folder `dir` (a mounted device under test).
pub fn images_u8_in(dir: &Path, n: usize, h: usize, w: usize, c: usize) -> PathBuf {
    let path = dir.join(format!("images-{h}x{w}x{c}-{n}.npy"));
    if NpyArray::open(&path).is_ok_and(|a| a.shape() == [n, h, w, c]) {
        return path;
    }
    let mut out = NpyWriter::create(&path, Dtype::native(ElemType::U8), &[n, h, w, c])
        .expect("create bench data");
    let row = h * w * c;
    let rows_per_chunk = ((8 << 20) / row.max(1)).max(1);
    let mut chunk = vec![0u8; rows_per_chunk * row];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut done = 0;
    while done < n {
        let rows = rows_per_chunk.min(n - done);
        let bytes = &mut chunk[..rows * row];
        for word in bytes.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        out.write_bytes(bytes).expect("write bench data");
        done += rows;
    }
    out.finish().expect("finish bench data");
    path
}
