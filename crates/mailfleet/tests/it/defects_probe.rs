//! Regression tests for the probe and directory defects found by trying them as a new admin
//! would; each is named after the defect it pins.

use std::path::Path;

use mailfleet_stack::TestStack;
use serde_json::Value;

fn probe_json(config: &Path, servers: &[&str]) -> Vec<Value> {
    let mut args = vec!["--config", config.to_str().unwrap(), "--json", "probe"];
    args.extend_from_slice(servers);
    let out = crate::common::mailfleet(&args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn find<'a>(outcomes: &'a [Value], check: &str) -> &'a Value {
    outcomes
        .iter()
        .find(|o| o["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {outcomes:#?}"))
}

#[test]
fn disk_usage_counts_root_reserved_blocks_as_used() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailfleet.toml");
    std::fs::write(&config, "data_dir = \"data\"\n").unwrap();
    let outcomes = probe_json(&config, &["local"]);
    let ours: f64 = find(&outcomes, "disk:/")["message"]
        .as_str()
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let df = std::process::Command::new("df")
        .args(["--output=pcent", "/"])
        .output()
        .unwrap();
    let df: f64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    // df rounds up to a whole percent; the disk may change a little between the two reads.
    assert!(
        (ours - df).abs() <= 1.5,
        "disk:/ says {ours}% used where df says {df}%"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_ldap_bind_password_becomes_an_anonymous_bind() {
    let stack = TestStack::start().await.expect("stack");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let secret = mailfleet_stack::Layout::new(&stack.base()).ldap_secret();
    let line = format!("password_file = {:?}", secret.display().to_string());
    assert!(text.contains(&line), "the demo's bind password line moved");
    let missing = stack.base().join("no-such.secret");
    let config = stack.base().join("ldap-missing.toml");
    std::fs::write(
        &config,
        text.replacen(
            &line,
            &format!("password_file = {:?}", missing.display().to_string()),
            1,
        ),
    )
    .unwrap();
    let outcomes = probe_json(&config, &["ldap1", "ldap2"]);
    for check in ["ldap", "replica"] {
        for o in outcomes.iter().filter(|o| o["check"] == check) {
            assert_eq!(o["state"], "UNKNOWN", "{o:#}");
            assert!(
                o["message"].as_str().unwrap().contains("no-such.secret"),
                "the file is named: {o:#}"
            );
        }
    }
    assert!(outcomes.iter().any(|o| o["check"] == "replica"));
}

/// Messages in the probe account's INBOX on a store whose subject is an end-to-end tag.
async fn e2e_left(port: u16, account: &str) -> usize {
    let at = crate::common::local(port);
    let mut s = mailfleet_mailclient::Imap::login(
        &at,
        account,
        mailfleet_stack::demo::DEMO_PASSWORD,
        &crate::common::clock(),
    )
    .await
    .unwrap();
    s.select("INBOX").await.unwrap();
    let n = s
        .uid_search("HEADER Subject \"mailfleet-e2e-\"")
        .await
        .unwrap()
        .len();
    s.logout().await;
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn end_to_end_messages_delivered_late_are_never_deleted() {
    let stack = crate::common::backed_up_stack().await;
    let port = stack.info.ports.stores[0].imap;
    // Messages of rounds during an outage, delivered after it: tagged an hour ago.
    let mut s = crate::common::imap(port, "probe@example.com").await;
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        - 3_600_000_000_000;
    for i in 0..5u128 {
        let tag = format!("mailfleet-e2e-4242-{}", hour_ago + i);
        let m = format!(
            "From: <probe@example.com>\r\nTo: <probe@example.com>\r\nSubject: {tag}\r\nMessage-ID: <{tag}@mailfleet.invalid>\r\n\r\nlate\r\n"
        );
        s.append("INBOX", None, None, m.as_bytes()).await.unwrap();
    }
    s.logout().await;
    assert_eq!(e2e_left(port, "probe@example.com").await, 5);
    let outcomes = probe_json(&stack.config_path(), &["mx1"]);
    let e2e = find(&outcomes, "e2e:store1");
    assert_eq!(e2e["state"], "OK", "{e2e:#}");
    assert_eq!(
        e2e_left(port, "probe@example.com").await,
        0,
        "earlier rounds' messages that arrived late are removed"
    );
}

/// Three mounts whose statfs never returns, in a mount namespace of their own.
const THREE_HUNG: &str = r#"
set -u
dir="$1"; mf="$2"
pids=""
for n in 1 2 3; do
  mkdir -p "$dir/mnt$n"
  /usr/bin/python3 "$dir/hangfs.py" "$dir/mnt$n" 2>"$dir/hangfs$n.log" &
  pids="$pids $!"
done
for n in 1 2 3; do
  for i in $(seq 1 500); do grep -q " $dir/mnt$n fuse.hangfs " /proc/self/mounts && break; sleep 0.02; done
  grep -q " $dir/mnt$n fuse.hangfs " /proc/self/mounts || { echo "hangfs $n did not mount" >&2; kill -9 $pids; exit 9; }
done
start=$(date +%s%N)
"$mf" --config "$dir/mailfleet.toml" --json probe local > "$dir/out.json"
echo $(( ($(date +%s%N) - start) / 1000000 )) > "$dir/ms"
kill -9 $pids
for n in 1 2 3; do umount -l "$dir/mnt$n" 2>/dev/null; done
exit 0
"#;

#[test]
fn three_hung_mounts_take_three_timeouts() {
    let run = crate::hung_mount::run_in_mount_namespace(THREE_HUNG);
    let (d, ms, outcomes) = (run.dir.path(), run.ms, &run.outcomes);
    for n in 1..=3 {
        let check = format!("disk:{}", d.join(format!("mnt{n}")).display());
        let o = find(outcomes, &check);
        assert_eq!(o["state"], "CRITICAL", "{o:#}");
    }
    // One timeout (2 s) for all three, plus the margin of the one-mount test (2 s).
    assert!(ms < 2000 + 2000, "three hung mounts took {ms} ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ldap_directory_never_reconnects_and_ldaps_cannot_connect() {
    use mailfleet_core::directory::{Directory, Filter, LdapDirectory};
    let stack = TestStack::start().await.expect("stack");
    let layout = mailfleet_stack::Layout::new(&stack.base());
    let config = stack.ldap_config().unwrap();
    let mailfleet_core::config::DirectoryConfig::Ldap(ldap) = &config.directory else {
        panic!("not LDAP");
    };
    let dir = LdapDirectory::connect(ldap).await.unwrap();
    let before = dir.list(&Filter::default()).await.unwrap().len();
    assert!(before > 0);

    // slapd restarts (an upgrade, a crash): the directory binds again by itself. It comes
    // back with an ldaps:// listener as well.
    mailfleet_stack::slapd::stop(&layout.ldap()).unwrap();
    let ldap1 = crate::common::host_of(stack.info.ports.ldap);
    let ldaps_port = mailfleet_stack::ports::free_ports(ldap1, 1)[0];
    let mut slapd = crate::common::ChildGuard(
        mailfleet_stack::slapd::start_with_ldaps(
            &layout.ldap(),
            &layout.log_dir().join("slapd-again.log"),
            ldap1,
            stack.info.ports.ldap,
            Some(ldaps_port),
        )
        .unwrap(),
    );
    let after = dir.list(&Filter::default()).await;
    assert_eq!(
        after.as_ref().map(Vec::len).ok(),
        Some(before),
        "the directory did not reconnect after slapd restarted: {:?}",
        after.err()
    );

    // ldaps:// and StartTLS, verified against the configured CA.
    let ca = stack.base().join("tls/ca.pem");
    use mailfleet_core::fleet::StartTls;
    for (url, starttls) in [
        (format!("ldaps://{ldap1}:{ldaps_port}"), StartTls::Off),
        (
            format!("ldap://{ldap1}:{}", stack.info.ports.ldap),
            StartTls::Require,
        ),
    ] {
        let mut l = (**ldap).clone();
        l.url = url.clone();
        l.tls = mailfleet_core::fleet::TlsSettings {
            starttls,
            verify: true,
            ca_file: Some(ca.clone()),
            server_name: None,
        };
        let d = LdapDirectory::connect(&l)
            .await
            .unwrap_or_else(|e| panic!("{url} (starttls {starttls:?}): {e}"));
        assert_eq!(
            d.list(&Filter::default()).await.unwrap().len(),
            before,
            "{url}"
        );
    }
    // Without the CA the certificate is refused, and the error says so.
    let mut l = (**ldap).clone();
    l.url = format!("ldaps://{ldap1}:{ldaps_port}");
    l.tls.ca_file = None;
    let e = LdapDirectory::connect(&l)
        .await
        .err()
        .expect("an untrusted certificate");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let _ = slapd.0.kill();
}
