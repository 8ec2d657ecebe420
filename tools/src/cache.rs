//! `npyflow cache FILE... --status|--evict|--warm`: vmtouch for datasets.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use npyflow::cache::{evict_file, file_residency, warm_file};

use crate::ui::{self, Ui};

/// Arguments of `cache`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  npyflow cache x.npy                 # residency (the default)\n  npyflow cache x.npy y.npy --evict   # drop them from the page cache\n  npyflow cache x.npy --warm --json   # read it in, report as JSON"
)]
#[command(group(clap::ArgGroup::new("action").args(["status", "evict", "warm"])))]
pub struct Args {
    /// Files (any file; .npy is the usual one).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Report which parts of each file are in the page cache (the default).
    #[arg(long)]
    status: bool,
    /// Evict the files' pages from the page cache (after writing back dirty pages).
    #[arg(long)]
    evict: bool,
    /// Read the files into the page cache.
    #[arg(long)]
    warm: bool,
    /// Machine-readable output: a JSON array with one object per file.
    #[arg(long)]
    json: bool,
    /// Cells in the residency chart.
    #[arg(long, default_value_t = 32, value_name = "N")]
    chart_width: usize,
}

pub fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let action = if args.evict {
        "evict"
    } else if args.warm {
        "warm"
    } else {
        "status"
    };
    let mut out = Vec::new();
    let mut failed = false;
    for path in &args.files {
        let started = Instant::now();
        let result = (|| -> anyhow::Result<Value> {
            let before = file_residency(path)?;
            match action {
                "evict" => evict_file(path)?,
                "warm" => {
                    let spinner = ui.spinner(&format!("warming {}", path.display()));
                    let r = warm_file(path);
                    spinner.finish_and_clear();
                    r?
                }
                _ => {}
            }
            let seconds = started.elapsed().as_secs_f64();
            let r = if action == "status" {
                before.clone()
            } else {
                file_residency(path)?
            };
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            Ok(json!({
                "file": path.display().to_string(),
                "action": action,
                "size": size,
                "pages": r.pages,
                "resident_pages": r.resident,
                "page_size": r.page_size,
                "resident_bytes": r.resident_bytes(),
                "fraction": r.fraction(),
                "fraction_before": before.fraction(),
                "summary": r.summary(args.chart_width),
                "chart": r.chart(args.chart_width),
                "seconds": seconds,
            }))
        })();
        match result {
            Ok(v) => {
                if !args.json {
                    ui::print(&text(&v))?;
                }
                out.push(v);
            }
            Err(e) => {
                ui::report(&e);
                failed = true;
            }
        }
    }
    if args.json {
        ui::print_json(&Value::Array(out))?;
    }
    if failed {
        return Err(ui::AlreadyReported.into());
    }
    Ok(())
}

fn text(v: &Value) -> String {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0) * 100.0;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let mut line = format!(
        "{} {:>6.1}% {}/{} pages {}/{}  {}",
        v["chart"].as_str().unwrap_or(""),
        f("fraction"),
        n("resident_pages"),
        n("pages"),
        ui::bytes(n("resident_bytes")),
        ui::bytes(n("size")),
        v["file"].as_str().unwrap_or("")
    );
    match v["action"].as_str() {
        Some("evict") => line.push_str(&format!("  (evicted: was {:.1}%)", f("fraction_before"))),
        Some("warm") => line.push_str(&format!(
            "  (warmed in {:.2} s: was {:.1}%)",
            v["seconds"].as_f64().unwrap_or(0.0),
            f("fraction_before")
        )),
        _ => {}
    }
    line
}
