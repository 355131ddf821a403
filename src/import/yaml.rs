//! A YAML document as a tree of nodes, each with its byte span in the text, read with
//! `saphyr-parser`'s event stream (which places every event at a line and column).

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// One YAML node and where it is.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Byte range in the text.
    pub(crate) span: Range<usize>,
    /// What it holds.
    pub(crate) kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// A scalar: its text, and whether it was quoted (a quoted `true` is a string).
    Scalar { text: String, quoted: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A plain scalar meaning nothing (`~`, `null`, or no value at all).
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, quoted: false }
            if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    /// What kind of node this is, for messages.
    pub(crate) fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "nothing",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Why a text is not a YAML document.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    /// Byte offset of the problem.
    pub(crate) offset: usize,
    /// The parser's words.
    pub(crate) message: String,
}

/// Parses the first document of `text`. An empty text is an empty mapping.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    // The parser counts characters; diagnostics want bytes.
    let mut bytes_at: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    bytes_at.push(text.len());
    let byte = |chars: usize| bytes_at.get(chars).copied().unwrap_or(text.len());

    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<(Node, Option<Node>)> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut anchor_of: Vec<usize> = Vec::new();
    let mut root: Option<Node> = None;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| SyntaxError {
            offset: byte(e.marker().index()),
            message: e.info().to_string(),
        })?;
        let range = byte(span.start.index())..byte(span.end.index());
        let complete = match event {
            Event::StreamEnd => break,
            Event::DocumentEnd => {
                if root.is_some() {
                    break;
                }
                continue;
            }
            Event::Scalar(value, style, anchor, _) => {
                let node = Node {
                    span: range,
                    kind: Kind::Scalar {
                        text: value.into_owned(),
                        quoted: !matches!(style, ScalarStyle::Plain),
                    },
                };
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(n) => Node {
                    span: range,
                    kind: n.kind.clone(),
                },
                None => {
                    return Err(SyntaxError {
                        offset: range.start,
                        message: "alias of an unknown anchor".to_string(),
                    });
                }
            },
            Event::SequenceStart(anchor, _) => {
                anchor_of.push(anchor);
                stack.push((
                    Node {
                        span: range,
                        kind: Kind::Seq(Vec::new()),
                    },
                    None,
                ));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                anchor_of.push(anchor);
                stack.push((
                    Node {
                        span: range,
                        kind: Kind::Map(Vec::new()),
                    },
                    None,
                ));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((mut node, _)) = stack.pop() else {
                    continue;
                };
                node.span.end = node.span.end.max(range.end);
                let anchor = anchor_of.pop().unwrap_or(0);
                if anchor > 0 {
                    anchors.insert(anchor, node.clone());
                }
                node
            }
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(complete),
            Some((parent, pending_key)) => {
                parent.span.end = parent.span.end.max(complete.span.end);
                match &mut parent.kind {
                    Kind::Seq(items) => items.push(complete),
                    Kind::Map(entries) => match pending_key.take() {
                        None => *pending_key = Some(complete),
                        Some(key) => entries.push((key, complete)),
                    },
                    Kind::Scalar { .. } => {}
                }
            }
        }
    }
    Ok(root.unwrap_or(Node {
        span: 0..0,
        kind: Kind::Map(Vec::new()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_their_byte_spans() {
        let text = "a:\n  b: \"é x\"\n  c: [1, 2]\nd: &x v\ne: *x\n";
        let root = parse(text).unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        assert_eq!(entries.len(), 3);
        let (_, a) = &entries[0];
        let Kind::Map(inner) = &a.kind else { panic!() };
        let (k, v) = &inner[0];
        assert_eq!(&text[k.span.clone()], "b");
        assert_eq!(&text[v.span.clone()], "\"é x\"");
        let (_, e) = &entries[2];
        assert!(matches!(&e.kind, Kind::Scalar { text, .. } if text == "v"));
    }

    #[test]
    fn syntax_errors_are_placed() {
        let err = parse("a: b\n c: [\n").unwrap_err();
        assert!(err.offset > 0, "{err:?}");
    }
}
