//! The built-in profiles, embedded from `profiles/*.yaml` so the binary is
//! self-contained and the same files serve as examples.
//!
//! Each is embedded twice: as written, and as JSON that `build.rs` re-encodes
//! from the YAML. The YAML is the source and what the profile's sha256,
//! `explain` and error positions read; the JSON is what gets parsed, since
//! serde_json needs about a tenth of the instructions serde_yaml does, and
//! every launch of a built-in (or of a profile extending one) parses its
//! whole `extends` chain.

macro_rules! builtins {
    ($($name:literal),*) => {
        /// Name and text of every built-in profile, from least to most privileged.
        pub const ALL: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../profiles/", $name, ".yaml")))),*
        ];
        /// [`ALL`]'s profiles as JSON, in the same order.
        const JSON: &[&str] = &[
            $(include_str!(concat!(env!("OUT_DIR"), "/profiles/", $name, ".json"))),*
        ];
    };
}

builtins!(
    "minimal",
    "readonly",
    "default",
    "research",
    "python-agent",
    "aider",
    "claude-code",
    "codex",
    "gemini-cli",
    "networked"
);

/// The text of the built-in profile `name`.
pub(crate) fn get(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The built-in profile `name` as JSON: the same document as [`get`]'s.
pub(crate) fn json(name: &str) -> Option<&'static str> {
    ALL.iter().position(|(n, _)| *n == name).map(|i| JSON[i])
}
