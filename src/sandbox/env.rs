//! The agent's environment: only what the profile keeps or sets, so host
//! secrets (tokens, `SSH_AUTH_SOCK`, cloud credentials) don't leak into the
//! sandbox (DESIGN.md §6: variables not kept never reach the agent).
//!
//! [`build`] is pure and runs in the plan, before the fork; it returns the
//! `KEY=VALUE` strings execve needs, already NUL-terminated, so nothing about
//! the environment is allocated after the fork (the launcher still has to lay
//! out the NULL-terminated pointer array before seccomp, see §4 step 12).
//! [`risk`] names the kept or set variables that let whoever controls them run
//! code in the agent's programs, for a warning; [`keys`] lists the names (never
//! the values) for the audit record.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

/// A variable name or value that can't be put in an environment.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvError {
    #[error("environment variable name {key:?}: {why}")]
    BadKey { key: String, why: &'static str },
    #[error("environment variable {key}: the value contains a NUL byte")]
    NulInValue { key: String },
}

/// Checks that `key` can be a variable name: not empty, no `=`, no NUL.
///
/// # Errors
///
/// [`EnvError::BadKey`] saying which.
pub(crate) fn check_key(key: &str) -> Result<(), EnvError> {
    let why = if key.is_empty() {
        "it is empty"
    } else if key.contains('=') {
        "it contains '='"
    } else if key.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(EnvError::BadKey {
        key: key.to_string(),
        why,
    })
}

/// The agent's environment: each variable of `host` that `keep` names (an
/// entry ending in `*` keeps every name that starts with what precedes it), with
/// the host's value byte for byte (non-UTF-8 included), then every pair of
/// `set`, replacing a kept value of the same key. Nothing else. Sorted by key
/// (bytewise), one `KEY=VALUE` string each. Where a key appears twice in `host`
/// or in `set`, the last one wins.
///
/// # Errors
///
/// A key of `keep` or `set` that is empty or contains `=` or NUL, or a value of
/// `set` containing NUL.
/// What tools read to find an HTTP proxy, all naming the egress proxy
/// inside the sandbox (DESIGN.md §9): curl, wget, pip, requests, git, Go
/// and most others read the `*_proxy` pair; npm, yarn and cargo have their
/// own; JVMs read system properties (`JAVA_TOOL_OPTIONS`), and Node's
/// built-in fetch reads the pair only when told to. Tools that read none
/// still reach allowed hosts through the DNS stub's addresses.
pub(crate) fn egress_proxy_vars() -> Vec<(String, String)> {
    const URL: &str = "http://127.0.0.1:3128";
    const NO_PROXY: &str = "localhost,127.0.0.1,::1";
    let mut v: Vec<(String, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
        "YARN_HTTP_PROXY",
        "YARN_HTTPS_PROXY",
        "CARGO_HTTP_PROXY",
    ]
    .into_iter()
    .map(|k| (k.to_string(), URL.to_string()))
    .collect();
    v.push(("NO_PROXY".into(), NO_PROXY.into()));
    v.push(("no_proxy".into(), NO_PROXY.into()));
    v.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    v.push((
        "JAVA_TOOL_OPTIONS".into(),
        "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 \
         -Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.0.0.1"
            .into(),
    ));
    v
}

pub(crate) fn build<I>(
    keep: &[String],
    set: &[(String, String)],
    host: I,
) -> Result<Vec<CString>, EnvError>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    for key in keep {
        check_key(key.strip_suffix('*').unwrap_or(key))?;
    }
    for (key, value) in set {
        check_key(key)?;
        if value.contains('\0') {
            return Err(EnvError::NulInValue { key: key.clone() });
        }
    }

    let mut env: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (key, value) in host {
        let key = key.into_vec();
        if keep.iter().any(|k| kept(k, &key)) {
            env.insert(key, value.into_vec());
        }
    }
    for (key, value) in set {
        env.insert(key.as_bytes().to_vec(), value.as_bytes().to_vec());
    }

    let mut out = Vec::with_capacity(env.len());
    for (mut entry, value) in env {
        // Host keys matched a checked key and host values come from the
        // environment (no NUL); set values were checked above.
        if value.contains(&0) {
            return Err(EnvError::NulInValue {
                key: String::from_utf8_lossy(&entry).into(),
            });
        }
        entry.push(b'=');
        entry.extend_from_slice(&value);
        out.push(CString::new(entry).expect("no NUL: keys and values checked"));
    }
    Ok(out)
}

