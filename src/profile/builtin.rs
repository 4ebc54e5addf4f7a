//! The built-in profiles, embedded from `profiles/*.yaml` so the binary is
//! self-contained and the same files serve as examples.

/// Name and text of every built-in profile, from least to most privileged.
pub const ALL: &[(&str, &str)] = &[
    ("minimal", include_str!("../../profiles/minimal.yaml")),
    ("readonly", include_str!("../../profiles/readonly.yaml")),
    ("default", include_str!("../../profiles/default.yaml")),
    ("networked", include_str!("../../profiles/networked.yaml")),
];

/// The text of the built-in profile `name`.
pub fn get(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
