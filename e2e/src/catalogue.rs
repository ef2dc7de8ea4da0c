//! The catalogue of invalid (and valid) ferrolb objects in `api/testdata/`, as test cases.

use serde::Deserialize;
use serde_json::{Value, json};

/// One catalogued object.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    /// `ServiceGroup` (default) or `LBNodeAgent`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Who refuses it: `cel` (the API server) or `check` (ferrolb's own check); none for valid.
    #[serde(default)]
    pub by: Option<String>,
    /// Text the error must contain (it names the field).
    #[serde(default)]
    pub expect: Option<String>,
    pub spec: Value,
}

fn default_kind() -> String {
    "ServiceGroup".into()
}

impl Case {
    /// The whole object, named `<prefix>-<index>`.
    pub fn object(&self, name: &str) -> Value {
        json!({
            "apiVersion": "ferrolb.io/v1",
            "kind": self.kind,
            "metadata": { "name": name },
            "spec": self.spec,
        })
    }

    /// Refused by the API server itself (not only by ferrolb's own check).
    pub fn refused_by_server(&self) -> bool {
        self.by.as_deref() == Some("cel")
    }
}

fn load(text: &str) -> Vec<Case> {
    serde_saphyr::from_str(text).expect("api/testdata catalogue parses")
}

/// Every invalid object.
pub fn bad() -> Vec<Case> {
    load(include_str!("../../api/testdata/bad-objects.yaml"))
}

/// Every valid object.
pub fn good() -> Vec<Case> {
    load(include_str!("../../api/testdata/good-objects.yaml"))
}
