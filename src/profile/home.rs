//! `home:` as written: the scalar forms (`workspace`, `private`, a path)
//! and the mapping `{path: ..., files: {REL_PATH: TEXT}}`, whose files the
//! sandbox's init writes into HOME at launch where they are absent
//! (DESIGN-NOTES 48, "settings a profile writes into HOME").
//!
//! Every value is checked as it is read, so a bad name or text is refused
//! at its own line and column; what only the merged profile shows (too many
//! files across `extends`, `files` without a home of its own, one file's
//! name a directory of another's) is checked by [`check`], located at the
//! file.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::values::HomeSpec;
use super::{sourced, Profile, ProfileError, Source, Sourced};

/// The most files `home.files` may name, in one layer or merged: an agent
/// needs one or two settings files; a profile is not a way to ship a tree.
pub(crate) const MAX_HOME_FILES: usize = 32;

/// The most bytes one file's text may have: settings files are small, and
/// the plan carries every text into the sandbox's init.
pub(crate) const MAX_HOME_FILE_BYTES: usize = 64 << 10;

/// The longest name (bytes, the whole relative path): well under PATH_MAX
/// once joined to a home.
const MAX_NAME_BYTES: usize = 1024;

/// A `home.files` name: a path relative to HOME of plain components, no
/// `.`, `..` or empty one (so no two names mean one file, and none leaves
/// HOME), each at most 255 bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HomeFileName(pub String);

impl FromStr for HomeFileName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("bad home file name `{s}`: {why}"));
        if s.is_empty() {
            return bad("it is empty; write a path relative to HOME such as .codex/config.toml");
        }
        if s.starts_with('/') {
            return bad("it must be relative to HOME (no leading `/`), such as .codex/config.toml");
        }
        if s.contains('\0') {
            return bad("it holds a NUL byte");
        }
        if s.len() > MAX_NAME_BYTES {
            return bad(&format!("it is longer than {MAX_NAME_BYTES} bytes"));
        }
        for c in s.split('/') {
            match c {
                "" => return bad("an empty component (`//` or a trailing `/`)"),
                "." | ".." => {
                    return bad(&format!(
                        "`{c}` is not allowed: every component must name an entry of its own"
                    ))
                }
                _ if c.len() > 255 => return bad("a component is longer than 255 bytes"),
                _ => {}
            }
        }
        Ok(HomeFileName(s.to_string()))
    }
}

impl fmt::Display for HomeFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file's text: a string of at most [`MAX_HOME_FILE_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HomeFileText(pub String);

impl<'de> Deserialize<'de> for HomeFileText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HomeFileText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the file's text, a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HomeFileText, E> {
                if s.len() > MAX_HOME_FILE_BYTES {
                    return Err(E::custom(format!(
                        "the text is {} bytes; a home file may have at most {MAX_HOME_FILE_BYTES} (64 KiB)",
                        s.len()
                    )));
                }
                Ok(HomeFileText(s.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// `home.files` of one layer, in file order; a name written twice is an
/// error rather than one silently winning.
#[derive(Clone, Debug, Default)]
pub(crate) struct HomeFiles(pub Vec<(HomeFileName, HomeFileText)>);

impl<'de> Deserialize<'de> for HomeFiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HomeFiles;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of RELATIVE_PATH: TEXT")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HomeFiles, A::Error> {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                while let Some(name) = map.next_key_seed(Key(&mut seen))? {
                    let text: HomeFileText = map.next_value()?;
                    out.push((name, text));
                }
                Ok(HomeFiles(out))
            }
        }
        /// A file's name, checked (also against the names before it, and
        /// their number) while the key itself is read, so an error points
        /// at that key.
        struct Key<'a>(&'a mut HashSet<HomeFileName>);
        impl<'de> de::DeserializeSeed<'de> for Key<'_> {
            type Value = HomeFileName;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<HomeFileName, D::Error> {
                d.deserialize_str(self)
            }
        }
        impl Visitor<'_> for Key<'_> {
            type Value = HomeFileName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path relative to HOME such as .codex/config.toml")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<HomeFileName, E> {
                let name: HomeFileName = k.parse().map_err(E::custom)?;
                if self.0.len() == MAX_HOME_FILES {
                    return Err(E::custom(format!("more than {MAX_HOME_FILES} home files")));
                }
                if !self.0.insert(name.clone()) {
                    return Err(E::custom(format!("`{name}` is written twice")));
                }
                Ok(name)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<HomeFileName, E> {
                self.visit_str(&n.to_string())
            }
        }
        d.deserialize_map(V)
    }
}

