//! Backup freshness: the age of the newest good backup, from the status file the backup
//! run writes. The file is read in a child process under the deadline (see
//! [`crate::stuck`]): it may live on the very mount that hangs.

use std::path::Path;
use std::time::Duration;

use mailfleet_core::backup_status::BackupStatus;

use crate::outcome::State;

/// The state and message for one store's backups.
pub fn check(status_file: &Path, max_age: Duration, timeout: Duration) -> (State, String) {
    let mut cmd = std::process::Command::new("cat");
    cmd.arg("--").arg(status_file);
    let key = status_file.display().to_string();
    let text = match crate::stuck::run(&key, &mut cmd, timeout) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(_) if !status_file.exists() => {
            return (
                State::Critical,
                format!(
                    "{}: no backup status: has a backup ever run?",
                    status_file.display()
                ),
            );
        }
        Ok(out) => {
            return (
                State::Critical,
                format!(
                    "{}: {}",
                    status_file.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
        }
        Err(e) => return (State::Critical, format!("{}: {e}", status_file.display())),
    };
    let status: BackupStatus = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            return (
                State::Critical,
                format!("{}: unreadable: {e}", status_file.display()),
            );
        }
    };
    let now = chrono::Utc::now();
    let Some(ok) = status.last_success else {
        return (State::Critical, "no backup has succeeded yet".into());
    };
    let age = (now - ok).to_std().unwrap_or_default();
    let hours = age.as_secs_f64() / 3600.0;
    if age > max_age {
        return (
            State::Critical,
            format!(
                "newest good backup is {hours:.1} h old (limit {} h)",
                max_age.as_secs() / 3600
            ),
        );
    }
    match status.last_run {
        Some(r) if r.result != "ok" => (
            State::Warning,
            format!(
                "last run {} ({}); newest good backup {hours:.1} h old",
                r.result,
                r.error.unwrap_or_default()
            ),
        ),
        _ => (State::Ok, format!("newest good backup {hours:.1} h old")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(dir: &Path, json: &str) -> std::path::PathBuf {
        let p = dir.join("status.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn states_from_the_status_file() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(26 * 3600);
        let t = Duration::from_secs(2);
        let now = chrono::Utc::now();
        let fresh = (now - chrono::Duration::hours(3)).to_rfc3339();
        let old = (now - chrono::Duration::hours(30)).to_rfc3339();
        let ok = format!(
            r#"{{"last_run":{{"started":"{fresh}","finished":"{fresh}","result":"ok"}},"last_success":"{fresh}"}}"#
        );
        assert_eq!(check(&status(dir.path(), &ok), day, t).0, State::Ok);
        let stale = format!(r#"{{"last_success":"{old}"}}"#);
        assert_eq!(
            check(&status(dir.path(), &stale), day, t).0,
            State::Critical
        );
        let failed = format!(
            r#"{{"last_run":{{"started":"{fresh}","finished":null,"result":"aborted","error":"target not answering"}},"last_success":"{fresh}"}}"#
        );
        let (s, m) = check(&status(dir.path(), &failed), day, t);
        assert_eq!(s, State::Warning);
        assert!(m.contains("target not answering"), "{m}");
        assert_eq!(
            check(&status(dir.path(), "{not json"), day, t).0,
            State::Critical
        );
        assert_eq!(
            check(&dir.path().join("missing.json"), day, t).0,
            State::Critical
        );
        assert_eq!(check(&status(dir.path(), "{}"), day, t).0, State::Critical);
    }
}
