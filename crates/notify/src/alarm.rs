//! Alarms from rounds of outcomes: one notification when a check's state changes, repeated
//! at an interval while it lasts, a recovery when it clears, and nothing while it flaps.
//!
//! A new state counts only once it has been seen `confirm` rounds in a row (a single slow
//! round raises nothing); a check that changed state `flap_changes` times within the last
//! `flap_window` rounds is flapping: one notification says so, then it stays quiet until
//! the check has held one state for a whole window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::state::State;

/// How alarms behave.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Rounds a new state must hold before it counts.
    pub confirm: u32,
    /// Re-notify a lasting problem this often.
    pub repeat: Duration,
    /// Rounds looked at for flapping.
    pub flap_window: usize,
    /// State changes within the window that make a check flapping.
    pub flap_changes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            confirm: 2,
            repeat: Duration::from_secs(3600),
            flap_window: 10,
            flap_changes: 4,
        }
    }
}

/// What a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A check went bad (or worse).
    Problem,
    /// Still bad: the repeat interval passed.
    Reminder,
    /// Back to OK.
    Recovery,
    /// Changing state too often to alarm on each change.
    Flapping,
    /// The service's process restarted on its own (its start time changed).
    Restart,
}

/// One check's result in a round, as the alarms see it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The server.
    pub server: &'a str,
    /// The check.
    pub check: &'a str,
    /// Its state this round.
    pub state: State,
    /// What it found.
    pub message: &'a str,
}

/// One notification to send.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// What kind.
    pub kind: Kind,
    /// The server.
    pub server: String,
    /// The check.
    pub check: String,
    /// The state now.
    pub state: State,
    /// The check's message.
    pub message: String,
}

#[derive(Debug)]
struct Track {
    /// The state alarmed on.
    state: State,
    /// A different state seen lately, and for how many rounds.
    pending: Option<(State, u32)>,
    /// Last notification time, for reminders.
    notified: Option<Instant>,
    /// Whether each recent round changed the raw state.
    changes: VecDeque<bool>,
    last_raw: State,
    flapping: bool,
}

/// Alarm state of every check.
#[derive(Debug, Default)]
pub struct Alarms {
    policy: Policy,
    tracks: HashMap<(String, String), Track>,
}

impl Alarms {
    /// Alarms with this policy.
    pub fn new(policy: Policy) -> Self {
        Alarms {
            policy,
            tracks: HashMap::new(),
        }
    }

