//! Parses `birdc show protocols all` (BIRD 2) into per-protocol session state.

/// One protocol of `show protocols all`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protocol {
    pub name: String,
    /// `BGP`, `OSPF`, `BFD`, `Device`, `Direct`, `Kernel`, ...
    pub proto: String,
    /// `up`, `down`, `start`, `stop`.
    pub state: String,
    /// The Info column, e.g. `Established`, `Active    Socket: Connection refused`, `Running`.
    pub info: String,
    /// BGP only: `Established`, `Active`, `Connect`, `Idle`, ...
    pub bgp_state: Option<String>,
    pub neighbor_address: Option<String>,
    pub neighbor_as: Option<u32>,
    pub channels: Vec<Channel>,
}

/// One channel (`Channel ipv4`) of a protocol and its route counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Channel {
    pub name: String,
    /// `UP`, `DOWN`, `START`, ...
    pub state: String,
    pub imported: u64,
    pub filtered: u64,
    pub exported: u64,
    pub preferred: u64,
}

impl Protocol {
    pub fn is_up(&self) -> bool {
        self.state == "up"
    }

    /// A BGP session that is Established.
    pub fn is_established(&self) -> bool {
        self.bgp_state.as_deref() == Some("Established")
    }

    pub fn exported(&self) -> u64 {
        self.channels.iter().map(|c| c.exported).sum()
    }

    pub fn imported(&self) -> u64 {
        self.channels.iter().map(|c| c.imported).sum()
    }
}

/// Parses the whole output (banner and header included); lines it does not know are skipped,
/// so newer BIRD versions that add detail lines still parse.
pub fn parse_protocols(text: &str) -> Vec<Protocol> {
    let mut protocols: Vec<Protocol> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let line = strip_reply_code(line);
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            if line.starts_with("Name ") && line.contains("Proto") {
                in_table = true;
                continue;
            }
            if in_table && let Some(p) = protocol_line(line) {
                protocols.push(p);
            }
            continue;
        }
        let Some(current) = protocols.last_mut() else {
            continue;
        };
        detail_line(current, line.trim());
    }
    protocols
}

/// `birdc -v` prefixes lines with `1002-` style codes; plain birdc does not. Accept both.
fn strip_reply_code(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && matches!(b[4], b'-' | b' ') {
        &line[5..]
    } else {
        line
    }
}

fn protocol_line(line: &str) -> Option<Protocol> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    if cols.len() < 5 {
        return None;
    }
    // Since is one column (`12:34:56.789`), or two when it carries a date (`2024-01-02 12:34:56`).
    let info_at = if cols.len() > 5 && cols[4].contains('-') && cols[5].contains(':') {
        6
    } else {
        5
    };
    Some(Protocol {
        name: cols[0].to_string(),
        proto: cols[1].to_string(),
        state: cols[3].to_string(),
        info: cols.get(info_at..).map(|c| c.join(" ")).unwrap_or_default(),
        ..Protocol::default()
    })
}

fn detail_line(p: &mut Protocol, line: &str) {
    if let Some(name) = line.strip_prefix("Channel ") {
        p.channels.push(Channel {
            name: name.trim().to_string(),
            ..Channel::default()
        });
        return;
    }
    let Some((key, value)) = line.split_once(':') else {
        return;
    };
    let value = value.trim();
    match key.trim() {
        "BGP state" => p.bgp_state = Some(value.to_string()),
        "Neighbor address" => p.neighbor_address = Some(value.to_string()),
        "Neighbor AS" => p.neighbor_as = value.parse().ok(),
        "State" => {
            if let Some(c) = p.channels.last_mut() {
                c.state = value.to_string();
            }
        }
        "Routes" => {
            if let Some(c) = p.channels.last_mut() {
                routes(c, value);
            }
        }
        _ => {}
    }
}

/// `1 imported, 2 filtered, 3 exported, 1 preferred`.
fn routes(c: &mut Channel, value: &str) {
    for part in value.split(',') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "imported" => c.imported = n,
            "filtered" => c.filtered = n,
            "exported" => c.exported = n,
            "preferred" => c.preferred = n,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
