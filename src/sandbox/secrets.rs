//! Reading a secret's value at launch (DESIGN.md §10), outside the sandbox.
//! The value is held in a [`Secret`], which zeroes its bytes on drop and
//! never shows them in `Debug` or `Display`; errors name the source and
//! why, never what it held.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use crate::profile::secrets::SecretSource;

/// The largest secret confine reads: API keys and tokens are well under a
/// kilobyte; a JWT or a certificate-sized token fits.
pub const MAX_SECRET_BYTES: u64 = 16 << 10;

/// A secret's value. Zeroed when dropped; `Debug` and `Display` say only
/// how long it is.
pub struct Secret(Vec<u8>);

impl Secret {
    /// A value received from the launcher (the egress proxy's side).
    pub fn new(value: Vec<u8>) -> Secret {
        Secret(value)
    }

    /// The value, for the proxy to put in a header.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Zero the whole allocation (reads may have left bytes past the
        // length), with volatile writes the optimiser can't drop.
        let cap = self.0.capacity();
        let ptr = self.0.as_mut_ptr();
        for i in 0..cap {
            // SAFETY: `ptr` is the Vec's own allocation of `cap` bytes, and
            // u8 has no invalid values.
            unsafe { std::ptr::write_volatile(ptr.add(i), 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, not shown)", self.0.len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(secret, not shown)")
    }
}

/// Why a secret couldn't be read. Never holds the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("{name} isn't set in confine's environment")]
    EnvMissing { name: String },
    #[error("$CREDENTIALS_DIRECTORY isn't set (credential:{name} is read from systemd's credentials directory; run under a unit with LoadCredential=)")]
    NoCredentialsDirectory { name: String },
    #[error("can't open {}: {why}", path.display())]
    Open { path: PathBuf, why: String },
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is owned by uid {owner}; a secret file must be the caller's (uid {caller}) or root's", path.display())]
    Owner {
        path: PathBuf,
        owner: u32,
        caller: u32,
    },
    #[error("{} has mode {mode:04o}: a secret file must be readable only by its owner (chmod 600)", path.display())]
    Mode { path: PathBuf, mode: u32 },
    #[error("{} is larger than {MAX_SECRET_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("can't read {}: {why}", path.display())]
    Read { path: PathBuf, why: String },
    #[error("{what} is empty")]
    Empty { what: String },
    #[error("{what} holds a line break, NUL or other control character (the value goes into an HTTP header)")]
    Control { what: String },
}

/// Blanks the value of `name` in this process's environment block (the
/// strings `environ` points to, on the initial stack), so that a process
/// cloned from this one (the sandbox's init) never holds an `env:`
/// secret, and /proc/PID/environ no longer shows it. Call it while the
/// process has one thread; nothing may read `name` afterwards (it is
/// empty).
pub fn blank_env(name: &str) {
    extern "C" {
        static mut environ: *const *mut libc::c_char;
    }
    // SAFETY: `environ` is libc's NULL-terminated array of NUL-terminated
    // strings, valid for the process's life; the process has one thread,
    // so nothing changes it meanwhile. Only bytes after `NAME=` and
    // before the NUL are written, so every string stays terminated.
    unsafe {
        let mut p = std::ptr::addr_of!(environ).read();
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let s = *p;
            let bytes = std::ffi::CStr::from_ptr(s).to_bytes();
            if bytes.len() > name.len()
                && bytes.starts_with(name.as_bytes())
                && bytes[name.len()] == b'='
            {
                let value = s.add(name.len() + 1).cast::<u8>();
                for i in 0..bytes.len() - name.len() - 1 {
                    std::ptr::write_volatile(value.add(i), 0);
                }
            }
            p = p.add(1);
        }
    }
}

/// Reads the value `source` names.
///
/// # Errors
/// A [`SecretError`] naming the source and why.
pub fn read(source: &SecretSource) -> Result<Secret, SecretError> {
    read_in(source, |k| std::env::var_os(k), euid())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and can't fail.
    unsafe { libc::geteuid() }
}

/// [`read`] with the environment and the caller's uid given, for tests.
fn read_in(
    source: &SecretSource,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    caller: u32,
) -> Result<Secret, SecretError> {
    match source {
        SecretSource::Env(name) => {
            let v = env(name).ok_or_else(|| SecretError::EnvMissing { name: name.clone() })?;
            let v = Secret(std::os::unix::ffi::OsStringExt::into_vec(v));
            check_value(v, &format!("environment variable {name}"))
        }
        SecretSource::File(path) => read_file(path, caller),
        SecretSource::Credential(name) => {
            let dir = env("CREDENTIALS_DIRECTORY")
                .filter(|d| !d.is_empty())
                .ok_or_else(|| SecretError::NoCredentialsDirectory { name: name.clone() })?;
            read_file(&Path::new(&dir).join(name), caller)
        }
    }
}

/// Opens `path` once, without following any symlink on the way, and
/// checks the open file: regular, the caller's or root's, no group or
/// other permission bits, bounded.
fn read_file(path: &Path, caller: u32) -> Result<Secret, SecretError> {
    let p = || path.to_path_buf();
    let fd = super::fsfd::open_with(
        None,
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
    )
    .map_err(|e| SecretError::Open {
        path: p(),
        why: if e.raw_os_error() == Some(libc::ELOOP) {
            "a symlink is on the way (name the file itself)".into()
        } else {
            e.to_string()
        },
    })?;
    let mut file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| SecretError::Read {
        path: p(),
        why: e.to_string(),
    })?;
    if !meta.file_type().is_file() {
        return Err(SecretError::NotRegular {
            path: p(),
            kind: crate::files::kind(meta.file_type()),
        });
    }
    if meta.uid() != caller && meta.uid() != 0 {
        return Err(SecretError::Owner {
            path: p(),
            owner: meta.uid(),
            caller,
        });
    }
    if meta.mode() & 0o077 != 0 {
        return Err(SecretError::Mode {
            path: p(),
            mode: meta.mode() & 0o7777,
        });
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge { path: p() });
    }
    let mut buf = Secret(Vec::with_capacity(MAX_SECRET_BYTES as usize + 1));
    (&mut file)
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut buf.0)
        .map_err(|e| SecretError::Read {
            path: p(),
            why: e.to_string(),
        })?;
    if buf.0.len() as u64 > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge { path: p() });
    }
    check_value(buf, &path.display().to_string())
}

