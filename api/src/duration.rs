//! Durations as CRDs write them: `500ms`, `3s`, `1m`, `1m30s`.

use std::time::Duration;

/// Why a duration string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration like 500ms, 3s, 1m or 1m30s")]
pub struct DurationError(pub String);

/// Parses `^([0-9]+(ms|s|m))+$` (the CRD's pattern) into a Duration.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(s.to_string());
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(n), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(n), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(n.checked_mul(60).ok_or_else(err)?), 1)
        } else {
            return Err(err());
        };
        total = total.checked_add(unit).ok_or_else(err)?;
        rest = &rest[len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crd_durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("500ms", Some(500)),
            ("3s", Some(3000)),
            ("1m", Some(60_000)),
            ("1m30s", Some(90_000)),
            ("0ms", Some(0)),
            ("1s500ms", Some(1500)),
            ("", None),
            ("5", None),
            ("s", None),
            ("1h", None),
            ("-1s", None),
            ("1.5s", None),
        ];
        for (input, want) in cases {
            let got = parse(input).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, *want, "{input:?}");
        }
    }
}