/// Whether the `keep` entry `k` keeps the variable `key`.
fn kept(k: &str, key: &[u8]) -> bool {
    match k.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix.as_bytes()),
        None => k.as_bytes() == key,
    }
}

/// The names of the variables in `env` (the part before the first `=`), for
/// the tests.
#[cfg(test)]
fn keys(env: &[CString]) -> Vec<String> {
    env.iter()
        .map(|entry| {
            let bytes = entry.as_bytes();
            let end = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
            String::from_utf8_lossy(&bytes[..end]).into_owned()
        })
        .collect()
}

const RISKY: [(&str, &str); 13] = [
    (
        "LD_PRELOAD",
        "loads a library into every dynamically linked program",
    ),
    (
        "LD_AUDIT",
        "loads an audit library into every dynamically linked program",
    ),
    (
        "LD_LIBRARY_PATH",
        "changes where programs load their libraries from",
    ),
    ("BASH_ENV", "a script every non-interactive bash runs first"),
    ("ENV", "a script every interactive POSIX shell runs first"),
    (
        "PYTHONSTARTUP",
        "Python code run when an interactive interpreter starts",
    ),
    ("PYTHONPATH", "changes where Python imports modules from"),
    (
        "PYTHONHOME",
        "changes where Python finds its standard library",
    ),
    (
        "NODE_OPTIONS",
        "options such as --require for every node process",
    ),
    ("PERL5OPT", "options such as -M for every perl"),
    ("PERL5LIB", "changes where perl loads modules from"),
    ("RUBYOPT", "options such as -r for every ruby"),
    (
        "JAVA_TOOL_OPTIONS",
        "options such as -javaagent for every JVM",
    ),
];

