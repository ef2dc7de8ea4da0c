//! Figures of benchmarks and soak runs: merged into `target/<tier>/results.json`, one key per
//! run, never half-written, each with the machine it was measured on.

use std::path::PathBuf;

use serde_json::Value;

/// The tiers that write figures.
#[derive(Clone, Copy, Debug)]
pub enum Tier {
    Bench,
    Soak,
}

impl Tier {
    fn dir(self) -> &'static str {
        match self {
            Tier::Bench => "bench",
            Tier::Soak => "soak",
        }
    }
}

/// CPU model, cores, OS/arch: figures mean little without it.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{model}, {cores} cores, {}/{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// `<target dir>/<tier>/results.json`; a relative `CARGO_TARGET_DIR` is taken from the
/// workspace root.
pub fn path(tier: Tier) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate sits in the workspace")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |t| root.join(t));
    target.join(tier.dir()).join("results.json")
}

/// Sets `key` in the tier's results file to `figures` (plus `machine`), keeping other keys.
pub fn record(tier: Tier, key: &str, mut figures: Value) -> std::io::Result<PathBuf> {
    if let Value::Object(map) = &mut figures {
        map.entry("machine").or_insert_with(|| machine().into());
    }
    let path = path(tier);
    let mut all = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    all[key] = figures;
    let dir = path.parent().expect("results.json has a directory");
    std::fs::create_dir_all(dir)?;
    // Other runs merge into the same file: replace it whole, never leave half a file.
    let tmp = dir.join(format!("results.json.{key}.{}", std::process::id()));
    let text = serde_json::to_string_pretty(&all).expect("JSON values serialize");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
