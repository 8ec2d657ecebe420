//! The measuring child: memory-limited cells run in a fresh process inside
//! a memory cgroup, because a cgroup limit applies to a whole process (the
//! parent has already cached, allocated and mapped things a limited run
//! must not inherit).
//!
//! The running program is executed again (`/proc/self/exe`) through
//! [`MemoryCgroup::command`], with the job in an environment variable; its
//! `main` calls [`child_main`] first, which runs the cells and prints one
//! JSON row per line on stdout. The parent reads the rows as they come and
//! turns whatever did not arrive into a row that says why (the OOM killer,
//! a crash, an error on stderr).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cell::run_cell;
use crate::cgroup::MemoryCgroup;
use crate::config::{BenchConfig, Cell};
use crate::error::{Error, ErrorKind, Result};
use crate::row::{BenchRow, RowStatus};

/// The environment variable that turns a re-executed program into the
/// measuring child of a cgroup run.
const CHILD_ENV: &str = "NPYFLOW_BENCH_CHILD";
/// Prefix of the child's result lines on stdout (anything else is ignored).
const ROW_PREFIX: &str = "npyflow-bench-row ";
/// Lines of the child's stderr kept to explain a failure.
const STDERR_LINES: usize = 20;

/// What the child is asked to do.
#[derive(Serialize, Deserialize)]
struct ChildJob {
    path: PathBuf,
    config: BenchConfig,
    limit: u64,
    /// The cgroup's folder name, which the child checks it is in before
    /// measuring: a row labelled "cgroup" must have run under the limit.
    cgroup: String,
    cells: Vec<Cell>,
}

/// When this process is the measuring child of a cgroup run, runs the cells
/// it was given, prints their rows, and returns the exit code; otherwise
/// returns `None` at once. Every program that runs the matrix calls it
/// first thing in `main`.
pub fn child_main() -> Option<i32> {
    let job = std::env::var(CHILD_ENV).ok()?;
    // The grandchildren of a measuring child (none today) must not measure.
    std::env::remove_var(CHILD_ENV);
    Some(match run_job(&job) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("npyflow bench child: {e}");
            2
        }
    })
}

fn run_job(job: &str) -> Result<()> {
    let job: ChildJob = serde_json::from_str(job)?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| Error::io("/proc/self/cgroup", e))?;
    if !own
        .lines()
        .any(|l| l.ends_with(&format!("/{}", job.cgroup)))
    {
        return Err(ErrorKind::Child {
            exe: std::env::current_exe().unwrap_or_default(),
            message: format!("not inside the memory cgroup {}", job.cgroup),
        }
        .into());
    }
    let stdout = std::io::stdout();
    for cell in job.cells {
        let row = run_cell(&job.path, cell, &job.config, Some(job.limit))?;
        let json = serde_json::to_string(&row)?;
        let mut out = stdout.lock();
        writeln!(out, "{ROW_PREFIX}{json}")
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("stdout", e))?;
    }
    Ok(())
}

/// Runs `cells` in a child inside `cg`, calling `on_row` as each row
/// arrives; cells the child did not report come back as failed rows with
/// the reason. A child still running after `deadline` is killed.
///
/// # Errors
/// The program cannot be re-executed.
pub(crate) fn run_in_cgroup(
    cg: &MemoryCgroup,
    path: &std::path::Path,
    config: &BenchConfig,
    cells: &[Cell],
    on_row: &mut dyn FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    let exe = std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))?;
    let job = serde_json::to_string(&ChildJob {
        path: path.to_path_buf(),
        config: config.clone(),
        limit: cg.limit(),
        cgroup: cg.name(),
        cells: cells.to_vec(),
    })?;
    let child_error = |message: String| {
        Error::from(ErrorKind::Child {
            exe: exe.clone(),
            message,
        })
    };
    let mut child = cg
        .command(&exe)
        .env(CHILD_ENV, job)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| child_error(format!("cannot start: {e}")))?;
    let stderr = collect_stderr(&mut child);
    let lines = read_lines(&mut child);
    // Each cell stops itself at the time limit; the slack covers eviction,
    // warming and a slow start under memory pressure.
    let deadline =
        Instant::now() + (config.time_limit + Duration::from_secs(60)) * cells.len() as u32;
    let mut rows = Vec::new();
    let mut killed_at_deadline = false;
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(row) = line
                    .strip_prefix(ROW_PREFIX)
                    .and_then(|json| serde_json::from_str::<BenchRow>(json).ok())
                {
                    on_row(&row);
                    rows.push(row);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline && !killed_at_deadline {
                    let _ = child.kill();
                    killed_at_deadline = true;
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| child_error(format!("cannot wait: {e}")))?;
    let stderr = stderr.join().unwrap_or_default();
    let reason = if killed_at_deadline {
        format!(
            "still running after {:.0} s, stopped",
            (config.time_limit + Duration::from_secs(60)).as_secs_f64() * cells.len() as f64
        )
    } else {
        why_missing(cg, status, &stderr)
    };
    for cell in cells {
        if !rows.iter().any(|r| r.cell == *cell) {
            let row = BenchRow::missing(*cell, Some(cg.limit()), RowStatus::Failed, reason.clone());
            on_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The child's stdout, line by line, on a channel (so the parent can watch
/// the clock while it waits).
fn read_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// The last lines of the child's stderr, read on a thread so a chatty child
/// never blocks on a full pipe.
fn collect_stderr(child: &mut Child) -> std::thread::JoinHandle<Vec<String>> {
    let err = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut err) = err {
            let _ = err.read_to_string(&mut text);
        }
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        lines[lines.len().saturating_sub(STDERR_LINES)..].to_vec()
    })
}

/// Why the child stopped before reporting every cell.
fn why_missing(cg: &MemoryCgroup, status: ExitStatus, stderr: &[String]) -> String {
    let mib = |b: u64| b >> 20;
    if cg.oom_kills().unwrap_or(0) > 0 {
        let peak = cg
            .peak_bytes()
            .map(|p| format!(", peak {} MiB", mib(p)))
            .unwrap_or_default();
        return format!("killed by the OOM killer at {} MiB{peak}", mib(cg.limit()));
    }
    if signal(status) == Some(9) {
        return format!(
            "killed by SIGKILL under the {} MiB cap (the OOM killer or another process)",
            mib(cg.limit())
        );
    }
    match stderr
        .iter()
        .rev()
        .find(|l| l.contains("npyflow bench child:"))
    {
        Some(line) => line.trim_start_matches("npyflow bench child: ").to_string(),
        None => match stderr.last() {
            Some(line) => format!("the measuring child exited with {status}: {line}"),
            None => format!("the measuring child exited with {status}"),
        },
    }
}

#[cfg(unix)]
fn signal(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal(_: ExitStatus) -> Option<i32> {
    None
}