    /// Folds in one round; returns the notifications it calls for.
    pub fn observe<'a>(
        &mut self,
        round: impl IntoIterator<Item = Observation<'a>>,
        now: Instant,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for o in round {
            let key = (o.server.to_string(), o.check.to_string());
            let p = &self.policy;
            let t = self.tracks.entry(key).or_insert(Track {
                state: State::Ok,
                pending: None,
                notified: None,
                changes: VecDeque::new(),
                last_raw: State::Ok,
                flapping: false,
            });
            let note = |kind| Notification {
                kind,
                server: o.server.to_string(),
                check: o.check.to_string(),
                state: o.state,
                message: o.message.to_string(),
            };
            t.changes.push_back(o.state != t.last_raw);
            t.last_raw = o.state;
            if t.changes.len() > p.flap_window {
                t.changes.pop_front();
            }
            let changes = t.changes.iter().filter(|c| **c).count();
            if !t.flapping && changes >= p.flap_changes {
                t.flapping = true;
                out.push(note(Kind::Flapping));
                continue;
            }
            if t.flapping {
                if changes == 0 && t.changes.len() >= p.flap_window {
                    // Stable again: take the current state as is, say so if it is not OK.
                    t.flapping = false;
                    t.pending = None;
                    if o.state != t.state {
                        t.state = o.state;
                        t.notified = Some(now);
                        out.push(note(if o.state == State::Ok {
                            Kind::Recovery
                        } else {
                            Kind::Problem
                        }));
                    }
                }
                continue;
            }
            if o.state == t.state {
                t.pending = None;
                if t.state != State::Ok
                    && t.notified
                        .is_some_and(|n| now.duration_since(n) >= p.repeat)
                {
                    t.notified = Some(now);
                    out.push(note(Kind::Reminder));
                }
                continue;
            }
            let seen = match t.pending {
                Some((s, n)) if s == o.state => n + 1,
                _ => 1,
            };
            if seen < p.confirm {
                t.pending = Some((o.state, seen));
                continue;
            }
            t.pending = None;
            t.state = o.state;
            t.notified = Some(now);
            out.push(note(if o.state == State::Ok {
                Kind::Recovery
            } else {
                Kind::Problem
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(state: State) -> Observation<'static> {
        Observation {
            server: "store1",
            check: "imap",
            state,
            message: "m",
        }
    }

    fn kinds(n: &[Notification]) -> Vec<Kind> {
        n.iter().map(|n| n.kind).collect()
    }

    #[test]
    fn one_notification_per_change_over_100_rounds_then_recovery() {
        let mut a = Alarms::new(Policy {
            confirm: 2,
            repeat: Duration::from_secs(3600),
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut all = Vec::new();
        for i in 0..5 {
            all.extend(a.observe([o(State::Ok)], t0 + Duration::from_secs(i)));
        }
        for i in 5..105 {
            all.extend(a.observe([o(State::Critical)], t0 + Duration::from_secs(i)));
        }
        assert_eq!(
            kinds(&all),
            [Kind::Problem],
            "100 critical rounds, one notification"
        );
        for i in 105..110 {
            all.extend(a.observe([o(State::Ok)], t0 + Duration::from_secs(i)));
        }
        assert_eq!(kinds(&all), [Kind::Problem, Kind::Recovery]);
    }

    #[test]
    fn a_single_bad_round_raises_nothing() {
        let mut a = Alarms::new(Policy::default());
        let t0 = Instant::now();
        let mut all = a.observe([o(State::Ok)], t0);
        all.extend(a.observe([o(State::Warning)], t0));
        all.extend(a.observe([o(State::Ok)], t0));
        assert!(all.is_empty(), "{all:?}");
    }

    #[test]
    fn reminders_at_the_repeat_interval() {
        let mut a = Alarms::new(Policy {
            confirm: 1,
            repeat: Duration::from_secs(60),
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut all = Vec::new();
        for i in 0..200 {
            all.extend(a.observe([o(State::Critical)], t0 + Duration::from_secs(i)));
        }
        assert_eq!(
            kinds(&all),
            [
                Kind::Problem,
                Kind::Reminder,
                Kind::Reminder,
                Kind::Reminder
            ]
        );
    }

    #[test]
    fn flapping_is_damped() {
        let mut a = Alarms::new(Policy {
            confirm: 1,
            flap_window: 10,
            flap_changes: 4,
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut all = Vec::new();
        for i in 0..100 {
            let s = if i % 2 == 0 {
                State::Ok
            } else {
                State::Critical
            };
            all.extend(a.observe([o(s)], t0 + Duration::from_secs(i)));
        }
        let flaps = all.iter().filter(|n| n.kind == Kind::Flapping).count();
        assert_eq!(flaps, 1, "{:?}", kinds(&all));
        // The changes before flapping is recognised each count; after it, silence.
        assert!(all.len() <= 4, "flapping is quiet: {:?}", kinds(&all));
        // Stable OK for a window: back to normal, with a recovery if the alarm state was bad.
        for i in 100..115 {
            all.extend(a.observe([o(State::Ok)], t0 + Duration::from_secs(i)));
        }
        let before = all.len();
        all.extend(a.observe([o(State::Critical)], t0 + Duration::from_secs(200)));
        all.extend(a.observe([o(State::Critical)], t0 + Duration::from_secs(201)));
        assert_eq!(
            all.len(),
            before + 1,
            "alarms work again after flapping stops"
        );
    }
}
