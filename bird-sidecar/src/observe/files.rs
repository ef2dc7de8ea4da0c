//! Reads the template, values and (offline) ServiceGroups files; re-read on every poll so a
//! remounted ConfigMap takes effect.

use std::path::{Path, PathBuf};

use ferrolb_api::ServiceGroup;

use crate::decide::DEFAULT_TEMPLATE;
use crate::error::{Error, Result};
use crate::values::Values;

/// The files the sidecar reads; `None` means the built-in default (or nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    pub template: Option<PathBuf>,
    pub values: Option<PathBuf>,
    /// ServiceGroup YAML (several documents) for offline runs and tests.
    pub groups: Option<PathBuf>,
}

/// What the files say now.
#[derive(Debug, Clone)]
pub struct FileInputs {
    pub template: String,
    pub values: Values,
    pub groups: Option<Vec<ServiceGroup>>,
}

impl Files {
    pub async fn read(&self) -> Result<FileInputs> {
        let template = match &self.template {
            Some(p) => read(p).await?,
            None => DEFAULT_TEMPLATE.to_string(),
        };
        let values = match &self.values {
            Some(p) => Values::from_yaml(&read(p).await?)?,
            None => Values::default(),
        };
        let groups = match &self.groups {
            Some(p) => Some(parse_groups(&read(p).await?)?),
            None => None,
        };
        Ok(FileInputs {
            template,
            values,
            groups,
        })
    }
}

/// ServiceGroups from YAML: one or more documents separated by `---`.
pub fn parse_groups(text: &str) -> Result<Vec<ServiceGroup>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_saphyr::from_multiple::<ServiceGroup>(text).map_err(|e| Error::Groups(e.to_string()))
}

async fn read(path: &Path) -> Result<String> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| Error::Io {
            what: "reading",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_files() {
        let two = "apiVersion: ferrolb.io/v1\nkind: ServiceGroup\nmetadata:\n  name: web\nspec:\n  virtual:\n    v4pools:\n      - subnet: 203.0.113.0/25\n        pool: 203.0.113.0/26\n        aggregation: /28\n    bgp:\n      communities: ['64520:100']\n---\napiVersion: ferrolb.io/v1\nkind: ServiceGroup\nmetadata:\n  name: lan\nspec:\n  local:\n    v4pools:\n      - subnet: 192.0.2.0/24\n        pool: 192.0.2.100-192.0.2.110\n";
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("empty", "", Some(0)),
            ("two documents", two, Some(2)),
            ("not a group", "just: text\n", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_groups(text).ok().map(|g| g.len()), *want, "{name}");
        }
        let groups = parse_groups(two).expect("parses");
        let web = groups[0].spec.virtual_.as_ref().expect("virtual");
        assert_eq!(web.v4pools[0].aggregation.as_deref(), Some("/28"));
    }
}
