//! `npyflow info FILE...`: what a `.npy` header says, where the data sits,
//! and how much of it is in the page cache; every member of an `.npz`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Value};

use npyflow::cache::residency_of;
use npyflow::convert::npz_member_header;
use npyflow::npy::{ByteOrder, Header, OpenOptions};
use npyflow::{NpyArray, NpzArchive};

use crate::ui::{self, Ui, Unit};

/// Arguments of `info`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  npyflow info x.npy y.npy\n  npyflow info stats.npz --json\n  npyflow info data.npz --verify"
)]
pub struct Args {
    /// .npy or .npz files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Machine-readable output: a JSON array with one object per array.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    json: bool,
    /// Read every data byte: check each .npz member against its CRC-32
    /// (inflating compressed ones); for a .npy, which has no checksum, check
    /// that the whole data region reads. Exits with status 2 on damage.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    verify: bool,
    /// Cells in the residency chart.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = crate::opts::whole::<usize>)]
    chart_width: usize,
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let mut entries = Vec::new();
    let mut failed = false;
    let verify = args.verify.then_some(ui);
    for path in &args.files {
        match describe_file(path, args.chart_width, verify) {
            Ok(found) => {
                if !args.json {
                    for e in &found {
                        ui::print(&text(e))?;
                    }
                }
                entries.extend(found);
            }
            Err(e) => {
                ui::report(&e);
                failed = true;
            }
        }
    }
    if !args.json && entries.iter().any(|e| e["residency"]["chart"].is_string()) {
        ui::print(&crate::ui::residency_legend(args.chart_width))?;
    }
    if args.json {
        ui::print_json(&Value::Array(entries))?;
    }
    if failed {
        return Err(ui::AlreadyReported.into());
    }
    Ok(())
}

fn is_zip(path: &Path) -> anyhow::Result<bool> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // The library's message for a folder (naming the arrays in it), a
        // FIFO or a device (which a plain open here would block on or read
        // forever), a missing file or a symlink loop.
        NpyArray::open(path)?;
    }
    let mut head = [0u8; 4];
    let mut f = File::open(path).with_context(|| format!("{}", path.display()))?;
    let n = f
        .read(&mut head)
        .with_context(|| format!("{}", path.display()))?;
    Ok(n == 4 && head[..2] == *b"PK")
}

/// A byte-counting progress bar for `--verify`, cleared when dropped.
struct VerifyBar(crate::ui::Bar);

impl Drop for VerifyBar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn verify_bar(ui: &Ui, total: u64, path: &Path) -> VerifyBar {
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    VerifyBar(ui.bar(total, &format!("verifying {name}"), Unit::Bytes))
}

fn describe_file(path: &Path, chart: usize, verify: Option<&Ui>) -> anyhow::Result<Vec<Value>> {
    let options = OpenOptions {
        allow_fortran: true,
        ..OpenOptions::default()
    };
    if !is_zip(path)? {
        let a = NpyArray::open_with(path, options)?;
        let mut v = describe_array(&a, None, chart);
        if let Some(ui) = verify {
            let bar = verify_bar(ui, a.data_len() as u64, path);
            let bytes = a.verify(|done, _| bar.0.set_position(done))?;
            v["verified"] = json!({ "check": "read", "bytes": bytes });
        }
        return Ok(vec![v]);
    }
    let archive = NpzArchive::open_with(path, options)?;
    if let Some(ui) = verify {
        let total: u64 = archive.members().iter().map(|m| m.size).sum();
        let bar = verify_bar(ui, total, path);
        archive.verify(|done, _| bar.0.set_position(done))?;
    }
    let mut out = Vec::new();
    for m in archive.members() {
        let name = m.name.strip_suffix(".npy").unwrap_or(&m.name);
        if m.compressed {
            let h = npz_member_header(path, &m.name)?;
            let mut v = header_fields(&h);
            v["file"] = json!(path.display().to_string());
            v["member"] = json!(name);
            v["compressed"] = json!(true);
            v["file_bytes"] = json!(m.size);
            out.push(v);
        } else {
            out.push(describe_array(&archive.array(&m.name)?, Some(name), chart));
        }
        if verify.is_some() {
            if let Some(v) = out.last_mut() {
                v["verified"] = json!({ "check": "crc32", "bytes": m.size, "crc32": format!("{:08x}", m.crc32) });
            }
        }
    }
    Ok(out)
}

