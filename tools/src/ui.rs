//! Output plumbing shared by the subcommands: errors on one line, broken
//! pipes, progress bars, human-readable sizes, JSON on stdout.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Settings every subcommand shares.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    /// Hide progress bars.
    pub quiet: bool,
}

/// What a progress bar counts.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    /// Items (images, samples, batches): `123/456`.
    Items,
    /// Bytes: `12.0 MiB/45.0 MiB`.
    Bytes,
}

impl Ui {
    /// A progress bar on stderr. indicatif hides it when stderr is not a
    /// terminal, so pipes and test harnesses see no escape codes; `--quiet`
    /// hides it everywhere. Until its length is known (`len` 0), it shows
    /// the message and the time elapsed, not an empty `0/0` bar.
    pub fn bar(&self, len: u64, message: &str, unit: Unit) -> Bar {
        if self.quiet {
            return Bar {
                pb: ProgressBar::hidden(),
                unit,
                sized: AtomicBool::new(true),
            };
        }
        // Styled before it can draw: indicatif's default style would show a
        // full bar for a length of 0.
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        pb.set_message(message.to_string());
        let bar = Bar {
            pb,
            unit,
            sized: AtomicBool::new(false),
        };
        if len > 0 {
            bar.show_counts();
        } else if let Ok(style) = ProgressStyle::with_template("{msg:>12} {spinner} {elapsed}") {
            bar.pb.set_style(style);
        }
        bar.pb.set_draw_target(ProgressDrawTarget::stderr());
        bar.pb.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A spinner for work of unknown length.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            pb.set_style(style);
        }
        pb.set_message(message.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }
}

/// A progress bar (see [`Ui::bar`]).
pub struct Bar {
    pb: ProgressBar,
    unit: Unit,
    /// Whether the counting style is on (set once the length is known).
    sized: AtomicBool,
}

/// A rate for the bar: whole items (`1,392/s`) or binary bytes (`12.3 MiB/s`).
fn rate(unit: Unit, per_sec: f64) -> String {
    let v = if per_sec.is_finite() {
        per_sec.max(0.0)
    } else {
        0.0
    };
    match unit {
        Unit::Items => format!("{}/s", indicatif::HumanCount(v.round() as u64)),
        Unit::Bytes => format!("{}/s", indicatif::BinaryBytes(v as u64)),
    }
}

impl Bar {
    fn show_counts(&self) {
        if self.sized.swap(true, Ordering::Relaxed) {
            return;
        }
        let counts = match self.unit {
            Unit::Items => "{human_pos}/{human_len}",
            Unit::Bytes => "{bytes}/{total_bytes}",
        };
        let template = format!("{{msg:>12}} [{{bar:32}}] {counts} ({{rate}}, {{eta}} left)");
        let unit = self.unit;
        if let Ok(style) = ProgressStyle::with_template(&template) {
            let style = style
                .with_key(
                    "rate",
                    move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&rate(unit, s.per_sec()));
                    },
                )
                .progress_chars("=> ");
            self.pb.set_style(style);
        }
    }

    /// Sets the total; the bar appears once it is known.
    pub fn set_length(&self, len: u64) {
        self.pb.set_length(len);
        if len > 0 {
            self.show_counts();
        }
    }

    /// Sets the position.
    pub fn set_position(&self, pos: u64) {
        self.pb.set_position(pos);
    }

    /// Advances the position.
    pub fn inc(&self, delta: u64) {
        self.pb.inc(delta);
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: impl AsRef<str>) {
        self.pb.println(line);
    }

    /// Removes the bar.
    pub fn finish_and_clear(&self) {
        self.pb.finish_and_clear();
    }
}

/// An error whose message was already printed (one line per failed file);
/// `main` only turns it into exit status 2.
#[derive(Debug)]
pub struct AlreadyReported;

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors were reported above")
    }
}

impl std::error::Error for AlreadyReported {}

/// Prints a per-item error the way `main` prints a fatal one.
pub fn report(e: &anyhow::Error) {
    eprintln!("npyflow: {}", one_line(e));
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Writes `text` (plus a newline) on stdout; a closed pipe surfaces as an
/// `io::Error` that `main` treats as success.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// True when the error chain holds a broken pipe on stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
    })
}

/// The error and its causes on one line (`context: cause: cause`), with any
/// line breaks inside messages folded into spaces.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // npyflow's errors already quote their source's message; skip
        // causes whose text the line already holds.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reports a clap parse failure: help and version go to stdout with status
/// 0; usage errors become one `npyflow: ...` line and status 2.
pub fn clap_exit(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let text = e.render().to_string();
            let mut parts = Vec::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if line.starts_with("Usage:") || line.starts_with("For more information") {
                    break;
                }
                parts.push(line.trim_start_matches("error: ").to_string());
            }
            let hint = text
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("Usage: ")
                        .map(|u| u.split_whitespace().take(3).collect::<Vec<_>>())
                })
                .map(|words| {
                    let cmd: Vec<&str> = words
                        .into_iter()
                        .take_while(|w| !w.starts_with(['[', '<', '-']))
                        .collect();
                    format!(" (see `{} --help`)", cmd.join(" "))
                })
                .unwrap_or_default();
            eprintln!("npyflow: {}{hint}", parts.join(" "));
            ExitCode::from(2)
        }
    }
}

/// What the residency chart's cells mean, printed once under the charts.
pub fn residency_legend(cells: usize) -> String {
    format!(
        "residency chart: [O o ] = {cells} cells, each 1/{cells} of the data: O cached, o partly cached, blank not cached"
    )
}

/// Bytes with a binary unit, e.g. `12.3 MiB`.
pub fn bytes(b: u64) -> String {
    indicatif::BinaryBytes(b).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_whole_items_or_binary_bytes() {
        assert_eq!(rate(Unit::Items, 1392.5311), "1,393/s");
        assert_eq!(rate(Unit::Items, 0.4), "0/s");
        assert_eq!(rate(Unit::Items, f64::NAN), "0/s");
        assert_eq!(rate(Unit::Bytes, 12.5 * 1024.0 * 1024.0), "12.50 MiB/s");
    }
}
