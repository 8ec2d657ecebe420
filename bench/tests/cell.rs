//! One cell, the report built from it, its table line and its CSV, on a
//! file written to the real disk (`CARGO_TARGET_TMPDIR`), where eviction
//! means something.

use npyflow::npy::{write_npy, ElemType};
use npyflow::NpyArray;
use npyflow_bench::reference::pages_per_sample;
use npyflow_bench::{
    run_cell, table, write_csv, AdviceMode, BenchConfig, BenchOrder, CacheState, Cell, Device,
    FileInfo, Matrix, MemoryLimit, MemoryMode, References, Report, RowStatus,
};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn pages_per_sample_follows_the_row_geometry() {
    let dir = tempdir();
    let path = dir.path().join("g.npy");
    write_npy(&path, ElemType::U8, &[64, 3072], &vec![1u8; 64 * 3072]).unwrap();
    let x = NpyArray::open(&path).unwrap();
    // Rows of 3072 bytes repeat their page pattern every 4 rows.
    let page = 4096u64;
    let spans: u64 = (0..4)
        .map(|i| {
            let s = x.data_offset() + i * 3072;
            (s + 3071) / page - s / page + 1
        })
        .sum();
    assert_eq!(pages_per_sample(&x, page), spans as f64 / 4.0);
}

#[test]
fn a_cell_runs_a_whole_epoch_and_reports_it() {
    let dir = tempdir();
    let path = dir.path().join("images.npy");
    let (n, row) = (300, 8 * 8 * 3);
    write_npy(&path, ElemType::U8, &[n, 8, 8, 3], &vec![7u8; n * row]).unwrap();
    let config = BenchConfig {
        memory_limit: MemoryLimit::Off,
        block_bytes: 4096,
        threads: 1,
        ..BenchConfig::default()
    };
    let cell = Cell {
        order: BenchOrder::Blocks,
        cache: CacheState::Cold,
        advice: AdviceMode::Matched,
        memory: MemoryMode::Unlimited,
    };
    let r = run_cell(&path, cell, &config, None).unwrap();
    assert_eq!(r.samples, n as u64);
    assert_eq!(r.epoch_fraction, 1.0);
    assert_eq!(r.status, RowStatus::Measured);
    assert!(r.images_per_s > 0.0 && r.skipped.is_none());
    assert_eq!(r.label(), "blocks/cold/matched/unlimited");
    let text = table(std::slice::from_ref(&r));
    assert!(text.lines().nth(1).unwrap().starts_with("blocks"), "{text}");

    // Against a reference of exactly half its speed, the row is at 200%.
    let file = FileInfo::of(&path).unwrap();
    assert_eq!(file.samples, n as u64);
    let refs = References {
        sequential_bytes_per_s: Some(r.images_per_s / 2.0 * row as f64),
        pages_per_sample: 1.0,
        ..References::default()
    };
    let report = Report::new(
        file,
        Device::default(),
        refs,
        Matrix {
            rows: vec![r],
            cap: None,
        },
    );
    let of = report.rows[0].of_reference.unwrap();
    assert!((of - 2.0).abs() < 1e-9, "{of}");
    assert!(report.text().contains("200% seq"), "{}", report.text());

    let csv = dir.path().join("rows.csv");
    write_csv(&report, &csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut reader = csv_lines(&text);
    let header = reader.remove(0);
    assert_eq!(reader.len(), 1);
    assert_eq!(header.len(), reader[0].len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(reader[0][col("samples")], n.to_string());
    assert_eq!(reader[0][col("status")], "measured");
    assert_eq!(reader[0][col("reference")], "sequential");
    assert_eq!(reader[0][col("of_reference")].parse::<f64>().unwrap(), of);
    assert_eq!(config.cells().len(), 12);
}

/// Splits CSV without quoted fields (the rows here have none).
fn csv_lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}
