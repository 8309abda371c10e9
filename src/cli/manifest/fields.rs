//! Walking a YAML mapping field by field: typed getters that name each
//! field's path in the errors they collect, null-as-absent, ignored-field
//! warnings, and the refusal of every field nothing took.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::cli::yaml::Value;

use super::{FieldErrors, ManifestError, Result};
use crate::quantity::QuantityError;

/// Where the field errors of one conversion are collected, so that a
/// manifest is refused with all of them at once.
pub(super) type Errors = Rc<RefCell<Vec<FieldError>>>;

/// One YAML mapping under conversion. Known fields are taken out one by one;
/// [`Fields::finish`] refuses whatever is left. A field set to null counts as
/// absent, as it does in Kubernetes. Getters never fail: a value of the
/// wrong shape is recorded in the conversion's errors and reads as absent.
#[derive(Debug)]
pub(super) struct Fields {
    /// Path of this mapping from the document root; empty for the root.
    pub(super) path: String,
    entries: Vec<(String, Value)>,
    errors: Errors,
}

impl Fields {
    /// A mapping read into `errors`; `None` (the error recorded) when
    /// `value` is not a mapping.
    pub(super) fn new(value: Value, path: String, errors: &Errors) -> Option<Self> {
        let mapping = match value {
            Value::Mapping(mapping) => mapping,
            other => {
                let found = describe(&other);
                push(errors, path, format!("expected a mapping, found {found}"));
                return None;
            }
        };
        let mut entries = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let Value::String(key) = key else {
                let found = describe(&key);
                push(errors, path, format!("keys must be strings, found {found}"));
                return None;
            };
            if !value.is_null() {
                entries.push((key, value));
            }
        }
        Some(Self {
            path,
            entries,
            errors: Rc::clone(errors),
        })
    }

    pub(super) fn empty(path: &str, errors: &Errors) -> Self {
        Self {
            path: path.to_owned(),
            entries: Vec::new(),
            errors: Rc::clone(errors),
        }
    }

    /// Records a field error of this conversion.
    pub(super) fn error(&self, path: impl Into<String>, rule: impl Into<String>) {
        push(&self.errors, path, rule);
    }

    pub(super) fn path_of(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    pub(super) fn keys(&self) -> Vec<String> {
        self.entries.iter().map(|(key, _)| key.clone()).collect()
    }

    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Returns a field [`Fields::take`] took, to be read again.
    pub(super) fn put_back(&mut self, key: &str, value: Value) {
        self.entries.push((key.to_owned(), value));
    }

    /// Takes `key` and converts it with `convert`, which gets the field
    /// path; a conversion error is recorded and reads as absent.
    pub(super) fn get<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(Value, &str) -> Result<T>,
    ) -> Option<T> {
        let path = self.path_of(key);
        let value = self.take(key)?;
        self.ok(convert(value, &path))
    }

    /// The value of `result`; its errors recorded.
    pub(super) fn ok<T>(&self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                record(&self.errors, error);
                None
            }
        }
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        self.get(key, to_string)
    }

    pub(super) fn bool(&mut self, key: &str) -> Option<bool> {
        self.get(key, to_bool)
    }

    pub(super) fn int<T: TryFrom<i64>>(&mut self, key: &str) -> Option<T> {
        self.get(key, to_int)
    }

    pub(super) fn strings(&mut self, key: &str) -> Vec<String> {
        self.list(key, to_string)
    }

    pub(super) fn ints(&mut self, key: &str) -> Vec<i64> {
        self.list(key, to_int)
    }

    /// The items of a list that convert; the others are recorded.
    pub(super) fn list<T>(&mut self, key: &str, convert: fn(Value, &str) -> Result<T>) -> Vec<T> {
        let items = self.get(key, to_items).unwrap_or_default();
        items
            .into_iter()
            .filter_map(|(path, item)| self.ok(convert(item, &path)))
            .collect()
    }

    pub(super) fn list_of_fields(&mut self, key: &str) -> Vec<Fields> {
        let items = self.get(key, to_items).unwrap_or_default();
        items
            .into_iter()
            .filter_map(|(path, item)| Fields::new(item, path, &self.errors))
            .collect()
    }

    pub(super) fn fields(&mut self, key: &str) -> Option<Fields> {
        let path = self.path_of(key);
        let value = self.take(key)?;
        Fields::new(value, path, &self.errors)
    }

    /// A `map[string]string`, such as labels; a key set to null is left out.
    pub(super) fn string_map(&mut self, key: &str) -> HashMap<String, String> {
        self.string_pairs(key).into_iter().collect()
    }

    /// A `map[string]string` in document order.
    pub(super) fn string_pairs(&mut self, key: &str) -> Vec<(String, String)> {
        let Some(map) = self.fields(key) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.entries.len());
        for (name, value) in map.entries {
            let path = child_path(&map.path, &name);
            if let Some(value) = self.ok(to_string(value, &path)) {
                out.push((name, value));
            }
        }
        out
    }

    /// An enum spelled as Kubernetes spells it; absent or "" is unspecified (0).
    pub(super) fn enumeration<E: Copy + Into<i32>>(
        &mut self,
        key: &str,
        choices: &[(&str, E)],
    ) -> i32 {
        let Some(text) = self.string(key) else {
            return 0;
        };
        if text.is_empty() {
            return 0;
        }
        match choices.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => (*value).into(),
            None => {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                self.error(
                    self.path_of(key),
                    format!("expected one of {}, found {text:?}", names.join(", ")),
                );
                0
            }
        }
    }

    /// An int-or-string port: a number or the name of a container port.
    pub(super) fn port(&mut self, key: &str) -> String {
        self.get(key, |value, path| match value {
            Value::String(name) => Ok(name),
            Value::Number(number) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
            other => Err(field_error(
                path,
                format!("expected a port number or name, found {}", describe(&other)),
            )),
        })
        .unwrap_or_default()
    }

    /// A resource quantity, given as a string or a bare number.
    pub(super) fn quantity(
        &mut self,
        key: &str,
        parse: fn(&str) -> Result<i64, QuantityError>,
    ) -> Option<i64> {
        self.get(key, |value, path| {
            let text = match value {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                other => {
                    return Err(field_error(
                        path,
                        format!("expected a quantity, found {}", describe(&other)),
                    ));
                }
            };
            parse(&text).map_err(|error| field_error(path, error.to_string()))
        })
    }

    /// Takes the fields of `table` that are present and warns about each one
    /// that holds something.
    pub(super) fn ignore(&mut self, table: &[(&str, &str)], warnings: &mut Vec<String>) {
        for (key, why) in table {
            if let Some(value) = self.take(key)
                && !is_empty(&value)
            {
                warnings.push(format!("{}: {why}", self.path_of(key)));
            }
        }
    }

    /// Refuses every field nothing took.
    pub(super) fn finish(&mut self) {
        for (key, _) in std::mem::take(&mut self.entries) {
            self.error(self.path_of(&key), "not supported");
        }
    }
}

