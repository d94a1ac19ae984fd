//! How each server is reached, as the config says it: local by default, ssh with its files
//! from the server or `[ssh]`, and every mistake named by its key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::Path;

use mailfleet_core::Config;
use mailfleet_remote::Access;

const MTA: &str =
    "[[server]]\nname = \"mx1\"\nroles = [\"mta\"]\nhost = \"10.0.0.20\"\nports = { smtp = 25 }\n";

fn parse(extra_server: &str, top: &str, dir: &Path) -> Result<Config, String> {
    let text = format!("{top}\n{MTA}{extra_server}\n");
    Config::parse(&text, &dir.join("mailfleet.toml")).map_err(|e| e.to_string())
}

#[test]
fn servers_are_local_unless_they_name_ssh_and_ssh_files_default_from_the_section() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id"), "key").unwrap();
    std::fs::write(dir.path().join("kh"), "").unwrap();
    let c = parse("", "", dir.path()).unwrap();
    assert_eq!(c.fleet.servers[0].access, Access::Local);
    let c = parse(
        "ssh = \"ops@10.0.0.20:2222\"\njump = [\"bastion\"]\n",
        "[ssh]\nidentity_file = \"id\"\nknown_hosts = \"kh\"\n",
        dir.path(),
    )
    .unwrap();
    let Access::Ssh(t) = &c.fleet.servers[0].access else {
        panic!("not ssh");
    };
    assert_eq!(t.to_string(), "ops@10.0.0.20:2222");
    assert_eq!(
        t.identity_file.as_deref(),
        Some(dir.path().join("id").as_path())
    );
    assert_eq!(
        t.known_hosts.as_deref(),
        Some(dir.path().join("kh").as_path())
    );
    assert_eq!(t.jump, ["bastion"]);
    let c = parse("access = \"local\"\n", "", dir.path()).unwrap();
    assert_eq!(c.fleet.servers[0].access, Access::Local);
}

#[test]
fn access_mistakes_are_named_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "access = \"telnet\"\n",
            "server[0].access: \"telnet\" is not \"local\" or \"ssh\"",
        ),
        ("access = \"ssh\"\n", "server[0].ssh: missing"),
        (
            "access = \"local\"\nssh = \"root@h\"\n",
            "server[0].access: is \"local\" but ssh is set too",
        ),
        (
            "ssh = \"root@h:99999\"\n",
            "server[0].ssh: \"root@h:99999\": port",
        ),
        (
            "ssh = \"root@h\"\nidentity_file = \"nope\"\n",
            "server[0].identity_file: ",
        ),
        (
            "known_hosts = \"kh\"\n",
            "server[0].known_hosts: is for servers reached by ssh",
        ),
        (
            "ssh = \"root@h\"\njump = [\"-oProxyCommand=x\"]\n",
            "server[0].jump[0]: ",
        ),
    ];
    for (server, want) in cases {
        let e = parse(server, "", dir.path()).unwrap_err();
        assert!(e.contains(want), "{server:?}: {e}");
        assert!(e.contains("(server \"mx1\")"), "{e}");
    }
    let e = parse(
        "ssh = \"root@h\"\n",
        "[ssh]\nknown_hosts = \"missing\"\n",
        dir.path(),
    )
    .unwrap_err();
    assert!(
        e.contains("ssh.known_hosts: ") && e.contains("missing"),
        "{e}"
    );
}
