//! Golden values: what a seed gives, pinned across versions.
//!
//! Every other test compares npyflow with a reference (Keras, scipy) or with
//! itself under another setting; none of them notices when *every* setting
//! changes together — a different key derivation, draw order or kernel
//! rounding. These values were recorded once and are committed in
//! `tests/fixtures/golden/golden.json`; the reproducibility promise in the
//! README ("the same seed gives the same batches in every future version")
//! is this file. A deliberate change regenerates the fixture with
//! `NPYFLOW_BLESS=1 cargo test --test integration golden` and says so in
//! the changelog; `.ci/run` runs the generator and diffs it against the
//! committed file.
//!
//! Batches are pinned by the SHA-256 of their bytes (little-endian, as
//! produced): a kernel's every bit counts, and the Python tests check the
//! same digests against the package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use npyflow::npy::ElemType;
use npyflow::{
    DataFormat, GeneratorOptions, ImageDataGenerator, ImageShape, NpyArray, NumpyArrayIterator,
    Order, OutputDtype, SampleRng, Shard, ShiftRange, Stream, ZoomRange,
};

use crate::util::write;

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/golden.json")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` images whose values are a fixed function of (sample, position): no
/// RNG of ours is involved in the input.
fn images(dir: &Path, name: &str, n: usize, dims: [usize; 3]) -> NpyArray {
    let sl = dims.iter().product::<usize>();
    let data: Vec<u8> = (0..n * sl)
        .map(|k| ((k / sl) * 29 + (k % sl) * 7 + (k % sl) / 13) as u8)
        .collect();
    write(
        dir,
        name,
        ElemType::U8,
        &[n, dims[0], dims[1], dims[2]],
        &data,
    )
}

fn permutations() -> Value {
    let mut out = BTreeMap::new();
    let orders = [
        ("shuffle", Order::Shuffle),
        (
            "blocks_4x3",
            Order::Blocks {
                block_rows: 4,
                window: 3,
            },
        ),
        (
            "blocks_7x1",
            Order::Blocks {
                block_rows: 7,
                window: 1,
            },
        ),
    ];
    for (name, order) in orders {
        for (n, seed, epoch) in [(10, 0, 0), (10, 1, 0), (10, 1, 1), (50, 12345, 7)] {
            out.insert(
                format!("{name} n={n} seed={seed} epoch={epoch}"),
                json!(order.plan(n, seed, epoch)),
            );
        }
    }
    for count in [2, 3] {
        for index in 0..count {
            let shard = Shard::new(index, count).unwrap();
            out.insert(
                format!("shuffle n=11 seed=5 epoch=2 shard={index}/{count}"),
                json!(Order::Shuffle.shard_plan(11, 5, 2, shard, false)),
            );
        }
    }
    json!(out)
}

fn streams() -> Value {
    let mut out = BTreeMap::new();
    for (name, stream) in [
        ("permutation", Stream::Permutation),
        ("augment", Stream::Augment),
        ("fit", Stream::Fit),
        ("save_name", Stream::SaveName),
        ("blocks", Stream::Blocks),
    ] {
        for (seed, epoch, index) in [(0, 0, 0), (42, 3, 17), (u64::MAX, 1, 1 << 40)] {
            let mut rng = SampleRng::new(seed, stream, epoch, index);
            let draws: Vec<String> = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
            out.insert(
                format!("{name} seed={seed} epoch={epoch} index={index}"),
                json!(draws),
            );
        }
    }
    json!(out)
}

/// The parameters Keras' `get_random_transform` draws, with every range on.
fn transforms() -> Value {
    let generator = ImageDataGenerator::new(GeneratorOptions {
        rotation_range: 30.0,
        width_shift_range: ShiftRange::Float(0.2),
        height_shift_range: ShiftRange::Pixels(3),
        shear_range: 15.0,
        zoom_range: ZoomRange::Range([0.7, 1.2]),
        channel_shift_range: 25.0,
        brightness_range: Some([0.6, 1.4]),
        horizontal_flip: true,
        vertical_flip: true,
        ..Default::default()
    })
    .unwrap();
    let shape = ImageShape::hwc(24, 20, 3);
    let list: Vec<Value> = (0..6)
        .map(|index| {
            let mut rng = SampleRng::new(9, Stream::Augment, 1, index);
            let p = generator.get_random_transform(shape, &mut rng);
            json!({
                "theta": p.theta, "tx": p.tx, "ty": p.ty, "shear": p.shear,
                "zx": p.zx, "zy": p.zy,
                "flip_horizontal": p.flip_horizontal, "flip_vertical": p.flip_vertical,
                "channel_shift_intensity": p.channel_shift_intensity,
                "brightness": p.brightness,
            })
        })
        .collect();
    json!(list)
}

/// One pinned iteration: the options and the digests of some of its batches.
struct Case {
    name: &'static str,
    options: GeneratorOptions,
    n: usize,
    dims: [usize; 3],
    batch_size: usize,
    order: Order,
    shard: (usize, usize),
    /// (epoch, batch) pairs to pin.
    batches: &'static [(u64, usize)],
}

