//! Partial files: how every file npyflow writes appears whole or not at all,
//! and how none is left behind.
//!
//! A write goes to a temporary file in the destination's folder, named
//! `.NAME.XXXXXX.partial` (six random letters or digits), created with the
//! mode a plain `open(O_CREAT, 0666)` gets under the process's umask (0644
//! under umask 022, as `np.save` gives) and holding an advisory lock
//! (`flock`) for its whole life. When complete it is synced and renamed over
//! the destination (same folder, so the rename is atomic). Otherwise it is
//! removed:
//! - when dropped, so on every error path;
//! - by [`abandon_writes`], for a signal handler that ends the process;
//! - by a later write of the same destination, when the process that made
//!   it is gone (SIGKILL, power loss): see [`remove_stale`].
//!
//! Every live partial of the process is in one registry. Creating,
//! renaming and removing a partial hold the registry's lock across the file
//! operation and the registry update, so [`abandon_writes`] sees each
//! destination either renamed into place or still partial (and removes it),
//! never in between.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use tempfile::NamedTempFile;

use crate::{Error, ErrorKind, Result};

/// Random characters between `.NAME.` and `.partial` (tempfile's default).
const RANDOM_LEN: usize = 6;
const SUFFIX: &str = ".partial";

/// The live partials of this process.
#[derive(Default)]
struct Registry {
    next_id: u64,
    /// id → (temporary path, destination).
    live: HashMap<u64, (PathBuf, PathBuf)>,
    /// Set by [`abandon_writes`]: no write may start or complete any more.
    abandoned: bool,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// The registry, locked. A panic while it was held cannot leave it
/// inconsistent (every update is one map operation), so poisoning is ignored.
fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary file being written for a destination.
pub(crate) struct Partial {
    /// `None` only inside `persist` and `drop`.
    file: Option<NamedTempFile>,
    id: u64,
}

impl Partial {
    /// A new partial beside `dest`, without looking for stale ones (for
    /// writers of many small files with unique names, such as
    /// `save_to_dir`, where a folder scan per file would cost more than
    /// the file).
    pub(crate) fn create(dest: &Path) -> Result<Partial> {
        let dir = folder_of(dest);
        let mut guard = registry();
        let reg = guard.get_or_insert_with(Registry::default);
        if reg.abandoned {
            return Err(ErrorKind::Interrupted {
                path: dest.to_path_buf(),
            }
            .into());
        }
        let prefix = format!(".{}.", file_name_of(dest));
        let mut builder = tempfile::Builder::new();
        builder
            .prefix(&prefix)
            .suffix(SUFFIX)
            .rand_bytes(RANDOM_LEN);
        // 0666 before the umask, which `open` applies: the mode any file
        // created the ordinary way gets (tempfile's own default is 0600).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        let file = builder.tempfile_in(&dir).map_err(|e| Error::io(&dir, e))?;
        // A failure to lock (a filesystem without flock) only weakens the
        // stale-file test of other processes, which then leave this file be.
        let _ = crate::sys::try_lock_exclusive(file.as_file());
        let id = reg.next_id;
        reg.next_id += 1;
        reg.live
            .insert(id, (file.path().to_path_buf(), dest.to_path_buf()));
        Ok(Partial {
            file: Some(file),
            id,
        })
    }

    /// A new partial beside `dest`, after removing the stale partials of
    /// `dest` that killed processes left (see [`remove_stale`]).
    pub(crate) fn create_replacing(dest: &Path) -> Result<Partial> {
        let partial = Partial::create(dest)?;
        remove_stale(dest, partial.path());
        Ok(partial)
    }

    fn named(&self) -> &NamedTempFile {
        self.file
            .as_ref()
            .expect("a partial holds its file until consumed")
    }

    fn named_mut(&mut self) -> &mut NamedTempFile {
        self.file
            .as_mut()
            .expect("a partial holds its file until consumed")
    }

    /// The temporary file's path.
    pub(crate) fn path(&self) -> &Path {
        self.named().path()
    }

