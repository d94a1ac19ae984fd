//! A broken config gets a one-line error naming the key and the problem, and a good one
//! (including the example `config init` writes) passes.

use crate::common::mailfleet;

const GOOD: &str = r#"
data_dir = "data"

[directory]
backend = "embedded"

[[server]]
name = "mx1"
roles = ["mta"]
host = "127.0.0.1"
ports = { smtp = 25 }

[[server]]
name = "store1"
roles = ["mailbox"]
host = "127.0.0.1"
ports = { imap = 143, lmtp = 24 }
maildir_root = "/var/vmail"

[[server]]
name = "store2"
roles = ["mailbox"]
host = "127.0.0.2"
ports = { imap = 143, lmtp = 24 }
maildir_root = "/var/vmail"

[groups]
stores = ["store1", "store2"]
"#;

/// Runs `config check` on `text`; returns (success, stderr).
fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mailfleet.toml");
    std::fs::write(&path, text).expect("write config");
    let out = mailfleet(&["--config", path.to_str().expect("utf-8"), "config", "check"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts the config is refused with exactly one line naming `key` and saying `problem`.
fn refused(text: &str, key: &str, problem: &str) {
    let (ok, stderr) = check(text);
    assert!(!ok, "config accepted, expected an error about {key}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(
        lines[0].contains(key),
        "error does not name {key:?}: {}",
        lines[0]
    );
    assert!(
        lines[0].contains(problem),
        "error does not say {problem:?}: {}",
        lines[0]
    );
}

fn replace(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "fixture lacks {from:?}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn good_config_passes() {
    let (ok, stderr) = check(GOOD);
    assert!(ok, "{stderr}");
}

#[test]
fn example_written_by_config_init_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mailfleet.toml");
    let p = path.to_str().expect("utf-8");
    assert!(
        mailfleet(&["--config", p, "config", "init"])
            .status
            .success()
    );
    let out = mailfleet(&["--config", p, "config", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second init would overwrite the admin's file: refused without --force.
    assert!(
        !mailfleet(&["--config", p, "config", "init"])
            .status
            .success()
    );
}

#[test]
fn missing_file_is_named() {
    let out = mailfleet(&["--config", "/nonexistent/mailfleet.toml", "config", "check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/mailfleet.toml: no such config file"),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_names_the_line() {
    refused(
        &replace("name = \"store1\"", "name = \"store1"),
        "line 14",
        "string",
    );
}

#[test]
fn unknown_top_level_key() {
    refused(
        &format!("datadir = \"x\"\n{GOOD}"),
        "datadir",
        "unknown field",
    );
}

#[test]
fn unknown_port_protocol() {
    refused(
        &replace("{ imap = 143, lmtp = 24 }", "{ imapp = 143, lmtp = 24 }"),
        "server[1].ports.imapp",
        "unknown field",
    );
}

#[test]
fn wrong_type() {
    refused(
        &replace("name = \"store2\"", "name = \"store2\"\nweight = \"heavy\""),
        "server[2].weight",
        "invalid type",
    );
}

#[test]
fn unknown_role() {
    refused(
        &replace("roles = [\"mta\"]", "roles = [\"mxa\"]"),
        "server[0].roles",
        "unknown variant `mxa`",
    );
}

#[test]
fn no_roles() {
    refused(
        &replace("roles = [\"mta\"]", "roles = []"),
        "server[0].roles",
        "is empty",
    );
}

#[test]
fn duplicate_server_name() {
    let text =
        format!("{GOOD}\n[[server]]\nname = \"mx1\"\nroles = [\"proxy\"]\nhost = \"127.0.0.9\"\n");
    refused(
        &text,
        "server[3].name",
        "duplicate server name \"mx1\" (also server[0])",
    );
}

#[test]
fn port_out_of_range() {
    refused(
        &replace(
            "imap = 143, lmtp = 24 }\nmaildir_root",
            "imap = 70000, lmtp = 24 }\nmaildir_root",
        ),
        "server[1].ports.imap",
        "70000 is out of range 1-65535",
    );
}

#[test]
fn port_zero() {
    refused(
        &replace("{ smtp = 25 }", "{ smtp = 0 }"),
        "server[0].ports.smtp",
        "out of range",
    );
}

#[test]
fn two_servers_on_one_port() {
    let text = replace(
        "host = \"127.0.0.2\"\nports = { imap = 143, lmtp = 24 }",
        "host = \"127.0.0.1\"\nports = { imap = 143, lmtp = 2424 }",
    );
    refused(
        &text,
        "server[2].ports.imap",
        "port 143 on 127.0.0.1 is already used by store1.imap",
    );
}

#[test]
fn mailbox_server_without_maildir_root() {
    let text = GOOD.replacen("maildir_root = \"/var/vmail\"\n", "", 1);
    refused(&text, "server[1].maildir_root", "mailbox server needs");
}

#[test]
fn mailbox_server_without_lmtp() {
    refused(
        &replace("{ imap = 143, lmtp = 24 }", "{ imap = 143 }"),
        "server[1].ports.lmtp",
        "needs an lmtp port",
    );
}

#[test]
fn mta_without_smtp() {
    refused(
        &replace("{ smtp = 25 }", "{ submission = 587 }"),
        "server[0].ports.smtp",
        "needs an smtp port",
    );
}

#[test]
fn group_with_unknown_server() {
    refused(
        &replace("[\"store1\", \"store2\"]", "[\"store1\", \"store3\"]"),
        "groups.stores",
        "unknown server \"store3\"",
    );
}

#[test]
fn server_in_two_groups() {
    refused(
        &format!("{GOOD}edge = [\"store1\"]\n"),
        "groups.",
        "already in group",
    );
}

#[test]
fn server_group_key_disagrees_with_groups() {
    refused(
        &replace("name = \"store2\"", "name = \"store2\"\ngroup = \"edge\""),
        "server[2].group",
        "puts server \"store2\" in \"stores\"",
    );
}

#[test]
fn bad_server_name() {
    refused(
        &replace("name = \"mx1\"", "name = \"mx 1\""),
        "server[0].name",
        "not a server name",
    );
}

#[test]
fn weight_out_of_range() {
    refused(
        &replace("name = \"store2\"", "name = \"store2\"\nweight = 5000"),
        "server[2].weight",
        "out of range 0-1000",
    );
}

#[test]
fn ldap_backend_without_ldap_section() {
    refused(
        &replace("backend = \"embedded\"", "backend = \"ldap\""),
        "directory.ldap",
        "missing",
    );
}

#[test]
fn ldap_url_with_wrong_scheme() {
    let text = replace(
        "backend = \"embedded\"",
        "backend = \"ldap\"\n[directory.ldap]\nurl = \"http://x\"\nbase_dn = \"dc=x\"\nbind_dn = \"cn=a,dc=x\"\npassword_file = \"s\"",
    );
    refused(
        &text,
        "directory.ldap.url",
        "not an ldap:// or ldaps:// URL",
    );
}

#[test]
fn ldap_without_password_file() {
    let text = replace(
        "backend = \"embedded\"",
        "backend = \"ldap\"\n[directory.ldap]\nurl = \"ldap://x\"\nbase_dn = \"dc=x\"\nbind_dn = \"cn=a,dc=x\"",
    );
    refused(
        &text,
        "directory.ldap.password_file",
        "never from the config or command line",
    );
}

#[test]
fn redis_state_without_url() {
    refused(
        &format!("{GOOD}\n[state]\nbackend = \"redis\"\n"),
        "state.url",
        "missing",
    );
}

/// Every command's refusal of this config is in `exit_codes`; here the places looked at.
#[test]
fn the_config_is_found_by_flag_then_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mailfleet.toml");
    std::fs::write(&path, replace("{ smtp = 25 }", "{ smtp = 0 }")).expect("write");
    let out = mailfleet(&[
        "--config",
        path.to_str().expect("utf-8"),
        "accounts",
        "list",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a config error is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("server[0].ports.smtp"));
    // The environment variable is the second place looked at.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args(["config", "check"])
        .env("MAILFLEET_CONFIG", &path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server[0].ports.smtp"));
}

#[test]
fn tls_settings_are_checked() {
    refused(
        &replace(
            "name = \"store2\"",
            "name = \"store2\"\ntls = { verify = \"yes\" }",
        ),
        "server[2].tls.verify",
        "invalid type",
    );
    refused(
        &replace(
            "name = \"store2\"",
            "name = \"store2\"\ntls = { starttls = \"always\" }",
        ),
        "server[2].tls.starttls",
        "unknown variant",
    );
    refused(
        &replace(
            "name = \"store2\"",
            "name = \"store2\"\ntls = { verfy = false }",
        ),
        "server[2].tls.verfy",
        "unknown field",
    );
    refused(
        &replace(
            "name = \"store2\"",
            "name = \"store2\"\ntls = { server_name = \"a b\" }",
        ),
        "server[2].tls.server_name",
        "not a host name",
    );
}

#[test]
fn backup_settings_are_checked() {
    let with = |lines: &str| format!("{GOOD}\n[backup]\n{lines}\n");
    refused(
        &with("timeout_secs = 0"),
        "backup.timeout_secs",
        "out of range",
    );
    refused(
        &with("command_timeout_secs = 99999"),
        "backup.command_timeout_secs",
        "out of range",
    );
    refused(&with("repository = \"\""), "backup.repository", "is empty");
    refused(
        &with("repository = \"s3://Bad_Bucket/x\""),
        "backup.repository",
        "not an S3 bucket name",
    );
    refused(
        &with("repository = \"s3://bucket/x\"\ns3 = { endpoint = \"ftp://x\" }"),
        "backup.s3.endpoint",
        "not an http",
    );
    refused(
        &with("repository = \"s3://bucket/x\"\ns3 = { access_key_id = \"k\" }"),
        "backup.s3",
        "go together",
    );
    refused(&with("pre = \" \""), "backup.pre", "is empty");
    refused(
        &with("imap_master_user = \"restore\""),
        "backup.imap_master_user",
        "go together",
    );
    refused(&with("key_file = \"\""), "backup.key_file", "is empty");
    refused(&with("keyfile = \"k\""), "backup.keyfile", "unknown field");
    let (ok, stderr) = check(&with(
        "repository = \"/srv/backup\"\nkey_file = \"backup.key\"\ntimeout_secs = 20",
    ));
    assert!(ok, "{stderr}");
}

#[test]
fn policy_settings_are_checked() {
    let with = |lines: &str| format!("{GOOD}\n[policy]\n{lines}\n");
    refused(
        &with("listen = \"nowhere\""),
        "policy.listen",
        "not an address:port",
    );
    refused(
        &with("window_secs = 0"),
        "policy.window_secs",
        "out of range",
    );
    refused(&with("key = \"ip\""), "policy.key", "unknown variant");
    refused(
        &with("[[policy.quota]]\nfor = \"not an address\"\nmessages = 5"),
        "policy.quota[0].for",
        "is not \"*\"",
    );
    refused(
        &with("[[policy.quota]]\nfor = \"*\"\nmessages = 0"),
        "policy.quota[0].messages",
        "not a positive number",
    );
    refused(
        &with("[[policy.quota]]\nfor = \"@example.com\""),
        "policy.quota[0]",
        "sets no limit",
    );
    refused(
        &with(
            "[[policy.quota]]\nfor = \"*\"\nmessages = 5\n[[policy.quota]]\nfor = \"*\"\nmessages = 6",
        ),
        "policy.quota[1].for",
        "same scope",
    );
    refused(
        &with("[[policy.quota]]\nfor = \"*\"\nmessages = 5\naction = \"bounce\""),
        "policy.quota[0].action",
        "unknown variant",
    );
    refused(
        &with("[[policy.dnsbl]]\nzone = \"bad zone\""),
        "policy.dnsbl[0].zone",
        "not a DNS zone",
    );
    refused(
        &with("dnsbl_action = \"drop\""),
        "policy.dnsbl_action",
        "not \"reject\"",
    );
    refused(
        &with("[policy.detect]\nrate_factor = 0.5"),
        "policy.detect.rate_factor",
        "not above 1",
    );
    refused(
        &with("state_failure = \"maybe\""),
        "policy.state_failure",
        "unknown variant",
    );
    let (ok, stderr) = check(&with(
        "listen = \"127.0.0.1:10040\"\nmilter_listen = \"127.0.0.1:10041\"\nwindow_secs = 3600\n\
         [[policy.quota]]\nfor = \"*\"\nmessages = 100\n\
         [[policy.quota]]\nfor = \"@example.org\"\nmessages = 500\n\
         [[policy.quota]]\nfor = \"news@example.com\"\nexempt = true\n",
    ));
    assert!(ok, "{stderr}");
}

#[test]
fn move_settings_are_checked() {
    let with = |lines: &str| format!("{GOOD}\n[move]\n{lines}\n");
    refused(&with("lock_budget = \"5\""), "move.lock_budget", "no unit");
    refused(
        &with("lock_budget = \"5 fortnights\""),
        "move.lock_budget",
        "unknown unit",
    );
    refused(
        &with("lock_budget = \"2h\""),
        "move.lock_budget",
        "out of range",
    );
    refused(&with("parallel = 0"), "move.parallel", "out of range");
    refused(
        &with("max_failed_share = 1.5"),
        "move.max_failed_share",
        "out of range",
    );
    refused(
        &with("keep_old_copy = \"soon\""),
        "move.keep_old_copy",
        "not a duration",
    );
    refused(&with("max_load = -1.0"), "move.max_load", "out of range");
    refused(&with("max_load = 0"), "move.max_load", "out of range");
}

#[test]
fn services_reboot_and_update_commands_are_checked() {
    let with = |lines: &str| {
        GOOD.replacen(
            "maildir_root = \"/var/vmail\"\n",
            &format!("maildir_root = \"/var/vmail\"\n{lines}\n"),
            1,
        )
    };
    let (ok, stderr) = check(&with(
        "reboot = [\"systemctl\", \"reboot\"]\nupdate_command = [\"/usr/local/sbin/patch-all\"]\n\
         [[server.services]]\nname = \"dovecot\"\npid_file = \"/run/dovecot/master.pid\"\nrestart = [\"systemctl\", \"restart\", \"dovecot\"]\n\
         [[server.services]]\nname = \"postfix\"\npid_file = \"/var/spool/postfix/pid/master.pid\"\nstop = [\"postfix\", \"stop\"]\nstart = [\"postfix\", \"start\"]\npackages = [\"postfix\", \"postfix-*\"]\n\
         [[server.services]]\nname = \"two\"\npid_file = \"/run/two.pid\"\nrestart = [[\"two\", \"stop\"], [\"two\", \"start\"]]\n",
    ));
    assert!(ok, "{stderr}");
    refused(&with("reboot = []"), "server[1].reboot", "names no program");
    refused(
        &with("update_command = [\"\"]"),
        "server[1].update_command",
        "names no program",
    );
    refused(
        &with(
            "[[server.services]]\nname = \"dovecot\"\npid_file = \"/run/d.pid\"\nstop = [\"dovecot\", \"stop\"]\n",
        ),
        "server[1].services[0]",
        "either restart, or both stop and start",
    );
    refused(
        &with(
            "[[server.services]]\nname = \"d\"\npid_file = \"/run/d.pid\"\nrestart = []\n\
               [[server.services]]\nname = \"e\"\npid_file = \"/run/e.pid\"\nrestart = [\"e\"]\n",
        ),
        "server[1].services[0].restart",
        "names no program",
    );
    // A service stopped before the update must be startable after it.
    refused(
        &with(
            "[[server.services]]\nname = \"d\"\npid_file = \"/run/d.pid\"\nrestart = [\"d\"]\npackages = [\"dovecot-*\"]\n",
        ),
        "server[1].services[0].packages",
        "needs stop and start",
    );
    refused(
        &with(
            "[[server.services]]\nname = \"d\"\npid_file = \"/run/d.pid\"\nstop = [\"d\"]\nstart = [\"d\"]\npackages = [\"a b\"]\n",
        ),
        "server[1].services[0].packages[0]",
        "is not a package name or glob",
    );
    refused(
        &format!("{GOOD}\n[upgrade]\nreplica_wait = \"soon\"\n"),
        "upgrade.replica_wait",
        "",
    );
    let (ok, stderr) = check(&with(
        "[[server.services]]\nname = \"d\"\npid_file = \"/run/d.pid\"\nrestart = [\"d\"]\n\
         [[server.services]]\nname = \"d\"\npid_file = \"/run/e.pid\"\nrestart = [\"e\"]\n",
    ));
    assert!(
        !ok && stderr.contains("server[1].services[1].name") && stderr.contains("named twice"),
        "{stderr}"
    );
}