/// `home:` as one layer writes it.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawHome {
    pub path: Option<HomeSpec>,
    pub files: Option<HomeFiles>,
    /// Written as a mapping: the path's key is `home.path`, not `home`.
    pub mapping: bool,
}

impl<'de> Deserialize<'de> for RawHome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHome;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`workspace`, `private`, an absolute path, or {path: ..., files: {RELATIVE_PATH: TEXT}}",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawHome, E> {
                Ok(RawHome {
                    path: Some(s.parse().map_err(E::custom)?),
                    files: None,
                    mapping: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHome, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Map {
                    path: Option<HomeSpec>,
                    files: Option<HomeFiles>,
                }
                let m = Map::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawHome {
                    path: m.path,
                    files: m.files,
                    mapping: true,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// The merged `home.files`: name to text, each where it was written.
pub type Files = BTreeMap<HomeFileName, Sourced<String>>;

/// Applies one layer's `home`. A path replaces the parent's; files merge
/// name by name (a child's text for a name replaces its parent's, as in
/// `env.set`). A layer that chooses `workspace` leaves its parent's files
/// behind, as a layer choosing another network mode leaves the egress
/// policy: HOME is the project then, and a profile never writes into it
/// (files the layer writes itself are still refused by [`check`]).
pub(super) fn merge(p: &mut Profile, s: &Arc<Source>, raw: RawHome) {
    if let Some(path) = raw.path {
        if path == HomeSpec::Workspace {
            p.home_files.clear();
        }
        let key = if raw.mapping { "home.path" } else { "home" };
        p.home = Some(sourced(s, key, path));
    }
    for (name, text) in raw.files.unwrap_or_default().0 {
        let key = file_key(&name);
        p.home_files.insert(name, sourced(s, &key, text.0));
    }
}

/// The key path of a file, as errors name it (and `locate` finds it).
pub(crate) fn file_key(name: &HomeFileName) -> String {
    format!("home.files.{name}")
}

/// What only the merged profile shows: at most [`MAX_HOME_FILES`] files,
/// a home of its own to write them into, and no file whose name is a
/// directory on another's way.
///
/// # Errors
/// A located error at the file.
pub(super) fn check(p: &Profile) -> Result<(), ProfileError> {
    let err =
        |name: &HomeFileName, text: &Sourced<String>, why: String| text.error(&file_key(name), why);
    if let Some((name, text)) = p.home_files.iter().nth(MAX_HOME_FILES) {
        return Err(err(
            name,
            text,
            format!(
                "home.files has {} files once merged with what it extends; at most {MAX_HOME_FILES} are allowed",
                p.home_files.len()
            ),
        ));
    }
    let Some((name, text)) = p.home_files.iter().next() else {
        return Ok(());
    };
    match p.home.as_ref().map(|h| &h.value) {
        None => {
            return Err(err(
                name,
                text,
                "files need a home to be written into: add `path: private` (or a directory of the agent's own) to `home`".into(),
            ))
        }
        Some(HomeSpec::Workspace) => {
            return Err(err(
                name,
                text,
                "HOME is the workspace (`home: workspace`), and a profile never writes into the project: \
                 use `path: private` or a directory of the agent's own, or put the file in the project yourself"
                    .into(),
            ))
        }
        Some(_) => {}
    }
    for (name, text) in &p.home_files {
        let dir = format!("{name}/");
        if let Some((other, _)) = p
            .home_files
            .range(name.clone()..)
            .find(|(o, _)| o.0.starts_with(&dir))
        {
            return Err(err(
                name,
                text,
                format!("`{name}` is a file, but `{other}` needs it to be a directory"),
            ));
        }
    }
    Ok(())
}