    /// The open file.
    pub(crate) fn as_file(&self) -> &File {
        self.named().as_file()
    }

    /// The open file, mutably.
    pub(crate) fn as_file_mut(&mut self) -> &mut File {
        self.named_mut().as_file_mut()
    }

    /// A second handle on the same file (its own position).
    pub(crate) fn reopen(&self) -> io::Result<File> {
        self.named().reopen()
    }

    /// Syncs the data and renames the file over `dest`.
    ///
    /// # Errors
    /// I/O errors naming `dest`; [`ErrorKind::Interrupted`] once
    /// [`abandon_writes`] ran (the partial is then already removed).
    pub(crate) fn persist(self, dest: &Path) -> Result<()> {
        persist_all(vec![(self, dest.to_path_buf())])
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let mut guard = registry();
            // Removing the file under the lock: an abandoning handler
            // either finds it registered or finds it gone.
            drop(file);
            if let Some(reg) = guard.as_mut() {
                reg.live.remove(&self.id);
            }
        }
    }
}

impl Write for Partial {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.as_file_mut().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.as_file_mut().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.as_file_mut().flush()
    }
}

impl Seek for Partial {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.as_file_mut().seek(pos)
    }
}

/// Syncs every partial, then renames them over their destinations in
/// order, all under one hold of the registry's lock, so that an abandoning
/// signal handler finds either all of them renamed or none.
///
/// # Errors
/// As [`Partial::persist`]; on an error, the partials not yet renamed are
/// removed.
pub(crate) fn persist_all(partials: Vec<(Partial, PathBuf)>) -> Result<()> {
    for (p, dest) in &partials {
        p.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
    }
    let mut guard = registry();
    let mut files = Vec::with_capacity(partials.len());
    for (mut p, dest) in partials {
        // Taken out of the partial (whose drop then does nothing), so that
        // dropping it below does not take the lock held here.
        if let Some(file) = p.file.take() {
            if let Some(reg) = guard.as_mut() {
                reg.live.remove(&p.id);
            }
            files.push((file, dest));
        }
    }
    if guard.as_ref().is_some_and(|r| r.abandoned) {
        let path = files.first().map(|(_, d)| d.clone()).unwrap_or_default();
        return Err(ErrorKind::Interrupted { path }.into());
    }
    for (file, dest) in files {
        file.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
    }
    Ok(())
}

/// For a signal handler about to end the process: removes the temporary
/// file of every write in progress in this process and runs `then` with
/// their destinations, while no write can start or complete (so `then` can
/// end the process knowing exactly which files were left unwritten).
/// Writes still running fail with [`ErrorKind::Interrupted`] once `then`
/// returns. `then` must not write files through npyflow (it would wait
/// for itself).
///
/// # Examples
/// ```
/// use npyflow::npy::{abandon_writes, NpyWriter, Dtype, ElemType};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("x.npy");
/// let mut w = NpyWriter::create(&path, Dtype::native(ElemType::U8), &[4])?;
/// w.write_bytes(&[1, 2])?;
/// let unwritten = abandon_writes(|dests| dests.to_vec());
/// assert_eq!(unwritten, [path.clone()]);
/// // Nothing at the destination, no temporary file beside it.
/// assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
/// w.write_bytes(&[3, 4])?;
/// assert!(w.finish().is_err());
/// # Ok::<(), npyflow::Error>(())
/// ```
pub fn abandon_writes<R>(then: impl FnOnce(&[PathBuf]) -> R) -> R {
    let mut guard = registry();
    let reg = guard.get_or_insert_with(Registry::default);
    reg.abandoned = true;
    let mut live: Vec<(u64, (PathBuf, PathBuf))> = reg.live.drain().collect();
    live.sort_by_key(|(id, _)| *id);
    let mut dests = Vec::with_capacity(live.len());
    for (_, (tmp, dest)) in live {
        let _ = fs::remove_file(&tmp);
        if !dests.contains(&dest) {
            dests.push(dest);
        }
    }
    then(&dests)
}

