//! The YAML text as a tree of nodes that each know their line and column.
//!
//! serde-saphyr parses the text (and owns every syntax error, duplicate key and alias-bomb
//! check); this module keeps the result as a plain tree so that `de.rs` can walk it as many
//! times as it needs to report every problem, not only the first. Nothing here knows about
//! scenarios.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};
use std::fmt;

/// One YAML node with the place it was written.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Pre-order number, unique within one tree; `de.rs` uses it to skip broken nodes.
    pub id: usize,
    pub line: u32,
    pub column: u32,
    pub kind: Kind,
}

/// What a node holds, after YAML's core schema has typed the scalars.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Kind {
    /// How the node is named in messages: "a string \"x\"", "a mapping", ...
    pub fn describe(&self) -> String {
        match self {
            Kind::Null => "nothing (null)".to_owned(),
            Kind::Bool(b) => format!("boolean `{b}`"),
            Kind::Int(i) => format!("integer `{i}`"),
            Kind::Float(f) => format!("number `{f}`"),
            Kind::Str(s) => format!("string \"{}\"", shorten(s)),
            Kind::Seq(_) => "a list".to_owned(),
            Kind::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// Cuts long values so that every problem stays one readable line.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// A YAML-level failure: the text is not YAML, or not one document.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Parses `text` into a tree.
///
/// # Errors
/// The one syntax problem serde-saphyr found (a YAML parser cannot go on after one), with its
/// place; an empty document is reported as such.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    match serde_saphyr::from_str::<Option<Spanned<RawNode>>>(text) {
        Ok(Some(root)) => {
            let mut next_id = 0;
            Ok(number(root, &mut next_id))
        }
        Ok(None) => Err(SyntaxError {
            line: 1,
            column: 1,
            message: "the file holds no scenario (it is empty)".to_owned(),
        }),
        Err(err) => {
            let (line, column) = err
                .location()
                .map(|l| (clamp(l.line()), clamp(l.column())))
                .unwrap_or((1, 1));
            let formatter = serde_saphyr::DefaultMessageFormatter;
            let message = formatter.format_message(err.without_snippet()).into_owned();
            Err(SyntaxError {
                line: line.max(1),
                column: column.max(1),
                message: tidy_message(&message),
            })
        }
    }
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Makes a parser message fit our one-line, lowercase style.
fn tidy_message(message: &str) -> String {
    let line = message.lines().next().unwrap_or("invalid yaml").trim();
    let mut chars = line.chars();
    let mut out = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect::<String>(),
        None => "invalid yaml".to_owned(),
    };
    while out.ends_with('.') {
        out.pop();
    }
    format!("invalid yaml: {out}")
}

/// Gives every node its pre-order id.
fn number(spanned: Spanned<RawNode>, next_id: &mut usize) -> Node {
    let id = *next_id;
    *next_id += 1;
    let kind = match spanned.value {
        RawNode::Null => Kind::Null,
        RawNode::Bool(b) => Kind::Bool(b),
        RawNode::Int(i) => Kind::Int(i),
        RawNode::Float(f) => Kind::Float(f),
        RawNode::Str(s) => Kind::Str(s),
        RawNode::Seq(items) => Kind::Seq(items.into_iter().map(|n| number(n, next_id)).collect()),
        RawNode::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let k = number(k, next_id);
                    let v = number(v, next_id);
                    (k, v)
                })
                .collect(),
        ),
    };
    Node {
        id,
        line: clamp(spanned.referenced.line()),
        column: clamp(spanned.referenced.column()),
        kind,
    }
}

/// The shape serde-saphyr fills in; numbered into [`Node`] afterwards.
enum RawNode {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawNodeVisitor)
    }
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
        i128::try_from(v)
            .map(RawNode::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<RawNode, E> {
        Err(E::custom("binary values are not supported in a scenario"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawNode>>()? {
            let value = map.next_value::<Spanned<RawNode>>()?;
            entries.push((key, value));
        }
        Ok(RawNode::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_columns_and_scalar_types() {
        let root = parse("a: 1\nb:\n  - x\n  - 2.5\nc: true\nd: ~\n").expect("parses");
        let Kind::Map(entries) = &root.kind else {
            panic!("root is a map: {root:?}")
        };
        assert_eq!(entries.len(), 4);
        let (k, v) = &entries[0];
        assert!(matches!(&k.kind, Kind::Str(s) if s == "a"));
        assert_eq!((k.line, k.column), (1, 1));
        assert!(matches!(v.kind, Kind::Int(1)));
        assert_eq!((v.line, v.column), (1, 4));
        let (_, list) = &entries[1];
        let Kind::Seq(items) = &list.kind else {
            panic!("b is a list")
        };
        assert_eq!((items[1].line, items[1].column), (4, 5));
        assert!(matches!(items[1].kind, Kind::Float(f) if f == 2.5));
        assert!(matches!(entries[2].1.kind, Kind::Bool(true)));
        assert!(matches!(entries[3].1.kind, Kind::Null));
    }

    #[test]
    fn syntax_errors_carry_a_place() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed flow sequence");
        assert!(err.line >= 1 && err.column >= 1);
        assert!(err.message.starts_with("invalid yaml: "), "{}", err.message);
    }

    #[test]
    fn empty_text_is_reported() {
        let err = parse("# only a comment\n").expect_err("empty");
        assert_eq!((err.line, err.column), (1, 1));
    }
}