/// One field podstart cannot represent, or a value of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub rule: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

fn push(errors: &Errors, path: impl Into<String>, rule: impl Into<String>) {
    errors.borrow_mut().push(FieldError {
        path: path.into(),
        rule: rule.into(),
    });
}

/// Records `error`: its field errors, or itself as one.
pub(super) fn record(errors: &Errors, error: ManifestError) {
    match error {
        ManifestError::Fields(list) => errors.borrow_mut().extend(list.0),
        other => push(errors, String::new(), other.to_string()),
    }
}

pub(super) fn field_error(path: impl Into<String>, rule: impl Into<String>) -> ManifestError {
    ManifestError::Fields(FieldErrors(vec![FieldError {
        path: path.into(),
        rule: rule.into(),
    }]))
}

/// `parent.key`, or `parent[key]` for keys that are not plain words
/// (`metadata.labels[app.kubernetes.io/name]`).
pub(super) fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key}]"),
    }
}

pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
    }
}

pub(super) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Sequence(items) => items.is_empty(),
        Value::Mapping(mapping) => mapping.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

pub(super) fn to_string(value: Value, path: &str) -> Result<String> {
    match value {
        Value::String(text) => Ok(text),
        other @ (Value::Number(_) | Value::Bool(_)) => Err(field_error(
            path,
            format!("expected a string, found {} (quote it)", describe(&other)),
        )),
        other => Err(field_error(
            path,
            format!("expected a string, found {}", describe(&other)),
        )),
    }
}

pub(super) fn to_bool(value: Value, path: &str) -> Result<bool> {
    match value {
        Value::Bool(flag) => Ok(flag),
        other => Err(field_error(
            path,
            format!("expected true or false, found {}", describe(&other)),
        )),
    }
}

pub(super) fn to_int<T: TryFrom<i64>>(value: Value, path: &str) -> Result<T> {
    let number = match &value {
        Value::Number(number) => number,
        other => {
            return Err(field_error(
                path,
                format!("expected an integer, found {}", describe(other)),
            ));
        }
    };
    let Some(wide) = number.as_i64() else {
        let rule = if number.is_u64() {
            format!("{number} is out of range")
        } else {
            format!("expected an integer, found {number}")
        };
        return Err(field_error(path, rule));
    };
    T::try_from(wide).map_err(|_| field_error(path, format!("{wide} is out of range")))
}

/// The items of a list, each with its path (`path[i]`).
pub(super) fn to_items(value: Value, path: &str) -> Result<Vec<(String, Value)>> {
    match value {
        Value::Sequence(items) => Ok(items
            .into_iter()
            .enumerate()
            .map(|(index, item)| (format!("{path}[{index}]"), item))
            .collect()),
        other => Err(field_error(
            path,
            format!("expected a list, found {}", describe(&other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_manifest;
    use super::super::test_support::*;

    #[test]
    fn empty_and_null_fields_are_absent() {
        // kubectl's own output style: empty ignored fields warn about nothing;
        // null fields, even unsupported ones, mean nothing.
        let text = pod_yaml(
            "{tolerations: [], nodeSelector: {}, nodeName: \"\", activeDeadlineSeconds: null, \
             containers: [{name: a, image: i, envFrom: null, command: null, resources: {}}]}",
        );
        let manifest = parse_manifest(&text).expect("converts");
        assert_eq!(manifest.warnings, Vec::<String>::new());
        let container = &pod_spec(&manifest).containers[0];
        assert!(container.command.is_empty());
        assert_eq!(container.resources, None);
    }
}
