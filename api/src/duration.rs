//! Durations as CRDs write them: `500ms`, `3s`, `1m`, `1m30s`.

use std::time::Duration;

/// Why a duration string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration like 500ms, 3s, 1m or 1m30s")]
pub struct DurationError(pub String);

/// Why a duration does not parse or is out of its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundedError {
    #[error(transparent)]
    Syntax(#[from] DurationError),
    #[error("{text:?} is more than the most allowed, {max}")]
    TooLong { text: String, max: &'static str },
    #[error("{text:?} is less than the least allowed, {min}")]
    TooShort { text: String, min: &'static str },
}

/// Parses `s` as [`parse`] does and checks it against `min..=max`, both in the CRD's own
/// notation (`"100ms"`, `"5m"`), so the message says the bound as the user writes it and the
/// CEL rule and this check quote the same text.
pub fn parse_within(
    s: &str,
    min: &'static str,
    max: &'static str,
) -> Result<Duration, BoundedError> {
    let value = parse(s)?;
    let bound = |b: &'static str| parse(b).expect("bounds are written as valid durations");
    if value > bound(max) {
        return Err(BoundedError::TooLong {
            text: s.to_string(),
            max,
        });
    }
    if value < bound(min) {
        return Err(BoundedError::TooShort {
            text: s.to_string(),
            min,
        });
    }
    Ok(value)
}

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

    #[test]
    fn bounded_durations_refuse_what_is_out_of_range_without_overflow() {
        let ms = |n: u64| Ok(Duration::from_millis(n));
        let cases: Vec<(&str, &str, Result<Duration, &str>)> = vec![
            ("inside", "5s", ms(5000)),
            ("at the most", "5m", ms(300_000)),
            ("at the least", "0ms", ms(0)),
            ("written in parts", "4m59s1000ms", ms(300_000)),
            (
                "one past the most",
                "5m1ms",
                Err("more than the most allowed, 5m"),
            ),
            (
                "u64::MAX seconds",
                "18446744073709551615s",
                Err("more than the most allowed"),
            ),
            (
                "beyond u64",
                "99999999999999999999999s",
                Err("not a duration"),
            ),
            (
                "minutes that overflow",
                "307445734561825861m",
                Err("not a duration"),
            ),
        ];
        for (name, input, want) in cases {
            let got = parse_within(input, "0ms", "5m");
            match (got, want) {
                (Ok(d), Ok(w)) => assert_eq!(d, w, "{name}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        assert!(
            parse_within("50ms", "100ms", "1m")
                .is_err_and(|e| e.to_string().contains("less than the least allowed, 100ms"))
        );
    }
}
