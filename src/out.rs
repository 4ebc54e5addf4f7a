//! Messages on stderr and output on stdout that can never end confine.
//!
//! std's `eprintln!` and `println!` panic when the write fails (a pipe
//! whose reader is gone: `confine run ... 2>&1 | head -0`), and under
//! `panic = "abort"`, or across our C entry point, a panic is SIGABRT: the
//! supervisor would die before its exit record and cleanup. Here a failed
//! write is dropped (stderr) or returned (stdout); SIGPIPE is ignored in
//! `main`, so a closed pipe is an EPIPE and never a signal. The lint
//! `clippy::print_stderr`/`print_stdout` keeps std's macros out of the crate.

use std::fmt;
use std::io::{self, Write};

/// Writes one line (`args` and a newline) on stderr, in one `write(2)` when
/// it fits a pipe's atomic size, so lines of concurrent sandboxes sharing a
/// journal don't interleave. Errors are ignored: there is nowhere left to
/// report them.
pub fn line(args: fmt::Arguments) {
    let mut text = args.to_string();
    text.push('\n');
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Writes `text` on stdout and flushes it. A reader that went away
/// (`confine explain | head -1`) is not an error: the output wasn't wanted.
///
/// # Errors
/// Any other write error (a full disk under a redirection).
pub fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// `say!("confine: {what} ({where}): {why}")`: one line on stderr through
/// [`line`], never a panic.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(::std::format_args!($($arg)*))
    };
}
