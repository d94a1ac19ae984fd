//! Regression tests for the README defects found by reading it as a new admin would: what
//! it shows must work as shown.

use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap()
}

/// The text of the README's section under this heading, up to the next heading of its level.
fn section(text: &str, heading: &str) -> String {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let level = heading.split(' ').next().unwrap();
    let rest = &text[start + heading.len() + 2..];
    let end = rest.find(&format!("\n{level} ")).unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn the_policy_section_has_no_policy_example_nor_the_postfix_dir() {
    let policy = section(&readme(), "## Outbound abuse control");
    // A [policy] example that a config really takes.
    let example = policy
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("[policy]"))
        .expect("a ```toml block with a [policy] example");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mailfleet.toml");
    let config = mailfleet_core::Config::parse(&format!("data_dir = \"data\"\n{example}"), &path)
        .unwrap_or_else(|e| panic!("the README's [policy] example is refused: {e}"));
    assert!(!config.policy.quotas.is_empty(), "the example sets a quota");
    assert!(
        config.policy.postfix_config_dir.is_some(),
        "the example names the MTA's config directory"
    );
    // What postfix_config_dir is for, and how to submit through the demo's sendmail.
    assert!(
        policy.contains("postfix_config_dir") && policy.contains("/etc/postfix"),
        "postfix_config_dir is not explained"
    );
    assert!(
        policy.contains("sendmail -C"),
        "no word on the demo's sendmail"
    );
}

#[test]
fn demo_up_does_not_say_where_postfix_config_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("stack");
    let config = dir.path().join("mailfleet.toml");
    let out = crate::common::mailfleet_ok(
        &config,
        &[
            "demo",
            "up",
            "--base",
            base.to_str().unwrap(),
            "--port-base",
            &crate::demo_cli::free_port_base().to_string(),
        ],
    );
    let _down = crate::demo_cli::Down(base.clone());
    let conf = base.join("mx1/conf");
    assert!(
        out.lines()
            .any(|l| l.contains("postfix") && l.contains(&conf.display().to_string())),
        "demo up names the Postfix config directory ({}):\n{out}",
        conf.display()
    );
}
