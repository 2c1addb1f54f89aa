//! A serde `Deserializer` over the span tree of `tree.rs`, so the derived raw model of `raw.rs`
//! (with `deny_unknown_fields`) can be filled from it while every value keeps its line, column
//! and key path ([`Sp`]).
//!
//! serde stops at the first error. To report every problem at once, [`decode`] records the
//! error, marks the node it came from as skipped (as if it were not written) and runs the
//! derive again, until the model is filled or a bound on problems is reached. Every field of
//! the raw model is optional, so a skipped node never causes a second, derived error.

use super::tree::{Kind, Node, shorten};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

/// The struct name through which [`Sp`] asks [`NodeDe`] for a value's place.
const SP_MARKER: &str = "__chatstorm_spanned";
const SP_FIELDS: &[&str] = &["line", "column", "path", "value"];

/// Past this many problems a file is not worth reading further (and garbage stays cheap).
pub(crate) const MAX_PROBLEMS: usize = 64;

/// Where a value was written: line and column (1-based) and its key path, e.g. `load[1].over`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct At {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Dotted key path with list indices, e.g. `timeline[0].drop_sockets.fraction`.
    pub path: String,
}

/// A raw value with the place it was written.
#[derive(Debug, Clone)]
pub(crate) struct Sp<T> {
    pub value: T,
    pub at: At,
}

/// A decoding problem; where it happened is attached on the way out of the tree.
#[derive(Debug)]
pub(crate) struct DeError {
    pub message: String,
    pub at: Option<At>,
    node: Option<usize>,
}

impl DeError {
    fn attach(mut self, node: &Node, path: &str) -> Self {
        if self.at.is_none() {
            self.at = Some(at_of(node, path));
            self.node = Some(node.id);
        }
        self
    }
}

pub(crate) fn at_of(node: &Node, path: &str) -> At {
    At {
        line: node.line,
        column: node.column,
        path: path.to_owned(),
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            at: None,
            node: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Self::custom(format!(
            "expected {}, found {}",
            plain_expected(&exp.to_string()),
            plain_unexpected(unexp)
        ))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let shown: Vec<&str> = expected.iter().copied().filter(|k| !k.starts_with("__")).collect();
        Self::custom(format!(
            "unknown key `{}`; {}",
            shorten(field),
            super::suggest::hint(field, &shown)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format!(
            "unknown value `{}`; {}",
            shorten(variant),
            super::suggest::hint(variant, expected)
        ))
    }
}

/// Says serde's expectation the way a scenario author thinks of it.
fn plain_expected(exp: &str) -> String {
    match exp {
        "u8" => "a whole number from 0 to 255".to_owned(),
        "u16" => "a whole number from 0 to 65535".to_owned(),
        "u32" => "a whole number from 0 to 4294967295".to_owned(),
        "u64" | "usize" => "a whole number (0 or more)".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "a mapping".to_owned(),
        s if s.starts_with("struct ") => "a mapping".to_owned(),
        s => s.to_owned(),
    }
}

fn plain_unexpected(unexp: de::Unexpected) -> String {
    match unexp {
        de::Unexpected::Str(s) => format!("string \"{}\"", shorten(s)),
        de::Unexpected::Unit | de::Unexpected::Option => "nothing (null)".to_owned(),
        de::Unexpected::Seq => "a list".to_owned(),
        de::Unexpected::Map => "a mapping".to_owned(),
        de::Unexpected::Float(f) => format!("number `{f}`"),
        other => other.to_string(),
    }
}

/// Fills `T` from the tree, skipping every node that failed, and returns what it could fill
/// with every problem met on the way (each with its place).
pub(crate) fn decode<T: DeserializeOwned>(root: &Node) -> (Option<T>, Vec<DeError>) {
    let mut skip = HashSet::new();
    let mut errors: Vec<DeError> = Vec::new();
    loop {
        let de = NodeDe {
            node: root,
            path: String::new(),
            skip: &skip,
        };
        match T::deserialize(de) {
            Ok(value) => return (Some(value), errors),
            Err(err) => {
                let err = err.attach(root, "");
                let node = err.node;
                errors.push(err);
                // The root itself, or a node already skipped (cannot happen, but a loop must
                // not be possible), ends the walk.
                match node {
                    Some(id) if id != root.id && skip.insert(id) => {}
                    _ => return (None, errors),
                }
                if errors.len() >= MAX_PROBLEMS {
                    return (None, errors);
                }
            }
        }
    }
}

fn child_path(parent: &str, key: &Node) -> String {
    let key = match &key.kind {
        Kind::Str(s) => shorten(s),
        Kind::Int(i) => i.to_string(),
        Kind::Bool(b) => b.to_string(),
        Kind::Float(f) => f.to_string(),
        _ => "?".to_owned(),
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    skip: &'a HashSet<usize>,
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => {
                if let Ok(u) = u64::try_from(*i) {
                    visitor.visit_u64(u)
                } else if let Ok(s) = i64::try_from(*i) {
                    visitor.visit_i64(s)
                } else {
                    visitor.visit_i128(*i)
                }
            }
            Kind::Float(f) => visitor.visit_f64(*f),
            Kind::Str(s) => visitor.visit_str(s),
            Kind::Seq(items) => visitor.visit_seq(SeqAcc {
                items: items.iter().enumerate(),
                path: &self.path,
                skip: self.skip,
            }),
            Kind::Map(entries) => visitor.visit_map(MapAcc {
                entries: entries.iter(),
                pending: None,
                path: &self.path,
                skip: self.skip,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.kind {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SP_MARKER {
            return visitor.visit_map(SpAcc { de: self, step: 0 });
        }
        let _ = fields;
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Str(s) => visitor.visit_enum(UnitVariant(s)),
            other => Err(de::Error::custom(format!(
                "expected one word, found {}",
                other.describe()
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Str(s) => visitor.visit_str(s),
            other => Err(de::Error::custom(format!(
                "a key must be a word, found {}",
                other.describe()
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map
    }
}

/// An enum written as one word; only unit variants are used by the raw model.
struct UnitVariant<'a>(&'a str);

impl<'de> EnumAccess<'de> for UnitVariant<'_> {
    type Error = DeError;
    type Variant = UnitOnly;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, UnitOnly), DeError> {
        let de: de::value::StrDeserializer<'_, DeError> = self.0.into_deserializer();
        seed.deserialize(de).map(|v| (v, UnitOnly))
    }
}

struct UnitOnly;

impl<'de> de::VariantAccess<'de> for UnitOnly {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, DeError> {
        Err(de::Error::custom("expected a mapping for this value"))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("expected a list for this value"))
    }
    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], _: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("expected a mapping for this value"))
    }
}

struct SeqAcc<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'a str,
    skip: &'a HashSet<usize>,
}

impl<'de> SeqAccess<'de> for SeqAcc<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        for (index, node) in self.items.by_ref() {
            if self.skip.contains(&node.id) {
                continue;
            }
            let path = format!("{}[{index}]", self.path);
            let de = NodeDe {
                node,
                path: path.clone(),
                skip: self.skip,
            };
            return seed.deserialize(de).map(Some).map_err(|e| e.attach(node, &path));
        }
        Ok(None)
    }
}

