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

#[test]
fn shell_quoting_in_flow_strings_reads_as_kubectl_reads_it() {
    // A shell's '\'' idiom pasted into YAML: in a double-quoted string `\'`
    // is an escaped quote (go-yaml, and so kubectl, accept it); in a
    // single-quoted string the backslash is literal and `''` is one quote.
    let doc = one(concat!(
        "double: [\"sh\", \"-c\", \"echo '\\''hello'\\''\"]\n",
        "single: ['sh', '-c', 'echo ''\\''''hello''\\''''']\n",
    ));
    let seq = |key: &str| match doc.get(key) {
        Some(Value::Sequence(items)) => items.clone(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(
        seq("double"),
        [string("sh"), string("-c"), string("echo '''hello'''")]
    );
    assert_eq!(
        seq("single"),
        [string("sh"), string("-c"), string("echo '\\''hello'\\''")]
    );
}

#[test]
fn escaped_quotes_are_resolved_only_inside_double_quoted_strings() {
    // Comments, single-quoted strings and block scalars keep `\'`.
    let doc = one(concat!(
        "a: \"it\\'s\" # it\\'s\n",
        "b: 'x\\'\n",
        "c: |\n",
        "  keep \\' \"here\\'\"\n",
        "d: [\"\\\\\", \"\\'\"]\n",
    ));
    assert_eq!(doc.get("a"), Some(&string("it's")));
    assert_eq!(doc.get("b"), Some(&string("x\\")));
    assert_eq!(doc.get("c"), Some(&string("keep \\' \"here\\'\"\n")));
    assert_eq!(
        doc.get("d"),
        Some(&Value::Sequence(vec![string("\\"), string("'")]))
    );
    // A stream that is malformed for another reason reports its own error.
    let error = documents("a: \"\\'\"\nb: [\n").expect_err("malformed");
    assert!(error.to_string().contains("line"), "{error}");
}
