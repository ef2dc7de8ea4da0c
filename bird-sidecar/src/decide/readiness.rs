//! Whether the sidecar is ready: BIRD runs and runs the config the inputs ask for.

/// What the loop last saw of BIRD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BirdState {
    /// Not started: no config has been valid yet.
    NotStarted,
    /// Started, but it does not answer on its control socket (dead, restarting, hung).
    Silent,
    Answering,
}

/// `None` when ready, else why not. `applied`: BIRD was given a config; `failed`: why the last
/// attempt to apply the desired config failed, if it did (BIRD then runs an older one).
pub fn readiness(bird: BirdState, applied: bool, failed: Option<&str>) -> Option<String> {
    match (bird, failed) {
        (BirdState::NotStarted, Some(why)) => Some(format!("BIRD is not started: {why}")),
        (BirdState::NotStarted, None) => Some("BIRD is not started yet".into()),
        (BirdState::Silent, _) => {
            Some("BIRD is not running (it does not answer on its control socket)".into())
        }
        (BirdState::Answering, _) if !applied => Some("BIRD has no applied config yet".into()),
        (BirdState::Answering, Some(why)) => Some(format!(
            "the last config could not be applied (BIRD runs the previous one): {why}"
        )),
        (BirdState::Answering, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_bird_answers_and_runs_the_desired_config() {
        use BirdState::*;
        let cases = [
            ("running the desired config", Answering, true, None, true),
            ("never started", NotStarted, false, None, false),
            ("first config refused", NotStarted, false, Some("x"), false),
            ("dead or restarting", Silent, true, None, false),
            ("last apply failed", Answering, true, Some("refused"), false),
            ("answering without a config", Answering, false, None, false),
        ];
        for (name, bird, applied, failed, want) in cases {
            let got = readiness(bird, applied, failed);
            assert_eq!(got.is_none(), want, "{name}: {got:?}");
        }
        let why = readiness(Answering, true, Some("BIRD refused it"));
        assert!(
            why.is_some_and(|w| w.contains("BIRD refused it")),
            "the reason is told"
        );
    }
}
