//! Finds the line and column of a key path (`filesystem.write[2]`) in a
//! profile's text.
//!
//! serde_yaml reports positions for errors found while deserializing, but
//! checks that need the merged profile (a path that doesn't exist, a write
//! grant covering the audit log) run later, when the nodes are gone. They keep
//! the key path instead, and this module maps it back to the text, only when
//! an error is actually reported.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

/// Collections nested deeper than this are skipped, not walked: no key path
/// of a profile comes near it, and each level costs a path string as long
/// as the level is deep (quadratic time and memory on hostile input).
const MAX_NESTING: usize = 64;

struct Finder<'a> {
    want: &'a str,
    stack: Vec<(Frame, String)>,
    /// How many collections deeper than `MAX_NESTING` we are inside.
    skipped: usize,
    found: Option<Pos>,
    /// Position of the deepest ancestor seen, for a key that isn't written
    /// (e.g. a default) so the error still points somewhere useful.
    best_prefix: Option<(usize, Pos)>,
}

impl Finder<'_> {
    /// Path of the node that is about to start, and whether it is a map key.
    fn next_path(&self) -> Option<(String, bool)> {
        match self.stack.last() {
            None => Some((String::new(), false)),
            Some((Frame::Map { key: None }, _)) => None,
            Some((Frame::Map { key: Some(k) }, p)) => Some((join(p, k), false)),
            Some((Frame::Seq { index }, p)) => Some((format!("{p}[{index}]"), false)),
        }
    }

    /// Keys only ever stand in for their value when the value isn't found.
    fn note(&mut self, path: &str, mark: Marker, is_key: bool) {
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        if path == self.want && !is_key {
            self.found.get_or_insert(pos);
        } else if !path.is_empty()
            && (path == self.want || is_prefix(path, self.want))
            && self.best_prefix.is_none_or(|(len, _)| path.len() > len)
        {
            self.best_prefix = Some((path.len(), pos));
        }
    }

    /// A value node finished: advance the parent.
    fn finish_value(&mut self) {
        match self.stack.last_mut() {
            Some((Frame::Map { key }, _)) => *key = None,
            Some((Frame::Seq { index }, _)) => *index += 1,
            None => {}
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn is_prefix(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'.') | Some(b'[')))
}

impl MarkedEventReceiver for Finder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let starts = matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..));
        if self.skipped > 0 || (starts && self.stack.len() >= MAX_NESTING) {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.skipped += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    self.skipped -= 1;
                    if self.skipped == 0 {
                        self.finish_value();
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(value, ..) => match self.next_path() {
                None => {
                    // A map key: remember it (and point at it, in case the
                    // wanted path is the key itself).
                    let parent = self
                        .stack
                        .last()
                        .map(|(_, p)| p.clone())
                        .unwrap_or_default();
                    self.note(&join(&parent, &value), mark, true);
                    if let Some((Frame::Map { key }, _)) = self.stack.last_mut() {
                        *key = Some(value);
                    }
                }
                Some((path, _)) => {
                    self.note(&path, mark, false);
                    self.finish_value();
                }
            },
            Event::Alias(_) => {
                if let Some((path, _)) = self.next_path() {
                    self.note(&path, mark, false);
                }
                self.finish_value();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = match self.next_path() {
                    Some((p, _)) => p,
                    // A complex key: give it a name nobody asks for.
                    None => "\u{0}".to_string(),
                };
                self.note(&path, mark, false);
                let frame = if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { index: 0 }
                };
                self.stack.push((frame, path));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.finish_value();
            }
            _ => {}
        }
    }
}

/// Where `path` (e.g. `filesystem.write[2]`) is written in `text`; when it
/// isn't, where its nearest written ancestor is; `None` if neither.
pub fn locate(text: &str, path: &str) -> Option<Pos> {
    let mut f = Finder {
        want: path,
        stack: Vec::new(),
        skipped: 0,
        found: None,
        best_prefix: None,
    };
    let mut parser = Parser::new_from_str(text);
    // Events one at a time: `Parser::load` recurses once per nesting level
    // and overflows the stack on deeply nested block collections. A parse
    // error only means we stop looking; the caller still reports. Only the
    // first document counts, as for serde_yaml.
    while let Ok((ev, mark)) = parser.next_token() {
        match ev {
            Event::StreamEnd | Event::DocumentEnd => break,
            ev => f.on_event(ev, mark),
        }
    }
    f.found.or(f.best_prefix.map(|(_, p)| p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version: 1\nfilesystem:\n  read: [/usr, /etc]\n  write:\n    - /a\n    - \"{workspace}\"\nuser: root\nenv:\n  keep: {add: [FOO]}\n";

    #[test]
    fn finds_values() {
        assert_eq!(locate(TEXT, "user"), Some(Pos { line: 7, col: 7 }));
        assert_eq!(
            locate(TEXT, "filesystem.read[1]"),
            Some(Pos { line: 3, col: 16 })
        );
        assert_eq!(
            locate(TEXT, "filesystem.write[1]"),
            Some(Pos { line: 6, col: 7 })
        );
        assert_eq!(
            locate(TEXT, "env.keep.add[0]"),
            Some(Pos { line: 9, col: 16 })
        );
    }

    #[test]
    fn falls_back_to_ancestor() {
        assert_eq!(
            locate(TEXT, "filesystem.tmp"),
            Some(Pos { line: 2, col: 1 })
        );
        assert_eq!(locate(TEXT, "limits.memory"), None);
    }

    #[test]
    fn survives_deep_nesting() {
        let deep = format!("a:\n{}1\nb: 2\n", "- ".repeat(200_000));
        assert_eq!(locate(&deep, "b"), Some(Pos { line: 3, col: 4 }));
        let deep = format!("a: {}{}\nb: 2\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(locate(&deep, "b"), Some(Pos { line: 2, col: 4 }));
    }

    #[test]
    fn survives_garbage() {
        assert_eq!(locate("a: [", "a"), Some(Pos { line: 1, col: 4 }));
        assert_eq!(locate("", "a"), None);
    }
}
