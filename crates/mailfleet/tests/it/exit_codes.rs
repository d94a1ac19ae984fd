//! The exit code table (README "Exit codes"), command by command: 0 done, 1 a problem found,
//! 2 usage or config error, 3 failed, 4 damaged repository, 5 unreachable, 6 skipped;
//! `probe` and `check shift` use the plugin codes (a config error is UNKNOWN, 3).

use std::path::{Path, PathBuf};

use crate::common::mailfleet;

/// A small fleet with no real servers: enough for commands to load it and fail on purpose.
fn fleet(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("mailfleet.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"data\"\n\n[backup]\nrepository = \"repo\"\ntimeout_secs = 5\n{extra}\n\n\
             [[server]]\nname = \"mx1\"\nroles = [\"mta\"]\nhost = \"127.0.0.1\"\nports = {{ smtp = 25 }}\n\n\
             [[server]]\nname = \"store1\"\nroles = [\"mailbox\"]\nhost = \"127.0.0.1\"\n\
             ports = {{ imap = 143, lmtp = 24 }}\nmaildir_root = \"mail\"\n"
        ),
    )
    .unwrap();
    path
}

fn code(config: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = mailfleet(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_refuses_a_broken_config_with_the_usage_code() {
    let dir = tempfile::tempdir().unwrap();
    let good = fleet(dir.path(), "");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&good)
            .unwrap()
            .replace("{ smtp = 25 }", "{ smtp = 0 }"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, "").unwrap();
    let log = log.to_str().unwrap();
    let commands: &[(&[&str], i32)] = &[
        (&["config", "check"], 2),
        (&["accounts", "list"], 2),
        (
            &["accounts", "add", "a@example.com", "--server", "store1"],
            2,
        ),
        (&["report", log], 2),
        (&["monitor", "--rounds", "1"], 2),
        (&["stats", "export", "--csv", out], 2),
        (&["backup", "run"], 2),
        (&["backup", "list"], 2),
        (&["backup", "verify"], 2),
        (&["backup", "forget", "--keep-last", "1"], 2),
        (&["backup", "prune"], 2),
        (&["restore", "--to", out], 2),
        (&["policy", "status"], 2),
        (&["policy", "held"], 2),
        (&["policy", "serve"], 2),
        (&["policy", "postfix-config"], 2),
        (&["audit", "passwords"], 2),
        (&["demo", "status"], 2),
        // Monitoring plugins: a config error is UNKNOWN.
        (&["probe"], 3),
        (&["check", "shift"], 3),
    ];
    for (args, want) in commands {
        let (got, stderr) = code(&broken, args);
        assert_eq!(got, *want, "mailfleet {args:?}: {stderr}");
        assert!(
            stderr.contains("server[0].ports.smtp"),
            "mailfleet {args:?} does not name the key: {stderr}"
        );
    }
}

#[test]
fn usage_mistakes_exit_2_and_failures_3() {
    let dir = tempfile::tempdir().unwrap();
    let config = fleet(dir.path(), "");
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    for args in [
        &["backup", "forget"][..],
        &["restore", "--at", "next tuesday", "--to", out],
        &["monitor", "--interval", "-1"],
        &["stats", "export", "--csv", out, "--since", "soon"],
        &["config", "init"],
        &["backup", "run", "--server", "nosuch"],
        &["no-such-command"],
        &["move"],
        &["move", "alice@example.com"],
        &["upgrade", "mark", "nosuch"],
        &["upgrade", "unmark"],
    ] {
        let (got, stderr) = code(&config, args);
        assert_eq!(got, 2, "mailfleet {args:?}: {stderr}");
    }
    // Asked for something that is not there: failed.
    let (got, stderr) = code(&config, &["restore", "--snapshot", "nosuch", "--to", out]);
    assert_eq!(got, 3, "{stderr}");
    let (got, stderr) = code(&config, &["policy", "release", "nobody@example.com"]);
    assert_eq!(got, 3, "{stderr}");
    assert!(
        stderr.contains("no mail of nobody@example.com is held"),
        "{stderr}"
    );
    // A clean run: 0.
    assert_eq!(code(&config, &["backup", "list"]).0, 0);
}

#[test]
fn a_failing_pre_hook_skips_the_backup_with_code_6() {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let config = fleet(dir.path(), "pre = \"exit 1\"\n");
    // store1 writes its status where the monitor reads it.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "maildir_root = \"mail\"\n",
        &format!(
            "maildir_root = \"mail\"\nbackup_status = {:?}\n",
            status.display().to_string()
        ),
    );
    std::fs::write(&config, text).unwrap();
    crate::common::mailfleet_ok(
        &config,
        &["accounts", "add", "a@example.com", "--server", "store1"],
    );
    let (got, stderr) = code(&config, &["backup", "run"]);
    assert_eq!(got, 6, "{stderr}");
    assert!(stderr.contains("pre command"), "{stderr}");
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
    assert_eq!(st["last_run"]["result"], "skipped", "{st:#}");
}

#[test]
fn unreadable_log_input_is_a_problem_found_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = fleet(dir.path(), "");
    // A gzip file cut in the middle: what was read is reported, the file is named.
    let log = dir.path().join("mail.log.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        std::io::Write::write_all(
            &mut gz,
            format!(
                "Nov 24 10:00:{:02} mx1 postfix/qmgr[9]: 4F2A{i:05}: removed\n",
                i % 60
            )
            .as_bytes(),
        )
        .unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(&log, &bytes[..bytes.len() / 2]).unwrap();
    let (got, stderr) = code(&config, &["report", log.to_str().unwrap()]);
    assert_eq!(got, 1, "{stderr}");
    assert!(stderr.contains("mail.log.gz"), "{stderr}");
}
