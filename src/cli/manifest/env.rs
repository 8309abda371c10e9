//! Container environment: literal `env` entries. Sources resolved by the
//! API server or the kubelet (`valueFrom`, `envFrom`) are refused.

use super::Result;
use super::fields::{Fields, field_error};
use crate::proto::v1::EnvVar;

pub(super) fn env_var(mut e: Fields) -> Result<EnvVar> {
    if e.take("valueFrom").is_some() {
        return Err(field_error(
            e.path_of("valueFrom"),
            "only literal values are supported; resolve valueFrom before calling podstart",
        ));
    }
    let var = EnvVar {
        name: e.string("name")?.unwrap_or_default(),
        value: e.string("value")?.unwrap_or_default(),
        ..Default::default()
    };
    e.finish()?;
    Ok(var)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{containers: [{name: a, image: i}, {name: b, image: i, envFrom: [{configMapRef: {name: c}}]}]}",
                "spec.containers[1].envFrom",
                "not supported",
            ),
            (
                "{containers: [{name: a, env: [{name: X, value: x}, {name: Y, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]}]}",
                "spec.containers[0].env[1].valueFrom",
                "only literal values are supported; resolve valueFrom before calling podstart",
            ),
            (
                "{containers: [{name: a, env: [{name: X, value: 8080}]}]}",
                "spec.containers[0].env[0].value",
                "expected a string, found a number (quote it)",
            ),
        ];
        assert_spec_field_errors(cases);
    }
}
