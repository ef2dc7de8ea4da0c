//! Reading and writing multi-document YAML as JSON values.

use serde_json::Value;

/// Why a file could not be read as Kubernetes objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {message}")]
    Parse { path: String, message: String },
}

/// Every non-empty document of a YAML text; a `kind: List` is expanded into its items.
pub fn documents(path: &str, text: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        match (doc.get("kind").and_then(Value::as_str), doc.get("items")) {
            (Some("List"), Some(Value::Array(items))) => out.extend(items.iter().cloned()),
            _ => out.push(doc),
        }
    }
    Ok(out)
}

/// Reads a file (`-` for standard input).
pub fn read(path: &str) -> Result<String, Error> {
    let result = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    result.map_err(|source| Error::Read {
        path: path.to_string(),
        source,
    })
}

/// Objects as a multi-document YAML stream.
pub fn to_stream(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).expect("JSON values always serialize"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `kind/name` of an object, for messages.
pub fn object_name(o: &Value) -> String {
    format!(
        "{}/{}",
        o.get("kind").and_then(Value::as_str).unwrap_or("?"),
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}
