//! Ctrl-C (SIGINT), SIGTERM and SIGHUP: the temporary files of writes in
//! progress are removed, one line on stderr says what this run kept, and
//! the process exits with 128 + the signal's number (130 for Ctrl-C).
//!
//! A handler thread (signal-hook) does the work outside signal context: it
//! calls [`npyflow::npy::abandon_writes`], which removes every temporary
//! file while no write can complete, and ends the process from inside it.
//! What was kept is told by the outputs each subcommand declares with
//! [`watch_file`] / [`watch_dir`] before writing: a declared file whose
//! identity (device, inode) changed since then was renamed into place by
//! this run, complete.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A file's identity: a rename into place gives the destination the
/// temporary file's inode, never the old one's (both existed at once).
type Identity = (u64, u64);

enum Watched {
    File {
        path: PathBuf,
        before: Option<Identity>,
    },
    Dir {
        path: PathBuf,
        before: HashMap<OsString, Identity>,
    },
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());

/// Set when a signal is being handled: the main thread then waits for the
/// handler to end the process instead of finishing on its own (its work
/// may be failing only because the handler is tearing it down).
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called by `main` before it exits: when a signal is being handled, waits
/// for the handler to end the process, so the exit status and the last
/// line are the handler's.
pub fn yield_to_handler() {
    if SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Cleanups that must run before the process ends on a signal (the
/// benchmark's memory cgroups).
static CLEANUPS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Runs `cleanup` if a signal ends the run.
pub fn on_signal(cleanup: fn()) {
    CLEANUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(cleanup);
}

fn watched() -> std::sync::MutexGuard<'static, Vec<Watched>> {
    WATCHED.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(path: &Path) -> Option<Identity> {
    let m = fs::symlink_metadata(path).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((m.len(), t.as_nanos() as u64))
}

/// Visible entries of `dir` (not the hidden temporary files) by identity.
fn entries(dir: &Path) -> HashMap<OsString, Identity> {
    let mut out = HashMap::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if let Some(id) = identity(&e.path()) {
                out.insert(name, id);
            }
        }
    }
    out
}

/// Declares a file this run may write.
pub fn watch_file(path: &Path) {
    let before = identity(path);
    watched().push(Watched::File {
        path: path.to_path_buf(),
        before,
    });
}

/// Declares a folder this run may write files into (a conversion's output
/// folder, `--save-to-dir`).
pub fn watch_dir(path: &Path) {
    let before = entries(path);
    watched().push(Watched::Dir {
        path: path.to_path_buf(),
        before,
    });
}

/// The declared outputs this run wrote: files by path, and for folders
/// with many new files, a count.
fn kept() -> Vec<String> {
    let mut out = Vec::new();
    for w in watched().iter() {
        match w {
            Watched::File { path, before } => {
                let now = identity(path);
                if now.is_some() && now != *before {
                    out.push(path.display().to_string());
                }
            }
            Watched::Dir { path, before } => {
                let mut new: Vec<PathBuf> = entries(path)
                    .into_iter()
                    .filter(|(name, id)| before.get(name) != Some(id))
                    .map(|(name, _)| path.join(name))
                    .collect();
                new.sort();
                if new.len() > 4 {
                    out.push(format!("{} files in {}", new.len(), path.display()));
                } else {
                    out.extend(new.iter().map(|p| p.display().to_string()));
                }
            }
        }
    }
    out.dedup();
    out
}

/// The line printed when signal `name` ends the run.
fn summary(name: &str, kept: &[String], unwritten: &[PathBuf]) -> String {
    let mut line = format!("{name}: ");
    line.push_str(&if kept.is_empty() {
        "kept nothing new".to_string()
    } else {
        format!("kept {} (complete)", kept.join(", "))
    });
    if !unwritten.is_empty() {
        let list: Vec<String> = unwritten
            .iter()
            .map(|p| {
                if p.exists() {
                    format!("{} (left as it was)", p.display())
                } else {
                    p.display().to_string()
                }
            })
            .collect();
        line.push_str(&format!(
            "; not written: {}, {} removed",
            list.join(", "),
            if unwritten.len() > 1 {
                "their partial files"
            } else {
                "its partial file"
            }
        ));
    }
    line
}

/// Installs the handler. Call once, before any work.
///
/// # Errors
/// When the signal handlers or the thread cannot be set up.
#[cfg(unix)]
pub fn install(quiet: bool) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("npyflow-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
                let name = match signal {
                    SIGINT => "interrupted",
                    SIGTERM => "terminated (SIGTERM)",
                    _ => "hung up (SIGHUP)",
                };
                npyflow::npy::abandon_writes(|unwritten| {
                    for cleanup in CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        cleanup();
                    }
                    let line = summary(name, &kept(), unwritten);
                    let mut err = std::io::stderr().lock();
                    if !quiet && err.is_terminal() {
                        // Start on a clean line: a progress bar may be drawn there.
                        let _ = write!(err, "\r\x1b[2K");
                    }
                    let _ = writeln!(err, "npyflow: {line}");
                    std::process::exit(128 + signal)
                })
            }
        })?;
    Ok(())
}

/// Installs nothing where there are no Unix signals (the default Ctrl-C
/// handling applies; a later run removes what it left).
#[cfg(not(unix))]
pub fn install(_quiet: bool) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_was_kept_and_what_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("x.npy");
        fs::write(&existing, b"old").unwrap();
        let missing = dir.path().join("n.npy");
        assert_eq!(
            summary("interrupted", &[], &[]),
            "interrupted: kept nothing new"
        );
        assert_eq!(
            summary("interrupted", &["d/y.npy".into(), "d/classes.txt".into()], std::slice::from_ref(&missing)),
            format!(
                "interrupted: kept d/y.npy, d/classes.txt (complete); not written: {}, its partial file removed",
                missing.display()
            )
        );
        assert_eq!(
            summary("terminated (SIGTERM)", &[], &[existing.clone(), missing.clone()]),
            format!(
                "terminated (SIGTERM): kept nothing new; not written: {} (left as it was), {}, their partial files removed",
                existing.display(),
                missing.display()
            )
        );
    }
}