/// The fields every array has, from its header alone.
fn header_fields(h: &Header) -> Value {
    let order = match (h.dtype.size(), h.dtype.order) {
        (1, _) => "not applicable",
        (_, ByteOrder::Little) => "little",
        (_, ByteOrder::Big) => "big",
    };
    let rows = h.shape.first().copied().unwrap_or(1);
    let row_bytes = h.shape.iter().skip(1).product::<usize>() * h.dtype.size();
    json!({
        "format_version": format!("{}.{}", h.version.0, h.version.1),
        "dtype": h.dtype.elem.name(),
        "descr": h.dtype.descr(),
        "byte_order": order,
        "native_byte_order": h.dtype.is_native(),
        "shape": h.shape,
        "order": if h.fortran_order { "F" } else { "C" },
        "rows": rows,
        "row_bytes": row_bytes,
        "data_bytes": h.data_len,
        "compressed": false,
        "data_offset": Value::Null,
        "alignment": Value::Null,
        "aligned_for_dtype": Value::Null,
        "residency": Value::Null,
    })
}

fn describe_array(a: &NpyArray, member: Option<&str>, chart: usize) -> Value {
    let mut v = header_fields(a.header());
    v["file"] = json!(a.path().display().to_string());
    v["member"] = json!(member);
    let offset = a.data_offset();
    // The largest power of two dividing the offset (capped at a page): what
    // a zero-copy view or O_DIRECT reader can rely on.
    let alignment = if offset == 0 {
        4096
    } else {
        (1u64 << offset.trailing_zeros()).min(4096)
    };
    v["data_offset"] = json!(offset);
    v["alignment"] = json!(alignment);
    v["aligned_for_dtype"] = json!(offset.is_multiple_of(a.dtype().size() as u64));
    v["file_bytes"] = json!(std::fs::metadata(a.path()).map(|m| m.len()).ok());
    v["residency"] = match residency_of(a) {
        Ok(r) => json!({
            "fraction": r.fraction(),
            "resident_bytes": r.resident_bytes(),
            "pages": r.pages,
            "resident_pages": r.resident,
            "page_size": r.page_size,
            "chart": r.chart(chart),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    v
}

fn text(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let name = match v["member"].as_str() {
        Some(m) => format!("{}:{m}", s("file")),
        None => s("file"),
    };
    let shape: Vec<String> = v["shape"]
        .as_array()
        .map(|a| a.iter().map(|d| d.to_string()).collect())
        .unwrap_or_default();
    let shape = if shape.len() == 1 {
        format!("({},)", shape[0])
    } else {
        format!("({})", shape.join(", "))
    };
    let mut lines = vec![
        name,
        format!("  format      .npy {}", s("format_version")),
        format!(
            "  dtype       {} ({}), byte order {}",
            s("dtype"),
            s("descr"),
            s("byte_order")
        ),
        format!(
            "  shape       {shape}, {} order, {} rows of {} bytes",
            s("order"),
            n("rows"),
            n("row_bytes")
        ),
    ];
    let verified = &v["verified"];
    let verified = match verified["check"].as_str() {
        Some("crc32") => Some(format!(
            "  verified    CRC-32 {} matches the archive ({} read)",
            verified["crc32"].as_str().unwrap_or(""),
            ui::bytes(verified["bytes"].as_u64().unwrap_or(0))
        )),
        Some(_) => Some(format!(
            "  verified    all {} of data read (a .npy has no checksum)",
            ui::bytes(verified["bytes"].as_u64().unwrap_or(0))
        )),
        None => None,
    };
    if v["compressed"].as_bool() == Some(true) {
        lines.push(format!(
            "  data        compressed member ({} uncompressed); extract it with `npyflow convert npz`",
            ui::bytes(n("file_bytes"))
        ));
        lines.push(format!("  size        {} data", ui::bytes(n("data_bytes"))));
        lines.extend(verified);
        return lines.join("\n");
    }
    let aligned = if v["aligned_for_dtype"].as_bool() == Some(true) {
        "ok for the dtype"
    } else {
        "not aligned for the dtype: read by copying, no zero-copy view"
    };
    lines.push(format!(
        "  data        offset {}, {}-byte aligned ({aligned})",
        n("data_offset"),
        n("alignment")
    ));
    lines.push(format!(
        "  size        {} data, {} file",
        ui::bytes(n("data_bytes")),
        ui::bytes(n("file_bytes"))
    ));
    let r = &v["residency"];
    if let Some(f) = r["fraction"].as_f64() {
        lines.push(format!(
            "  resident    {:.1}% {} ({})",
            f * 100.0,
            r["chart"].as_str().unwrap_or(""),
            ui::bytes(r["resident_bytes"].as_u64().unwrap_or(0))
        ));
    } else if let Some(e) = r["error"].as_str() {
        lines.push(format!("  resident    unknown ({e})"));
    }
    lines.extend(verified);
    if v["order"] == "F" {
        lines.push(format!(
            "  note        Fortran order: rewrite with `npyflow convert array {} OUT.npy`",
            s("file")
        ));
    } else if v["native_byte_order"] == false {
        lines.push("  note        non-native byte order: converted per sample; `npyflow convert array` rewrites it".into());
    }
    lines.join("\n")
}
