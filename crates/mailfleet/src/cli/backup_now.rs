//! One backup run now, of some servers' stores (or all), on the stores or here as the config
//! says: what an upgrade's step and the dashboard's button both start.

use mailfleet_core::Config;

/// Backs up `servers` (empty: every store) now; what it did, or why it failed.
pub(crate) async fn backup_now(config: &Config, servers: Vec<String>) -> Result<String, String> {
    let options = mailfleet_backup::command::job::RunOptions {
        servers,
        accounts: Vec::new(),
    };
    let ended = if mailfleet_backup::command::on_store::on_stores(config, false) {
        let runs = mailfleet_backup::command::on_store::run(config, &options, None)
            .await
            .map_err(|e| e.to_string())?;
        return match runs.into_iter().find(|r| r.ended.error().is_some()) {
            Some(bad) => Err(bad.ended.error().unwrap_or("failed").to_string()),
            None => Ok("backed up on the store".into()),
        };
    } else {
        mailfleet_backup::command::job::run(config, &options, None)
            .await
            .map_err(|e| e.to_string())?
    };
    match ended.error() {
        None => Ok("backed up".into()),
        Some(e) => Err(e.to_string()),
    }
}
