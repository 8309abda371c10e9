//! Container and pod-level resources: CPU and memory requests and limits,
//! as Kubernetes quantities, with requests defaulting to limits.

use super::fields::Fields;
use crate::proto::v1::Resources;
use crate::quantity;

/// CPU and memory of one resource list (`requests` or `limits`).
#[derive(Debug, Default)]
pub(super) struct ResourceList {
    cpu_millis: Option<i64>,
    memory_bytes: Option<i64>,
}

/// `None` when neither CPU nor memory is set. A request left unset defaults
/// to its limit, as the API server does.
pub(super) fn resources(mut r: Fields) -> Option<Resources> {
    let requests = r.fields("requests").map(resource_list);
    let limits = r.fields("limits").map(resource_list);
    r.finish();
    let requests = requests.unwrap_or_default();
    let limits = limits.unwrap_or_default();
    if requests.cpu_millis.is_none()
        && requests.memory_bytes.is_none()
        && limits.cpu_millis.is_none()
        && limits.memory_bytes.is_none()
    {
        return None;
    }
    Some(Resources {
        cpu_request_millis: requests.cpu_millis.or(limits.cpu_millis).unwrap_or(0),
        cpu_limit_millis: limits.cpu_millis.unwrap_or(0),
        memory_request_bytes: requests.memory_bytes.or(limits.memory_bytes).unwrap_or(0),
        memory_limit_bytes: limits.memory_bytes.unwrap_or(0),
    })
}

pub(super) fn resource_list(mut list: Fields) -> ResourceList {
    let resources = ResourceList {
        cpu_millis: list.quantity("cpu", quantity::parse_millis),
        memory_bytes: list.quantity("memory", quantity::parse_units),
    };
    for name in list.keys() {
        list.error(
            list.path_of(&name),
            "not supported: podstart sets only cpu and memory",
        );
    }
    resources
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn field_errors_name_the_field_path() {
        // (spec as a YAML flow mapping, path, start of the rule)
        let cases: &[(&str, &str, &str)] = &[
            (
                "{containers: [{name: a, resources: {limits: {cpu: abc}}}]}",
                "spec.containers[0].resources.limits.cpu",
                "\"abc\" is not a Kubernetes quantity",
            ),
            (
                "{containers: [{name: a, resources: {requests: {memory: 1 Gi}}}]}",
                "spec.containers[0].resources.requests.memory",
                "\"1 Gi\" is not a Kubernetes quantity",
            ),
            (
                "{containers: [{name: a, resources: {requests: {memory: 8Ei}}}]}",
                "spec.containers[0].resources.requests.memory",
                "\"8Ei\" is out of range",
            ),
            (
                "{containers: [{name: a, resources: {limits: {nvidia.com/gpu: 1}}}]}",
                "spec.containers[0].resources.limits[nvidia.com/gpu]",
                "not supported: podstart sets only cpu and memory",
            ),
            (
                "{containers: [{name: a, resources: {claims: [{name: gpu}]}}]}",
                "spec.containers[0].resources.claims",
                "not supported",
            ),
        ];
        assert_spec_field_errors(cases);
    }
}
