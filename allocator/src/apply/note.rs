//! An Event's note as the API server accepts it: at most [`NOTE_MAX_BYTES`] bytes of UTF-8,
//! cut at a character boundary.

/// `NoteLengthLimit` of the API server's Event validation (k8s.io/kubernetes
/// pkg/apis/core/validation/events.go), counted in bytes: a note of 1000 two-byte characters is
/// refused (422).
pub const NOTE_MAX_BYTES: usize = 1024;

/// What a cut note ends with.
const CUT: &str = " …";

/// `message` if it fits, else its longest prefix (whole characters) that fits with [`CUT`]
/// appended.
pub fn note(message: &str) -> String {
    if message.len() <= NOTE_MAX_BYTES {
        return message.to_string();
    }
    let room = NOTE_MAX_BYTES - CUT.len();
    let end = (0..=room)
        .rev()
        .find(|i| message.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}{CUT}", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_every_note_in_the_api_limit_without_splitting_a_character() {
        let cases = [
            ("short", "ok".to_string(), false),
            ("exactly the limit", "a".repeat(NOTE_MAX_BYTES), false),
            ("one byte over", "a".repeat(NOTE_MAX_BYTES + 1), true),
            ("two-byte characters", "é".repeat(5000), true),
            ("three-byte characters", "€".repeat(1000), true),
            ("four-byte characters", "🦀".repeat(300), true),
            ("mixed", format!("x{}", "é€🦀".repeat(200)), true),
        ];
        for (name, message, cut) in cases {
            let n = note(&message);
            assert!(n.len() <= NOTE_MAX_BYTES, "{name}: {} bytes", n.len());
            assert_eq!(n.ends_with(CUT), cut, "{name}");
            let kept = n.strip_suffix(CUT).unwrap_or(&n);
            assert!(message.starts_with(kept), "{name}: a prefix");
            if cut {
                assert!(
                    n.len() > NOTE_MAX_BYTES - 4 - CUT.len(),
                    "{name}: as much as fits"
                );
            }
        }
    }
}
