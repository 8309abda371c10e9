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
///
/// `\'` in a double-quoted string (a shell's `'\''` pasted into YAML) is
/// not a YAML 1.2 escape, but go-yaml, and so kubectl, read it as a single
/// quote: a stream refused for it is read again with those escapes
/// resolved, and the first error is reported if that fails too.
pub fn documents(text: &str) -> Result<Vec<Value>, Error> {
    match parse(text) {
        Err(error) if text.contains("\\'") => match escaped_quotes_resolved(text) {
            Some(resolved) => parse(&resolved).map_err(|_| error),
            None => Err(error),
        },
        other => other,
    }
}

/// `text` with each `\'` inside a double-quoted scalar made `'`; `None`
/// when there is none. Quoted scalars are found as YAML starts them: after
/// the start of a line, indentation, `- `, `: `, `? `, `[`, `{` or `,`;
/// comments and block scalars are passed over.
fn escaped_quotes_resolved(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut chars = text.chars().peekable();
    // The last character outside quotes, and the indentation of the line.
    let mut previous: Option<char> = None;
    let mut block_indent: Option<usize> = None;
    let mut line_start = true;
    let mut indent = 0;
    while let Some(c) = chars.next() {
        if line_start {
            // Inside a block scalar: copy lines more indented than its key.
            if let Some(key_indent) = block_indent {
                let mut line = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next == '\n' {
                        break;
                    }
                    line.push(next);
                    chars.next();
                }
                let depth = line.len() - line.trim_start_matches(' ').len();
                if line.trim().is_empty() || depth > key_indent {
                    out.push_str(&line);
                    if let Some(newline) = chars.next() {
                        out.push(newline);
                    }
                    continue;
                }
                // A line of the document again: scan it from its start.
                let rest: String = line.chars().chain(chars).collect();
                out.push_str(&escaped_quotes_resolved_from(&rest, &mut changed));
                return changed.then_some(out);
            }
            indent = 0;
        }
        if c == ' ' && line_start {
            indent += 1;
            out.push(c);
            continue;
        }
        line_start = false;
        match c {
            '\n' => {
                line_start = true;
                previous = None;
                out.push(c);
            }
            '#' if previous.is_none_or(|p| p == ' ' || p == '\t') => {
                out.push(c);
                while let Some(&next) = chars.peek() {
                    if next == '\n' {
                        break;
                    }
                    out.push(next);
                    chars.next();
                }
            }
            '\'' | '"' if previous.is_none_or(|p| " \t[{,".contains(p)) => {
                out.push(c);
                copy_quoted(c, &mut chars, &mut out, &mut changed);
                previous = Some(c);
            }
            '|' | '>' if previous.is_none_or(|p| p == ' ') => {
                out.push(c);
                let mut header = String::new();
                while let Some(&next) = chars.peek() {
                    if next == '\n' {
                        break;
                    }
                    header.push(next);
                    chars.next();
                }
                let header_ok = header
                    .split('#')
                    .next()
                    .is_some_and(|h| h.trim().chars().all(|h| "+-0123456789".contains(h)));
                if header_ok {
                    block_indent = Some(indent);
                }
                out.push_str(&header);
                previous = Some(c);
            }
            _ => {
                out.push(c);
                previous = Some(c);
            }
        }
    }
    changed.then_some(out)
}

/// As [`escaped_quotes_resolved`], for the rest of a stream; records
/// whether anything changed in `changed`.
fn escaped_quotes_resolved_from(text: &str, changed: &mut bool) -> String {
    match escaped_quotes_resolved(text) {
        Some(resolved) => {
            *changed = true;
            resolved
        }
        None => text.to_owned(),
    }
}

/// Copies a quoted scalar after its opening `quote`, through its closing
/// one, resolving `\'` in a double-quoted one.
fn copy_quoted(
    quote: char,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
    changed: &mut bool,
) {
    while let Some(c) = chars.next() {
        match (quote, c) {
            ('\'', '\'') if chars.peek() == Some(&'\'') => {
                out.push_str("''");
                chars.next();
            }
            ('"', '\\') => match chars.next() {
                Some('\'') => {
                    out.push('\'');
                    *changed = true;
                }
                Some(escaped) => {
                    out.push('\\');
                    out.push(escaped);
                }
                None => out.push('\\'),
            },
            _ if c == quote => {
                out.push(c);
                return;
            }
            _ => out.push(c),
        }
    }
}

fn parse(text: &str) -> Result<Vec<Value>, Error> {
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
mod tests;
