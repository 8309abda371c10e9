//! Walking a YAML mapping field by field: typed getters that name each
//! field's path in their errors, null-as-absent, ignored-field warnings, and
//! the rejection of every field nothing took.

use std::collections::HashMap;

use crate::cli::yaml::Value;

use super::{ManifestError, Result};
use crate::quantity::QuantityError;

/// One YAML mapping under conversion. Known fields are taken out one by one;
/// [`Fields::finish`] rejects whatever is left. A field set to null counts as
/// absent, as it does in Kubernetes.
#[derive(Debug)]
pub(super) struct Fields {
    /// Path of this mapping from the document root; empty for the root.
    pub(super) path: String,
    entries: Vec<(String, Value)>,
}

impl Fields {
    pub(super) fn new(value: Value, path: String) -> Result<Self> {
        let mapping = match value {
            Value::Mapping(mapping) => mapping,
            other => {
                let found = describe(&other);
                return Err(field_error(
                    path,
                    format!("expected a mapping, found {found}"),
                ));
            }
        };
        let mut entries = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let Value::String(key) = key else {
                let found = describe(&key);
                return Err(field_error(
                    path,
                    format!("keys must be strings, found {found}"),
                ));
            };
            if !value.is_null() {
                entries.push((key, value));
            }
        }
        Ok(Self { path, entries })
    }

    pub(super) fn empty(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            entries: Vec::new(),
        }
    }

    pub(super) fn path_of(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    pub(super) fn first_key(&self) -> Option<&str> {
        self.entries.first().map(|(key, _)| key.as_str())
    }

    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Takes `key` and converts it with `convert`, which gets the field path.
    pub(super) fn get<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(Value, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        let path = self.path_of(key);
        self.take(key)
            .map(|value| convert(value, &path))
            .transpose()
    }

    pub(super) fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.get(key, to_string)
    }

    pub(super) fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        self.get(key, to_bool)
    }

    pub(super) fn int<T: TryFrom<i64>>(&mut self, key: &str) -> Result<Option<T>> {
        self.get(key, to_int)
    }

    pub(super) fn strings(&mut self, key: &str) -> Result<Vec<String>> {
        self.list(key, to_string)
    }

    pub(super) fn ints(&mut self, key: &str) -> Result<Vec<i64>> {
        self.list(key, to_int)
    }

    pub(super) fn list<T>(
        &mut self,
        key: &str,
        convert: fn(Value, &str) -> Result<T>,
    ) -> Result<Vec<T>> {
        let items = self.get(key, to_items)?.unwrap_or_default();
        items
            .into_iter()
            .map(|(path, item)| convert(item, &path))
            .collect()
    }

    pub(super) fn list_of_fields(&mut self, key: &str) -> Result<Vec<Fields>> {
        self.list(key, |item, path| Fields::new(item, path.to_owned()))
    }

    pub(super) fn fields(&mut self, key: &str) -> Result<Option<Fields>> {
        self.get(key, |value, path| Fields::new(value, path.to_owned()))
    }

    /// A `map[string]string`, such as labels; a key set to null is left out.
    pub(super) fn string_map(&mut self, key: &str) -> Result<HashMap<String, String>> {
        let Some(map) = self.fields(key)? else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::with_capacity(map.entries.len());
        for (name, value) in map.entries {
            let path = child_path(&map.path, &name);
            out.insert(name, to_string(value, &path)?);
        }
        Ok(out)
    }

    /// An enum spelled as Kubernetes spells it; absent or "" is unspecified (0).
    pub(super) fn enumeration<E: Copy + Into<i32>>(
        &mut self,
        key: &str,
        choices: &[(&str, E)],
    ) -> Result<i32> {
        let Some(text) = self.string(key)? else {
            return Ok(0);
        };
        if text.is_empty() {
            return Ok(0);
        }
        match choices.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => Ok((*value).into()),
            None => {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                Err(field_error(
                    self.path_of(key),
                    format!("expected one of {}, found {text:?}", names.join(", ")),
                ))
            }
        }
    }

    /// An int-or-string port: a number or the name of a container port.
    pub(super) fn port(&mut self, key: &str) -> Result<String> {
        let port = self.get(key, |value, path| match value {
            Value::String(name) => Ok(name),
            Value::Number(number) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
            other => Err(field_error(
                path,
                format!("expected a port number or name, found {}", describe(&other)),
            )),
        })?;
        Ok(port.unwrap_or_default())
    }

    /// A resource quantity, given as a string or a bare number.
    pub(super) fn quantity(
        &mut self,
        key: &str,
        parse: fn(&str) -> Result<i64, QuantityError>,
    ) -> Result<Option<i64>> {
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

    /// Rejects the first field nothing took.
    pub(super) fn finish(self) -> Result<()> {
        match self.entries.first() {
            Some((key, _)) => Err(field_error(self.path_of(key), "not supported")),
            None => Ok(()),
        }
    }
}

pub(super) fn field_error(path: impl Into<String>, rule: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        path: path.into(),
        rule: rule.into(),
    }
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