fn cases() -> Vec<Case> {
    let keras = GeneratorOptions {
        rotation_range: 20.0,
        width_shift_range: ShiftRange::Float(0.1),
        height_shift_range: ShiftRange::Float(0.1),
        shear_range: 10.0,
        zoom_range: ZoomRange::Scalar(0.1),
        horizontal_flip: true,
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    };
    vec![
        Case {
            name: "keras_augmentation_32x32x3_shuffle",
            options: keras.clone(),
            n: 70,
            dims: [32, 32, 3],
            batch_size: 32,
            order: Order::Shuffle,
            shard: (0, 1),
            batches: &[(0, 0), (0, 2), (1, 1)],
        },
        Case {
            name: "keras_augmentation_48x40x3_reflect_f64",
            options: GeneratorOptions {
                fill_mode: npyflow::FillMode::Reflect,
                dtype: OutputDtype::F64,
                ..keras.clone()
            },
            n: 9,
            dims: [48, 40, 3],
            batch_size: 4,
            order: Order::Sequential,
            shard: (0, 1),
            batches: &[(0, 0), (3, 2)],
        },
        Case {
            name: "spline3_constant_colour_1ch",
            options: GeneratorOptions {
                rotation_range: 45.0,
                zoom_range: ZoomRange::Range([0.8, 1.3]),
                interpolation_order: 3,
                fill_mode: npyflow::FillMode::Constant,
                cval: 17.0,
                channel_shift_range: 30.0,
                vertical_flip: true,
                ..Default::default()
            },
            n: 12,
            dims: [17, 23, 1],
            batch_size: 5,
            order: Order::Shuffle,
            shard: (0, 1),
            batches: &[(0, 0), (2, 2)],
        },
        Case {
            name: "brightness_wrap_channels_first_blocks_shard",
            options: GeneratorOptions {
                width_shift_range: ShiftRange::Pixels(4),
                shear_range: 20.0,
                brightness_range: Some([0.5, 1.5]),
                fill_mode: npyflow::FillMode::Wrap,
                interpolation_order: 0,
                data_format: DataFormat::ChannelsFirst,
                samplewise_center: true,
                samplewise_std_normalization: true,
                ..Default::default()
            },
            n: 40,
            dims: [3, 14, 11],
            batch_size: 6,
            order: Order::Blocks {
                block_rows: 5,
                window: 2,
            },
            shard: (1, 3),
            batches: &[(0, 0), (1, 2)],
        },
    ]
}

fn batches(dir: &Path) -> Value {
    let mut out = BTreeMap::new();
    for case in cases() {
        let x = images(dir, &format!("{}.npy", case.name), case.n, case.dims);
        let y: Vec<i64> = (0..case.n as i64).map(|i| i * 3 - 7).collect();
        let y = write(
            dir,
            &format!("{}_y.npy", case.name),
            ElemType::I64,
            &[case.n],
            &y,
        );
        let generator = ImageDataGenerator::new(case.options.clone()).unwrap();
        let mut it = NumpyArrayIterator::builder(x)
            .generator(generator)
            .y(y)
            .batch_size(case.batch_size)
            .order(case.order)
            .shard(case.shard.0, case.shard.1)
            .seed(20261206)
            .build()
            .unwrap();
        let mut pinned = BTreeMap::new();
        for &(epoch, batch) in case.batches {
            it.set_position(npyflow::Position { epoch, batch });
            let b = it.next_batch().unwrap();
            let images = match b.dtype() {
                OutputDtype::F32 => b
                    .images::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
                OutputDtype::F64 => b
                    .images::<f64>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
                other => unreachable!("golden cases produce float32 or float64, not {other:?}"),
            };
            let y: Vec<i64> = b
                .y()
                .unwrap()
                .view::<i64>()
                .unwrap()
                .iter()
                .copied()
                .collect();
            pinned.insert(
                format!("epoch={epoch} batch={batch}"),
                json!({
                    "shape": b.shape(),
                    "indices": b.indices(),
                    "y": y,
                    "images_sha256": sha256(&images),
                }),
            );
        }
        out.insert(case.name.to_string(), json!(pinned));
    }
    json!(out)
}

fn everything() -> Value {
    let dir = tempfile::tempdir().unwrap();
    json!({
        "about": "npyflow's reproducibility pins; regenerate with NPYFLOW_BLESS=1 cargo test --test integration golden (a deliberate change only)",
        "permutations": permutations(),
        "streams": streams(),
        "transforms": transforms(),
        "batches": batches(dir.path()),
    })
}

/// Compares the whole rendering exactly; a failure names the section and
/// the line that moved.
#[test]
fn the_same_seed_gives_the_pinned_values() {
    let now = everything();
    let path = fixture_path();
    if std::env::var_os("NPYFLOW_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = serde_json::to_string_pretty(&now).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (generate it with NPYFLOW_BLESS=1)", path.display()));
    // Compared as the text the bless step writes, which is exact: serde_json
    // (without its `float_roundtrip` feature) may parse a 17-digit number
    // one ulp off, so parsed values could differ where nothing moved.
    let rendered = serde_json::to_string_pretty(&now).unwrap() + "\n";
    if rendered == text {
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    let (line, (was, is)) = lines
        .iter()
        .zip(rendered.lines())
        .enumerate()
        .find(|(_, (a, b))| *a != b)
        .map_or((lines.len(), ("(end)", "(more lines)")), |(i, (a, b))| {
            (i, (*a, b))
        });
    // The top-level section the line belongs to ("permutations", ...).
    let section = lines[..line.min(lines.len())]
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("  \"")?.split('"').next())
        .unwrap_or("?");
    panic!(
        "{section} moved: {}:{}: pinned `{}`, now `{}`",
        path.display(),
        line + 1,
        was.trim(),
        is.trim()
    );
}
