//! `confine-egress`: confine's egress proxy (DESIGN.md §9), a program of
//! its own so that its crates are not mapped into every supervisor. `confine
//! run` starts it for `network.mode: proxy`, with its privileges dropped and
//! what it needs in a memfd; run by hand it only says what it is.

// The entry point is our own `main`, not std's (as `confine`'s: std's
// would open fds 0-2 and map a signal stack first; `program_main` sets up
// what it needs).
#![no_main]

use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;

#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<OsString> = (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: the C runtime passes `argc` valid, NUL-terminated
            // strings in `argv`, which live as long as the process.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(arg.to_bytes().to_vec())
        })
        .collect();
    confine::launch::egress_program_main(&args)
}
