//! `crds/` holds exactly what `crdgen` writes from the Rust types.

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for (file, crd) in ferrolb_api::crds() {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            committed == ferrolb_api::crd_yaml(&crd),
            "crds/{file} is out of date with api/src; run `make crds` and commit the result"
        );
    }
}
