//! Per-process resource limits (rlimits). They are inherited across fork and
//! execve and, once lowered without CAP_SYS_RESOURCE, can't be raised again,
//! so they are set while still root, before the credentials are dropped.

use std::io;

/// The rlimits a plan sets; `None` leaves the inherited value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rlimits {
    pub open_files: Option<u64>,
    pub file_size: Option<u64>,
    pub core_dumps: bool,
}

/// A failed `setrlimit`, naming the limit.
#[derive(Debug, thiserror::Error)]
#[error("setting {name} to {value}: {source}")]
pub(crate) struct RlimitError {
    pub name: &'static str,
    pub value: u64,
    #[source]
    pub source: io::Error,
}

fn set(
    resource: libc::__rlimit_resource_t,
    name: &'static str,
    value: u64,
) -> Result<(), RlimitError> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: lim is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(RlimitError {
            name,
            value,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Applies the limits to the calling process (and so to its descendants).
///
/// # Errors
/// The first `setrlimit` that fails, e.g. `open_files` above
/// `fs.nr_open`.
pub(crate) fn apply(l: &Rlimits) -> Result<(), RlimitError> {
    if let Some(n) = l.open_files {
        set(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE (limits.open_files)", n)?;
    }
    if let Some(n) = l.file_size {
        set(libc::RLIMIT_FSIZE, "RLIMIT_FSIZE (limits.file_size)", n)?;
    }
    if !l.core_dumps {
        set(libc::RLIMIT_CORE, "RLIMIT_CORE (limits.core_dumps)", 0)?;
    }
    Ok(())
}
