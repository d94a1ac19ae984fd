//! The states of a check, as monitoring plugins have them.

use std::fmt;

use serde::Serialize;

/// Monitoring-plugin states; ordered by how much they need a human (CRITICAL last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Works, in time.
    Ok,
    /// Works, slowly.
    Warning,
    /// The check could not be run (no probe account configured...).
    Unknown,
    /// Broken, or too slow.
    Critical,
}

impl State {
    /// The plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Unknown => "UNKNOWN",
            State::Critical => "CRITICAL",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_is_greatest_and_codes_are_the_plugins() {
        let mut all = [State::Critical, State::Ok, State::Unknown, State::Warning];
        all.sort();
        assert_eq!(
            all,
            [State::Ok, State::Warning, State::Unknown, State::Critical]
        );
        let codes: Vec<u8> = all.iter().map(|s| s.exit_code()).collect();
        assert_eq!(codes, [0, 1, 3, 2]);
        assert_eq!(State::Critical.to_string(), "CRITICAL");
    }
}
