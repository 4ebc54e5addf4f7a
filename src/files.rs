//! The files confine itself reads or appends to (profiles, `extends:`
//! targets, `check` arguments, the audit log): regular files only, opened
//! without blocking, read with a size bound (DESIGN.md §4, host-side rules).
//!
//! Opening a FIFO for reading blocks until a writer appears, and reading a
//! device such as /dev/zero never ends: either would hang confine, or grow
//! it until the OOM killer steps in. So every such file is opened
//! `O_NONBLOCK` (a FIFO then opens at once), checked with `fstat` on that
//! descriptor, and refused unless it is a regular file, before a byte is
//! read or written.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file confine reads was refused.
#[derive(Debug)]
pub enum FileError {
    /// open, fstat or read failed.
    Io(io::Error),
    /// Not a regular file: what it is instead.
    NotRegular(&'static str),
    /// Larger than `limit` bytes.
    TooLarge { limit: u64 },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io(e) => write!(f, "{e}"),
            FileError::NotRegular(kind) => write!(f, "is {kind}, not a regular file"),
            FileError::TooLarge { limit } => {
                write!(f, "is larger than {}, the most confine reads", size(*limit))
            }
        }
    }
}

impl std::error::Error for FileError {}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> Self {
        FileError::Io(e)
    }
}

impl From<FileError> for io::Error {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        }
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// What a file type is called in an error.
pub(crate) fn kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "not a file"
    }
}

/// Fails unless `file` (already open) is a regular file.
///
/// # Errors
/// fstat fails, or the file is something else.
pub fn require_regular(file: &File) -> Result<std::fs::Metadata, FileError> {
    let meta = file.metadata()?;
    if meta.file_type().is_file() {
        Ok(meta)
    } else {
        Err(FileError::NotRegular(kind(meta.file_type())))
    }
}

/// Reads the whole of the regular file at `path`, at most `limit` bytes.
/// Symlinks are followed (a profile may be one); what they lead to must be
/// a regular file.
///
/// # Errors
/// The file can't be opened or read, isn't a regular file, or is larger
/// than `limit`.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO opens at once instead of waiting for a writer; a terminal
        // doesn't become our controlling terminal.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = require_regular(&file)?;
    if meta.len() > limit {
        return Err(FileError::TooLarge { limit });
    }
    // Blocking reads again: a regular file never blocks anyway, and a
    // network filesystem may honour the flag with EAGAIN.
    // SAFETY: F_SETFL with an integer argument on our open descriptor.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) };
    // The size is only a hint (a file that grows meanwhile, /proc files that
    // say 0): the read itself is bounded too.
    let mut text = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut text)?;
    if text.len() as u64 > limit {
        return Err(FileError::TooLarge { limit });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, b"version: 1\n").unwrap();
        assert_eq!(read_bounded(&f, 11).unwrap(), b"version: 1\n");
        assert!(matches!(
            read_bounded(&f, 10),
            Err(FileError::TooLarge { limit: 10 })
        ));
        assert!(matches!(
            read_bounded(dir.path(), 10),
            Err(FileError::NotRegular("a directory"))
        ));
        assert!(matches!(
            read_bounded(Path::new("/dev/zero"), 10),
            Err(FileError::NotRegular("a character device"))
        ));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer: without O_NONBLOCK this would block for ever.
        let e = read_bounded(&fifo, 10).unwrap_err();
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        assert_eq!(
            FileError::TooLarge { limit: 1 << 20 }.to_string(),
            "is larger than 1 MiB, the most confine reads"
        );
    }
}
