//! The phases of a move, in the order of its sequence.

/// Where a move is. The order is the order of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Recorded, nothing done yet.
    Planned,
    /// Copy passes run while the user works.
    Copying,
    /// The account is locked in the directory (or about to be): its mail waits, its logins
    /// are refused.
    Locked,
    /// Sessions ended; the last pass and the verify run.
    Final,
    /// Both sides are the same; the switch is next.
    Verified,
    /// The directory says the account lives on the target; the unlock is next.
    Switched,
    /// Unlocked on its new store.
    Done,
    /// Stopped by an error, the account left (unlocked) on its source.
    Failed,
    /// Stopped by `move abort`, the account left (unlocked) on its source.
    Aborted,
}

impl Phase {
    const ALL: [Phase; 9] = [
        Phase::Planned,
        Phase::Copying,
        Phase::Locked,
        Phase::Final,
        Phase::Verified,
        Phase::Switched,
        Phase::Done,
        Phase::Failed,
        Phase::Aborted,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planned => "planned",
            Phase::Copying => "copying",
            Phase::Locked => "locked",
            Phase::Final => "final",
            Phase::Verified => "verified",
            Phase::Switched => "switched",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Aborted => "aborted",
        }
    }

    /// The phase a stored name stands for.
    pub(crate) fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Done, failed or aborted: nothing more happens to it.
    pub fn is_over(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Aborted)
    }

    /// Whether the account may be locked in the directory in this phase (the phase is
    /// recorded before the lock is taken).
    pub fn may_hold_lock(self) -> bool {
        matches!(
            self,
            Phase::Locked | Phase::Final | Phase::Verified | Phase::Switched
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
