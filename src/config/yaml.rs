//! A YAML document as a small tree whose every node knows its line and column.
//!
//! Built from saphyr-parser's spanned events. Chosen over yaml-rust2 (same lineage, same
//! event API with markers): saphyr-parser is the maintained successor, has two small
//! dependencies (yaml-rust2 pulls hashlink/hashbrown) and gives start and end spans. Measured
//! stripped (x86_64, opt-level z, LTO) over a hello world that prints the events:
//! saphyr-parser +78 KiB, yaml-rust2 +75 KiB. serde_yml/libyml and unsafe-libyaml are out
//! (DESIGN.md §4: advisories).
//!
//! Only what configs need: scalars (kept as text with their quoting style), sequences,
//! mappings, anchors/aliases. Tags are ignored.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};
use std::collections::HashMap;

/// 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar's text; `quoted` scalars are always strings (`"15"` is not a number, `""`
    /// not null).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    /// True for an unquoted `~`, `null`, `Null`, `NULL` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "scalar",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "mapping",
        }
    }
}

/// A syntax error with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub msg: String,
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    documents: usize,
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

impl Builder {
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        let p = pos(&span);
        match ev {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 && self.error.is_none() {
                    self.error = Some(SyntaxError {
                        pos: p,
                        msg: "more than one YAML document".into(),
                    });
                }
            }
            Event::Scalar(text, style, anchor, _) => {
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        quoted: !matches!(style, ScalarStyle::Plain),
                    },
                    pos: p,
                };
                self.push(node, anchor);
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => Node {
                        value: n.value.clone(),
                        pos: p,
                    },
                    None => {
                        self.error.get_or_insert(SyntaxError {
                            pos: p,
                            msg: "unknown alias".into(),
                        });
                        return;
                    }
                };
                self.push(node, 0);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(p, anchor, Vec::new())),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(p, anchor, Vec::new(), None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq(p, a, items)) => (
                        Node {
                            value: Value::Seq(items),
                            pos: p,
                        },
                        a,
                    ),
                    Some(Frame::Map(p, a, entries, _)) => (
                        Node {
                            value: Value::Map(entries),
                            pos: p,
                        },
                        a,
                    ),
                    None => return,
                };
                self.push(node, anchor);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty document gives an empty mapping at 1:1.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        return Err(SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            msg: e.info().to_string(),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.root.unwrap_or(Node {
        value: Value::Map(Vec::new()),
        pos: Pos { line: 1, col: 1 },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_one_based_positions() {
        let n = parse("global:\n  scrape_interval: 15s\n").unwrap();
        let Value::Map(top) = &n.value else { panic!() };
        let (k, v) = &top[0];
        assert_eq!(k.pos, Pos { line: 1, col: 1 });
        let Value::Map(inner) = &v.value else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 2, col: 3 });
        assert_eq!(inner[0].1.pos, Pos { line: 2, col: 20 });
    }

    #[test]
    fn quoting_and_nulls_are_kept_apart() {
        let n = parse("a: \"\"\nb:\nc: ~\nd: 'x'\n").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        assert!(!m[0].1.is_null());
        assert!(m[1].1.is_null());
        assert!(m[2].1.is_null());
        assert_eq!(
            m[3].1.value,
            Value::Scalar {
                text: "x".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn aliases_resolve_to_their_anchor() {
        let n = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        let Value::Map(m) = &n.value else { panic!() };
        assert_eq!(m[0].1.value, m[1].1.value);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.msg, "more than one YAML document");
    }
}