fn folder_of(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name_of(dest: &Path) -> String {
    dest.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `name` is the name of a partial of the file named `dest_name`:
/// exactly `.` + `dest_name` + `.` + six ASCII letters or digits + `.partial`.
fn is_partial_name(name: &str, dest_name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix('.')
        .and_then(|r| r.strip_prefix(dest_name))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(SUFFIX))
    else {
        return false;
    };
    rest.len() == RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Removes the partials of `dest` that killed processes left behind, and
/// returns their paths.
///
/// A file is removed only when all of these hold: its name is exactly a
/// partial's name for `dest` (`.NAME.XXXXXX.partial`); it is a regular file
/// (not a link) owned by the same user as `ours`, this process's own new
/// partial; it was last modified before this process started (a writer
/// that is still running modifies its file as it goes); and nobody holds
/// its lock (every live writer holds one; the kernel drops it when the
/// writer dies). Errors (an unreadable folder, a file removed meanwhile)
/// only mean fewer files are removed.
pub(crate) fn remove_stale(dest: &Path, ours: &Path) -> Vec<PathBuf> {
    let dir = folder_of(dest);
    let dest_name = file_name_of(dest);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let owner = fs::metadata(ours).ok().map(|m| owner_of(&m));
    let started = crate::sys::process_start();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if !is_partial_name(name, &dest_name) || path == ours {
            continue;
        }
        if is_stale(&path, owner, started) && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

fn is_stale(path: &Path, owner: Option<u32>, started: SystemTime) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() || owner.is_none() || Some(owner_of(&meta)) != owner {
        return false;
    }
    if !meta.modified().is_ok_and(|t| t < started) {
        return false;
    }
    // Taking the lock proves no live writer holds it; the file is removed
    // while this process holds it.
    File::open(path)
        .and_then(|f| crate::sys::try_lock_exclusive(&f))
        .unwrap_or(false)
}

#[cfg(unix)]
fn owner_of(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.uid()
}

#[cfg(not(unix))]
fn owner_of(_: &fs::Metadata) -> u32 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_partial_names_match() {
        assert!(is_partial_name(".x.npy.a1B2c3.partial", "x.npy"));
        for other in [
            "x.npy",
            ".x.npy.a1B2c.partial",
            ".x.npy.a1B2c34.partial",
            ".x.npy.a1-2c3.partial",
            ".xx.npy.a1B2c3.partial",
            ".x.npy.a1B2c3.partial~",
            "..x.npy.a1B2c3.partial",
            ".y.npy.a1B2c3.partial",
        ] {
            assert!(!is_partial_name(other, "x.npy"), "{other}");
        }
    }

    #[test]
    fn partials_take_the_umask_s_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.npy");
        let p = Partial::create(&dest).unwrap();
        let name = p.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(is_partial_name(&name, "a.npy"), "{name}");
        let umask = fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        let mode = fs::metadata(p.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask);
        p.persist(&dest).unwrap();
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask);
    }

    #[test]
    fn stale_partials_go_live_and_foreign_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.npy");
        let old = SystemTime::now() - std::time::Duration::from_secs(24 * 3600);
        let make = |name: &str| {
            let p = dir.path().join(name);
            fs::write(&p, b"partial").unwrap();
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
            p
        };
        let stale = make(".x.npy.abc123.partial");
        let other_output = make(".y.npy.abc123.partial");
        let not_ours = make(".x.npy.abc123.partial.bak");
        // A live writer elsewhere: it holds the lock.
        let locked = make(".x.npy.zzz999.partial");
        let holder = File::open(&locked).unwrap();
        assert!(crate::sys::try_lock_exclusive(&holder).unwrap());
        // A file modified since this process started.
        let fresh = dir.path().join(".x.npy.new456.partial");
        fs::write(&fresh, b"partial").unwrap();

        let ours = Partial::create_replacing(&dest).unwrap();
        assert!(!stale.exists());
        for kept in [&other_output, &not_ours, &locked, &fresh] {
            assert!(kept.exists(), "{}", kept.display());
        }
        assert!(ours.path().exists());
        drop(ours);
        drop(holder);
    }
}