struct MapAcc<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    pending: Option<(&'a Node, String)>,
    path: &'a str,
    skip: &'a HashSet<usize>,
}

impl<'de> MapAccess<'de> for MapAcc<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        for (key, value) in self.entries.by_ref() {
            if self.skip.contains(&key.id) || self.skip.contains(&value.id) {
                continue;
            }
            let path = child_path(self.path, key);
            let de = NodeDe {
                node: key,
                path: path.clone(),
                skip: self.skip,
            };
            let k = seed.deserialize(de).map_err(|e| e.attach(key, &path))?;
            self.pending = Some((value, path));
            return Ok(Some(k));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((node, path)) = self.pending.take() else {
            return Err(de::Error::custom("a value was read before its key"));
        };
        let de = NodeDe {
            node,
            path: path.clone(),
            skip: self.skip,
        };
        seed.deserialize(de).map_err(|e| e.attach(node, &path))
    }
}

/// Hands [`Sp`]'s visitor the place of the node, then the node itself as `value`.
struct SpAcc<'a> {
    de: NodeDe<'a>,
    step: usize,
}

impl<'de> MapAccess<'de> for SpAcc<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(name) = SP_FIELDS.get(self.step) else {
            return Ok(None);
        };
        let de: de::value::StrDeserializer<'_, DeError> = name.into_deserializer();
        seed.deserialize(de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let step = self.step;
        self.step += 1;
        match step {
            0 => seed.deserialize(u64::from(self.de.node.line).into_deserializer()),
            1 => seed.deserialize(u64::from(self.de.node.column).into_deserializer()),
            2 => {
                let de: de::value::StrDeserializer<'_, DeError> = self.de.path.as_str().into_deserializer();
                seed.deserialize(de)
            }
            _ => {
                let de = NodeDe {
                    node: self.de.node,
                    path: self.de.path.clone(),
                    skip: self.de.skip,
                };
                seed.deserialize(de).map_err(|e| e.attach(self.de.node, &self.de.path))
            }
        }
    }
}

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SP_MARKER, SP_FIELDS, SpVisitor(PhantomData))
    }
}

struct SpVisitor<T>(PhantomData<T>);

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for SpVisitor<T> {
    type Value = Sp<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value with its place in the scenario")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sp<T>, A::Error> {
        let mut at = At::default();
        let mut value = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "line" => at.line = u32::try_from(map.next_value::<u64>()?).unwrap_or(u32::MAX),
                "column" => at.column = u32::try_from(map.next_value::<u64>()?).unwrap_or(u32::MAX),
                "path" => at.path = map.next_value::<String>()?,
                _ => value = Some(map.next_value::<T>()?),
            }
        }
        match value {
            Some(value) => Ok(Sp { value, at }),
            None => Err(de::Error::custom("a value is missing")),
        }
    }
}