/// Strips one trailing newline (`\n` or `\r\n`, as editors and `echo`
/// leave), then refuses an empty value or one with control characters.
fn check_value(mut v: Secret, what: &str) -> Result<Secret, SecretError> {
    if v.0.ends_with(b"\r\n") {
        let n = v.0.len() - 2;
        v.0[n..].fill(0);
        v.0.truncate(n);
    } else if v.0.ends_with(b"\n") {
        let n = v.0.len() - 1;
        v.0[n] = 0;
        v.0.truncate(n);
    }
    if v.0.is_empty() {
        return Err(SecretError::Empty { what: what.into() });
    }
    if v.0.iter().any(|&b| b.is_ascii_control() || b == 0x7f) {
        return Err(SecretError::Control { what: what.into() });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const VALUE: &str = "sk-test-VALUE-4c1d2e";

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "confine-secrets-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn file(d: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn no_env(_: &str) -> Option<std::ffi::OsString> {
        None
    }

    fn me() -> u32 {
        euid()
    }

    /// Neither the Debug nor the Display of an error or a secret holds it.
    fn hides(e: &dyn fmt::Debug, d: &dyn fmt::Display) {
        let all = format!("{e:?} {d}");
        assert!(!all.contains(VALUE), "{all}");
    }

    #[test]
    fn reads_a_private_file_and_strips_one_newline() {
        let d = dir();
        let p = file(&d, "k", &format!("{VALUE}\n"), 0o600);
        let s = read_in(&SecretSource::File(p.clone()), no_env, me()).unwrap();
        assert_eq!(s.expose(), VALUE.as_bytes());
        hides(&s, &s);
        let p = file(&d, "k2", &format!("{VALUE}\r\n"), 0o400);
        let s = read_in(&SecretSource::File(p), no_env, me()).unwrap();
        assert_eq!(s.expose(), VALUE.as_bytes());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn refusals_name_the_source_never_the_value() {
        let d = dir();
        let cases: Vec<(SecretSource, &str)> = vec![
            (SecretSource::File(file(&d, "g", VALUE, 0o640)), "mode 0640"),
            (SecretSource::File(file(&d, "o", VALUE, 0o604)), "mode 0604"),
            (SecretSource::File(d.join("missing")), "can't open"),
            (SecretSource::File(d.clone()), "not a regular file"),
            (SecretSource::File(file(&d, "e", "\n", 0o600)), "is empty"),
            (
                SecretSource::File(file(&d, "two", &format!("{VALUE}\n{VALUE}\n"), 0o600)),
                "line break",
            ),
            (
                SecretSource::File(file(&d, "big", &"a".repeat(20 << 10), 0o600)),
                "larger than",
            ),
            (SecretSource::Env("CONFINE_NOT_SET".into()), "isn't set"),
            (
                SecretSource::Credential("k".into()),
                "CREDENTIALS_DIRECTORY",
            ),
        ];
        std::os::unix::fs::symlink(d.join("k"), d.join("link")).unwrap();
        file(&d, "k", VALUE, 0o600);
        let mut cases = cases;
        cases.push((SecretSource::File(d.join("link")), "symlink"));
        for (src, why) in cases {
            let e = read_in(&src, no_env, me()).expect_err(why);
            hides(&e, &e);
            assert!(e.to_string().contains(why), "{src}: {e}");
        }
        // Someone else's file, even private (as root, made someone else's).
        let p = file(&d, "theirs", VALUE, 0o600);
        let caller = if me() == 0 {
            std::os::unix::fs::chown(&p, Some(60124), None).unwrap();
            0
        } else {
            me() + 1
        };
        let e = read_in(&SecretSource::File(p), no_env, caller).unwrap_err();
        assert!(e.to_string().contains("owned by uid"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn env_and_credentials() {
        let d = dir();
        let env = |k: &str| match k {
            "KEY" => Some(VALUE.into()),
            "EMPTY" => Some("".into()),
            "CTRL" => Some(format!("{VALUE}\u{1b}").into()),
            "CREDENTIALS_DIRECTORY" => Some(d.clone().into_os_string()),
            _ => None,
        };
        let s = read_in(&SecretSource::Env("KEY".into()), env, me()).unwrap();
        assert_eq!(s.expose(), VALUE.as_bytes());
        let e = read_in(&SecretSource::Env("EMPTY".into()), env, me()).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        let e = read_in(&SecretSource::Env("CTRL".into()), env, me()).unwrap_err();
        assert!(e.to_string().contains("control"), "{e}");
        hides(&e, &e);
        file(&d, "api", VALUE, 0o400);
        let s = read_in(&SecretSource::Credential("api".into()), env, me()).unwrap();
        assert_eq!(s.expose(), VALUE.as_bytes());
        file(&d, "open", VALUE, 0o444);
        let e = read_in(&SecretSource::Credential("open".into()), env, me()).unwrap_err();
        assert!(e.to_string().contains("mode 0444"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }
}
