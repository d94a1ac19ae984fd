//! Accounts left locked on a store. A move locks an account for seconds (its mail deferred
//! at the MTAs, its logins refused); one still locked when the monitor looks again is a move
//! that died or could not unlock, and its user gets no mail until someone acts.

use mailfleet_core::config::DirectoryConfig;
use mailfleet_core::directory::{self, Filter};

use crate::outcome::{Failure, Run};

/// How many locked addresses the message names before it only counts.
const NAMED: usize = 5;

/// The locked accounts whose mailbox is on `store`, read from the directory within the
/// check's deadline.
pub async fn check(
    run: &mut Run,
    config: &DirectoryConfig,
    store: &str,
) -> Result<String, Failure> {
    let read = async {
        let dir = directory::open(config).await?;
        dir.list(&Filter {
            server: Some(store.to_string()),
            locked: true,
            ..Filter::default()
        })
        .await
    };
    let accounts = run.step("directory", read).await?;
    let locked: Vec<String> = accounts.iter().map(|a| a.address.to_string()).collect();
    if locked.is_empty() {
        return Ok("no account locked".into());
    }
    let mut named = locked[..locked.len().min(NAMED)].join(", ");
    if locked.len() > NAMED {
        named.push_str(&format!(" and {} more", locked.len() - NAMED));
    }
    Err(Failure::new(
        "locked",
        format!(
            "{} locked, mail deferred and logins refused: {named} (see `mailfleet move status`; \
             `move resume` or `move abort` unlocks)",
            locked.len()
        ),
    ))
}
