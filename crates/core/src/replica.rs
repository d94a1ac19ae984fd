//! A directory replica beside its master, as the probe reads it and an upgrade's gate
//! compares it.

/// A directory replica and its master, each with its newest `contextCSN` (`None`: none yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaCsn {
    /// The replica.
    pub replica: String,
    /// Its master.
    pub master: String,
    /// The replica's newest change.
    pub replica_csn: Option<String>,
    /// The master's.
    pub master_csn: Option<String>,
}
