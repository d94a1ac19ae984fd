//! What an upgrade run needs from the other capabilities, given to it by its caller (the
//! binary, or the daemon): probe rounds and the directory's replication state for the gates, mailbox moves for draining a store,
//! backups around a store's update, and alarms. The upgrade crate itself depends on none of
//! them.

use mailfleet_core::config::Drain;

pub use mailfleet_core::replica::ReplicaCsn;

/// The other capabilities, as an upgrade run uses them (its futures need not be `Send`: a
/// run drives one step at a time on its own task).
#[async_trait::async_trait(?Send)]
pub trait Hooks: Send + Sync {
    /// One probe round of the whole fleet: `Err` names every CRITICAL or UNKNOWN outcome
    /// (outcomes named `SERVER CHECK` in `skip` left out).
    async fn fleet_ok(&self, skip: &[String]) -> Result<(), String>;
    /// One probe round of `servers` only (a server's partners, right before it stops).
    async fn servers_ok(&self, servers: &[String]) -> Result<(), String>;
    /// Every directory replica's newest change beside its master's, read now.
    async fn replica_csns(&self) -> Result<Vec<ReplicaCsn>, String>;
    /// Empties `store` before its update; what it did.
    async fn drain(&self, store: &str, how: Drain) -> Result<String, String>;
    /// Gives `store` back what its drain took; what it did.
    async fn undrain(&self, store: &str, how: Drain) -> Result<String, String>;
    /// Backs `store` up now; what it did.
    async fn backup(&self, store: &str) -> Result<String, String>;
    /// A backup of `store` that runs now (who and since when), if one does.
    async fn backup_running(&self, store: &str) -> Result<Option<String>, String>;
    /// Tells the admins (a halted run, a finished one).
    async fn alarm(&self, subject: &str, body: &str);
    /// Asked before each step: `Some(why)` halts the run there, to be resumed (the daemon
    /// running it stops).
    fn paused(&self) -> Option<String> {
        None
    }
}
