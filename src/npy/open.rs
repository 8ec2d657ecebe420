//! Opening an input file: the one checked open every reader goes through
//! (arrays, archives, raw files, the cache helpers, the converters), and its
//! messages for what is not a regular file.

use std::fs::File;
use std::path::Path;

use crate::{sys, Error, ErrorKind, Result};

/// Opens `path` for reading and returns it with its length; a folder is an
/// error that says so (and names the `.npy` files in it), where the OS
/// would only say "No such device" when it is mapped.
///
/// Anything but a regular file is [`ErrorKind::NotAFile`]: a FIFO would
/// block the open (or the first read) until a writer appears, a device has
/// no length and may never end. The open itself never blocks (see
/// [`sys::open_nonblocking`]) and the type checked is that of the file
/// opened, so a path swapped in between cannot slip a FIFO through.
pub(crate) fn open_data_file(path: &Path) -> Result<(File, u64)> {
    let file = sys::open_nonblocking(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        // Of kind `IsADirectory`, so bindings can raise their own
        // "is a directory" error (Python: IsADirectoryError) with this text.
        let e = std::io::Error::new(std::io::ErrorKind::IsADirectory, folder_message(path));
        return Err(Error::io(path, e));
    }
    if !meta.is_file() {
        return Err(ErrorKind::NotAFile {
            path: path.to_path_buf(),
            file_type: file_type_name(&meta.file_type()),
        }
        .into());
    }
    sys::clear_nonblocking(&file).map_err(|e| Error::io(path, e))?;
    Ok((file, meta.len()))
}

/// What a file that is neither a regular file nor a folder is, for messages.
fn file_type_name(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = t;
    "a special file"
}

/// "is a folder, not a file", with the arrays it holds as suggestions.
fn folder_message(dir: &Path) -> String {
    let mut arrays: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| (n.ends_with(".npy") || n.ends_with(".npz")) && !n.starts_with('.'))
        .collect();
    arrays.sort();
    // The images of a converted folder first: `convert images` writes x.npy.
    if let Some(i) = arrays.iter().position(|n| n == "x.npy") {
        let x = arrays.remove(i);
        arrays.insert(0, x);
    }
    match arrays.first() {
        None => "is a folder, not a .npy file".to_string(),
        Some(first) => {
            let also = match &arrays[1..] {
                [] => String::new(),
                rest @ [_, ..] if rest.len() <= 3 => {
                    format!(" (it also holds {})", rest.join(", "))
                }
                rest => format!(
                    " (it also holds {} and {} more)",
                    rest[..2].join(", "),
                    rest.len() - 2
                ),
            };
            format!(
                "is a folder, not a .npy file; did you mean {}?{also}",
                dir.join(first).display()
            )
        }
    }
}
