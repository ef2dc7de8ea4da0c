//! The bad-object catalogue, checked offline with the CRDs' own rules and ferrolb's check.

use ferrolb_api::offline::validate;
use ferrolb_e2e::catalogue;

#[test]
fn catalogue_has_at_least_twenty_bad_service_groups() {
    let n = catalogue::bad()
        .iter()
        .filter(|c| c.kind == "ServiceGroup")
        .count();
    assert!(n >= 20, "only {n} bad ServiceGroups in the catalogue");
}

#[test]
fn every_bad_object_is_refused_with_a_message_naming_its_field() {
    let mut failures = Vec::new();
    for case in catalogue::bad() {
        let expect = case
            .expect
            .clone()
            .expect("every bad case says what its error contains");
        let problems = validate(&case.object("bad"));
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        if !text.iter().any(|t| t.contains(&expect)) {
            failures.push(format!("{}: want {expect:?}, got {text:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_good_object_passes() {
    for case in catalogue::good() {
        let problems = validate(&case.object("good"));
        assert!(problems.is_empty(), "{}: {problems:?}", case.name);
    }
}

#[test]
fn every_cel_rule_compiles() {
    for (file, crd) in ferrolb_api::crds() {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref()),
        )
        .expect("schema serializes");
        let compiled = kube_cel::compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{file}: {:?}",
            compiled.compilation_errors()
        );
    }
}
