//! Refuses YAML nested deeper than any profile is, before serde_yaml
//! parses it.
//!
//! libyaml (under serde_yaml) reads the whole document into events before
//! serde's recursion limit is ever consulted, and its scanner revisits every
//! open flow collection (`[`, `{`) on each token: 64k nested flow sequences
//! took 9 s. The deepest profile is four levels (`filesystem: {read: {add:
//! [...]}}`), so anything deeper than [`MAX_NESTING`] is refused here, with
//! its position.
//!
//! Most profiles hold fewer than [`MAX_NESTING`] brackets in all, and then
//! can't nest flow collections that deep: they are let through without a
//! second parse. Only the others are walked with yaml-rust2's event parser,
//! which stops at the first collection too deep. Block collections (`- - -`,
//! indentation) cost libyaml nothing per level, and serde_yaml's own
//! recursion limit bounds them.

use yaml_rust2::parser::{Event, Parser};

use super::locate::Pos;

/// Deeper than this is refused.
pub(crate) const MAX_NESTING: usize = 32;

/// Why the text was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A collection nested deeper than [`MAX_NESTING`] starts at `Pos`.
    TooDeep(Pos),
    /// The text isn't YAML where it first goes deep; serde_yaml isn't
    /// trusted to stay quick past a point the walker couldn't read.
    Unreadable(Pos, String),
}

impl Refused {
    pub(crate) fn pos(&self) -> Pos {
        match self {
            Refused::TooDeep(p) | Refused::Unreadable(p, _) => *p,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Refused::TooDeep(_) => format!(
                "collections nested deeper than {MAX_NESTING} levels; a profile needs at most 4"
            ),
            Refused::Unreadable(_, why) => why.clone(),
        }
    }
}

/// Checks that no collection in `text` (every document of it) is nested
/// deeper than [`MAX_NESTING`].
///
/// # Errors
/// Where the first too-deep collection starts, or where the text stops
/// being YAML if it has more brackets than [`MAX_NESTING`].
pub(crate) fn check(text: &str) -> Result<(), Refused> {
    let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if brackets <= MAX_NESTING {
        return Ok(());
    }
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        let (ev, mark) = match parser.next_token() {
            Ok(e) => e,
            Err(e) => {
                let pos = Pos {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                };
                // yaml-rust2 stops at 255 open flow collections by itself.
                return Err(if e.info().contains("recursion limit") {
                    Refused::TooDeep(pos)
                } else {
                    Refused::Unreadable(pos, e.info().to_string())
                });
            }
        };
        match ev {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Refused::TooDeep(Pos {
                        line: mark.line(),
                        col: mark.col() + 1,
                    }));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::StreamEnd => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shallow_profiles_pass() {
        assert_eq!(
            check("version: 1\nfilesystem: {read: {add: [/usr]}}\n"),
            Ok(())
        );
        // Many brackets, little depth: walked, and fine.
        let many = format!("version: 1\nx: [{}]\n", "[a], ".repeat(100));
        assert_eq!(check(&many), Ok(()));
        let deep_ok = format!(
            "x: {}{}\n",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        assert_eq!(check(&deep_ok), Ok(()));
    }

    #[test]
    fn deep_nesting_is_refused_where_it_starts() {
        let t = format!(
            "version: 1\nx: {}{}\n",
            "[".repeat(64_000),
            "]".repeat(64_000)
        );
        assert!(matches!(
            check(&t),
            Err(Refused::TooDeep(Pos { line: 2, .. }))
        ));
        // The document's own map is the first level, so the 32nd `{` is
        // the 33rd.
        let t = format!("version: 1\nx: {}1{}\n", "{a: ".repeat(40), "}".repeat(40));
        assert_eq!(
            check(&t),
            Err(Refused::TooDeep(Pos {
                line: 2,
                col: 4 + 4 * 31
            }))
        );
        // Brackets elsewhere send the text to the walker, which also sees
        // block nesting.
        let t = format!("x: \"{}\"\ny:\n{}1\n", "[".repeat(40), "- ".repeat(40));
        assert!(matches!(
            check(&t),
            Err(Refused::TooDeep(Pos { line: 3, .. }))
        ));
    }

    #[test]
    fn unreadable_text_with_many_brackets_is_refused() {
        let t = format!("x: [{}\n  - : :\n", "[a],".repeat(40));
        assert!(matches!(check(&t), Err(Refused::Unreadable(..))));
    }
}