/// Why keeping or setting `key` is risky, if it is: these variables make the
/// agent's programs load or run code chosen by whoever sets the value. `GIT_*`
/// counts as a whole (`GIT_SSH_COMMAND`, `GIT_CONFIG_*`, `GIT_EXEC_PATH`, ...).
pub(crate) fn risk(key: &str) -> Option<&'static str> {
    if let Some(prefix) = key.strip_suffix('*') {
        // A glob is as risky as the riskiest variable it can match.
        return RISKY
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .map(|(_, why)| *why)
            .or_else(|| {
                ("GIT_".starts_with(prefix) || prefix.starts_with("GIT_"))
                    .then_some("git variables can change what git runs and which config it reads")
            });
    }
    if let Some((_, why)) = RISKY.iter().find(|(k, _)| *k == key) {
        return Some(why);
    }
    key.starts_with("GIT_")
        .then_some("git variables can change what git runs and which config it reads")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn host(pairs: &[(&[u8], &[u8])]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    std::ffi::OsStr::from_bytes(k).to_os_string(),
                    std::ffi::OsStr::from_bytes(v).to_os_string(),
                )
            })
            .collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn render(env: &[CString]) -> Vec<Vec<u8>> {
        env.iter().map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn only_kept_and_set_keys_sorted() {
        let host = host(&[
            (b"TERM", b"xterm"),
            (b"AWS_SECRET_ACCESS_KEY", b"hunter2"),
            (b"PATH", b"/usr/bin:/bin"),
            (b"LANG", b"C.UTF-8"),
        ]);
        let env = build(
            &s(&["PATH", "TERM", "LANG", "TZ"]),
            &pairs(&[("HOME", "/workspace"), ("LANG", "en_US.UTF-8")]),
            host,
        )
        .unwrap();
        assert_eq!(
            render(&env),
            [
                b"HOME=/workspace".to_vec(),
                b"LANG=en_US.UTF-8".to_vec(),
                b"PATH=/usr/bin:/bin".to_vec(),
                b"TERM=xterm".to_vec(),
            ]
        );
        assert_eq!(keys(&env), ["HOME", "LANG", "PATH", "TERM"]);
    }

    #[test]
    fn values_are_byte_exact() {
        let env = build(
            &s(&["WEIRD", "EMPTY", "EQ"]),
            &[],
            host(&[
                (b"WEIRD", b"\xff\xfe caf\xc3\xa9"),
                (b"EMPTY", b""),
                (b"EQ", b"a=b=c"),
            ]),
        )
        .unwrap();
        assert_eq!(
            render(&env),
            [
                b"EMPTY=".to_vec(),
                b"EQ=a=b=c".to_vec(),
                b"WEIRD=\xff\xfe caf\xc3\xa9".to_vec()
            ]
        );
        assert_eq!(keys(&env), ["EMPTY", "EQ", "WEIRD"]);
    }

    #[test]
    fn nothing_kept_means_nothing() {
        let env = build(&[], &[], host(&[(b"PATH", b"/bin"), (b"HOME", b"/root")])).unwrap();
        assert!(env.is_empty());
        // Keys are compared exactly: no case folding, no prefixes.
        let env = build(&s(&["path", "PAT"]), &[], host(&[(b"PATH", b"/bin")])).unwrap();
        assert!(env.is_empty());
    }

    #[test]
    fn trailing_star_keeps_a_prefix() {
        let env = build(
            &s(&["ANTHROPIC_*", "PATH"]),
            &[],
            host(&[
                (b"ANTHROPIC_MODEL", b"m"),
                (b"ANTHROPIC_", b"e"),
                (b"ANTHROPIC", b"no"),
                (b"anthropic_x", b"no"),
                (b"PATHS", b"no"),
                (b"PATH", b"/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(keys(&env), ["ANTHROPIC_", "ANTHROPIC_MODEL", "PATH"]);
        assert!(matches!(
            build(&s(&["*"]), &[], host(&[])),
            Err(EnvError::BadKey { .. })
        ));
    }

    #[test]
    fn bad_keys_and_values() {
        assert_eq!(
            build(&s(&["A=B"]), &[], host(&[])).unwrap_err(),
            EnvError::BadKey {
                key: "A=B".into(),
                why: "it contains '='"
            }
        );
        assert!(matches!(
            build(&s(&[""]), &[], host(&[])),
            Err(EnvError::BadKey { .. })
        ));
        assert!(matches!(
            build(&[], &pairs(&[("A\0", "x")]), host(&[])),
            Err(EnvError::BadKey { .. })
        ));
        assert!(matches!(
            build(&[], &pairs(&[("=A", "x")]), host(&[])),
            Err(EnvError::BadKey { .. })
        ));
        assert_eq!(
            build(&[], &pairs(&[("A", "x\0y")]), host(&[])).unwrap_err(),
            EnvError::NulInValue { key: "A".into() }
        );
    }

    #[test]
    fn last_one_wins() {
        let env = build(
            &s(&["A"]),
            &pairs(&[("B", "1"), ("B", "2")]),
            host(&[(b"A", b"first"), (b"A", b"second")]),
        )
        .unwrap();
        assert_eq!(render(&env), [b"A=second".to_vec(), b"B=2".to_vec()]);
    }

    #[test]
    fn risky_keys() {
        assert!(risk("LD_PRELOAD").is_some());
        assert!(risk("GIT_SSH_COMMAND").is_some());
        assert!(risk("GIT_CONFIG_GLOBAL").is_some());
        assert!(risk("BASH_ENV").is_some());
        assert!(risk("ENV").is_some());
        assert!(risk("PATH").is_none());
        assert!(risk("GITHUB_TOKEN").is_none());
        assert!(risk("ld_preload").is_none());
        assert!(risk("LD_*").is_some());
        assert!(risk("PY*").is_some());
        assert!(risk("G*").is_some());
        assert!(risk("GIT_AUTHOR_*").is_some());
        assert!(risk("ANTHROPIC_*").is_none());
        for k in [
            "JAVA_TOOL_OPTIONS",
            "PYTHONHOME",
            "PERL5LIB",
            "RUBYOPT",
            "NODE_OPTIONS",
        ] {
            assert!(risk(k).is_some(), "{k}");
        }
    }
}
