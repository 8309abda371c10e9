//! YAML as podstart reads it: [`documents`] parses a stream of one or more
//! documents (YAML 1.2, so JSON too) into [`Value`]s, dynamic values whose
//! mappings keep their keys in document order.
//!
//! Plain scalars resolve as the YAML 1.2 core schema spells them: only
//! `true`/`false` (any case form) are booleans, so `yes` and `on` stay
//! strings, and numbers with leading zeros or underscores (`0755`, `1_000`)
//! stay strings too. Anchors, aliases and merge keys (`<<`) are resolved;
//! duplicate keys and application tags (`!custom`) are errors.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a YAML stream cannot be read; carries the line and column.
pub type Error = serde_saphyr::Error;

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Sequence(Vec<Value>),
    /// Entries in document order; keys are unique.
    Mapping(Vec<(Value, Value)>),
}

/// A YAML number, as an integer when it is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    /// Only for integers above `i64::MAX`.
    UInt(u64),
    Float(f64),
}

/// The non-empty documents of `text`, in order. An empty document (or one
/// that is only `null`) is left out.
pub fn documents(text: &str) -> Result<Vec<Value>, Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        // An application tag (`!custom 7`) has no meaning in a manifest.
        reject_unsupported_tags: true,
        // Errors carry the line and column, never a copy of the input: a
        // Secret's values must not reach the terminal.
        with_snippet: false,
    };
    serde_saphyr::from_multiple_with_options(text, options)
}

impl Value {
    /// The value of `key` in a mapping; `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Mapping(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl Number {
    pub fn is_i64(&self) -> bool {
        matches!(self, Number::Int(_))
    }

    pub fn is_u64(&self) -> bool {
        match self {
            Number::Int(n) => *n >= 0,
            Number::UInt(_) => true,
            Number::Float(_) => false,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(n) => Some(*n),
            Number::UInt(_) | Number::Float(_) => None,
        }
    }
}

/// Integers as written; floats always with a fraction or an exponent
/// (`1000.0`, `0.5`, `1e300`), and `.inf`, `-.inf`, `.nan` as YAML spells them.
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(n) => write!(f, "{n}"),
            Number::UInt(n) => write!(f, "{n}"),
            Number::Float(x) if x.is_nan() => f.write_str(".nan"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { ".inf" } else { "-.inf" })
            }
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(Number::Int(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(match i64::try_from(value) {
            Ok(n) => Number::Int(n),
            Err(_) => Number::UInt(value),
        }))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Value::Number(Number::Float(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Mapping(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    fn one(text: &str) -> Value {
        let mut documents = documents(text).expect("parses");
        assert_eq!(documents.len(), 1, "{text}");
        documents.remove(0)
    }

    #[test]
    fn single_quoted_escapes_are_one_quote() {
        // `''` inside single quotes is one quote, in flow and block style,
        // as kubectl reads it.
        let doc = one(concat!(
            "command: ['sh', '-c', 'echo it''s ok']\n",
            "args: ['echo ''quoted'' word']\n",
            "block:\n",
            "  - '''lead'\n",
            "  - 'trail'''\n",
            "  - ''\n",
            "folded: 'one\n",
            "  it''s two'\n",
        ));
        let seq = |key: &str| match doc.get(key) {
            Some(Value::Sequence(items)) => items.clone(),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(
            seq("command"),
            [string("sh"), string("-c"), string("echo it's ok")]
        );
        assert_eq!(seq("args"), [string("echo 'quoted' word")]);
        assert_eq!(
            seq("block"),
            [string("'lead"), string("trail'"), string("")]
        );
        assert_eq!(doc.get("folded"), Some(&string("one it's two")));
    }

    #[test]
    fn documents_of_a_stream_in_order_without_empty_ones() {
        let docs = documents("---\na: 1\n---\n---\n~\n---\nb: [x]\n...\n").expect("parses");
        assert_eq!(
            docs,
            [
                Value::Mapping(vec![(string("a"), Value::Number(Number::Int(1)))]),
                Value::Mapping(vec![(string("b"), Value::Sequence(vec![string("x")]))]),
            ]
        );
        assert_eq!(documents("").expect("parses"), []);
    }

    #[test]
    fn mappings_keep_document_order() {
        let Value::Mapping(entries) = one("z: 1\na: 2\nm: 3\n") else {
            panic!("a mapping");
        };
        let keys: Vec<_> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn scalars_resolve_as_the_core_schema() {
        let doc = one(
            "[true, False, yes, no, on, off, y, ~, null, '', 0755, 1_000, 0x1F, 7, -7, \
             18446744073709551615, 0.5, 1e3, .inf, -.inf, '5', \"5\"]",
        );
        let Value::Sequence(items) = doc else {
            panic!("a list: {doc:?}");
        };
        let int = |n| Value::Number(Number::Int(n));
        let float = |x| Value::Number(Number::Float(x));
        assert_eq!(
            items,
            [
                Value::Bool(true),
                Value::Bool(false),
                string("yes"),
                string("no"),
                string("on"),
                string("off"),
                string("y"),
                Value::Null,
                Value::Null,
                string(""),
                string("0755"),
                string("1_000"),
                int(31),
                int(7),
                int(-7),
                Value::Number(Number::UInt(u64::MAX)),
                float(0.5),
                float(1000.0),
                float(f64::INFINITY),
                float(f64::NEG_INFINITY),
                string("5"),
                string("5"),
            ]
        );
    }

    #[test]
    fn numbers_print_as_yaml_spells_them() {
        let printed: Vec<String> = [
            Number::Int(-3),
            Number::UInt(u64::MAX),
            Number::Float(1000.0),
            Number::Float(0.5),
            Number::Float(1e300),
            Number::Float(f64::INFINITY),
            Number::Float(f64::NEG_INFINITY),
            Number::Float(f64::NAN),
        ]
        .iter()
        .map(Number::to_string)
        .collect();
        assert_eq!(
            printed,
            [
                "-3",
                "18446744073709551615",
                "1000.0",
                "0.5",
                "1e300",
                ".inf",
                "-.inf",
                ".nan"
            ]
        );
    }

    #[test]
    fn anchors_and_merge_keys_are_resolved_and_duplicates_refused() {
        let doc = one("base: &b {p: 1, q: 2}\nmerged:\n  <<: *b\n  q: 3\n");
        let merged = doc.get("merged").expect("merged");
        assert_eq!(merged.get("p"), Some(&Value::Number(Number::Int(1))));
        assert_eq!(merged.get("q"), Some(&Value::Number(Number::Int(3))));
        assert!(merged.get("<<").is_none());

        let error = documents("kind: Pod\nkind: Pod\n").expect_err("duplicate key");
        assert!(error.location().is_some(), "{error}");
        assert_eq!(
            one("a: !!str 5\n").get("a"),
            Some(&string("5")),
            "standard tags apply"
        );
        documents("a: !custom 7\n").expect_err("application tag");
    }

    #[test]
    fn errors_name_the_line_without_quoting_the_input() {
        let error = documents("password: hunter2\nmetadata: [\n").expect_err("malformed");
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
