//! Files the benchmark writes (CSV, PNG) appear complete or not at all:
//! written to a temporary file in the destination's folder, then renamed
//! over it, with the permissions a plain `open(O_CREAT)` would give under
//! the process's umask (0644 under umask 022, as `np.save` gives), not the
//! 0600 of a temporary file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `path` through `write` atomically: nothing appears at `path`
/// unless `write` succeeds; an existing file is replaced in one rename.
///
/// # Errors
/// The folder is not writable, `write` fails, or the rename fails.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    write(tmp.as_file_mut())?;
    let file = tmp.as_file_mut();
    file.flush().map_err(|e| Error::io(path, e))?;
    set_mode_from_umask(file).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// `0666 & !umask`, the umask read from `/proc/self/status` (setting it to
/// read it back would race with other threads creating files).
#[cfg(unix)]
fn set_mode_from_umask(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = 0o666 & !umask();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode_from_umask(_: &File) -> std::io::Result<()> {
    Ok(())
}

/// The process's umask; 022, the usual one, where the kernel does not say
/// (Linux before 4.7).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_umask(&s))
        .unwrap_or(0o022)
}

fn parse_umask(status: &str) -> Option<u32> {
    let v = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(v.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_umask_line_parses_as_octal() {
        assert_eq!(
            parse_umask("Name:\tx\nUmask:\t0022\nState:\tR\n"),
            Some(0o022)
        );
        assert_eq!(parse_umask("Umask:\t0077\n"), Some(0o077));
        assert_eq!(parse_umask("State:\tR\n"), None);
    }

    #[test]
    fn a_file_appears_whole_with_the_umask_mode_or_not_at_all() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write_atomic(&path, |f| {
            f.write_all(b"a,b\n").map_err(|e| Error::io("x", e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a,b\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
        // A failing write leaves the old file and no temporary behind.
        let failed = write_atomic(&path, |f| {
            f.write_all(b"partial").unwrap();
            Err(Error::io("x", std::io::ErrorKind::Other.into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"a,b\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
