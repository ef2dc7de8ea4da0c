//! How a report is printed: the aligned table a person reads, or the same facts as JSON or YAML
//! for scripts (`-o json`, `-o yaml`).

use serde::Serialize;

/// The `-o`/`--output` format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns and explanations (`text` is accepted too).
    #[default]
    #[value(alias = "text")]
    Table,
    Json,
    Yaml,
}

/// `report` in `format`; `table` renders it for a terminal.
pub fn render<T: Serialize>(
    format: Format,
    report: &T,
    table: impl FnOnce(&T) -> String,
) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => {
            serde_json::to_string_pretty(report).expect("reports always serialize") + "\n"
        }
        Format::Yaml => serde_saphyr::to_string(report).expect("reports always serialize"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        node: String,
        virtual_count: Option<u64>,
        holding: Vec<String>,
    }

    #[test]
    fn the_same_facts_in_every_format() {
        let rows = vec![Row {
            node: "node-a".into(),
            virtual_count: None,
            holding: vec!["192.0.2.100".into()],
        }];
        let table = |r: &Vec<Row>| format!("{} row(s)\n", r.len());
        let cases = [
            (Format::Table, "1 row(s)\n"),
            (
                Format::Json,
                "[\n  {\n    \"node\": \"node-a\",\n    \"virtualCount\": null,\n    \"holding\": [\n      \"192.0.2.100\"\n    ]\n  }\n]\n",
            ),
        ];
        for (format, want) in cases {
            assert_eq!(render(format, &rows, table), want, "{format:?}");
        }
        // YAML reads back as the JSON it mirrors.
        let yaml = render(Format::Yaml, &rows, table);
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).expect("YAML parses");
        let json: serde_json::Value =
            serde_json::from_str(&render(Format::Json, &rows, table)).expect("JSON parses");
        assert_eq!(back, json, "{yaml}");
    }
}
