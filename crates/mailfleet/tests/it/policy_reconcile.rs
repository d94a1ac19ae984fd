//! Mail that a later restriction rejects after mailfleet counted it does not use up the quota:
//! the policy server reads Postfix's log (on mx1, over SSH: `[policy] mta` names its queue and
//! its `mail_log`) and gives the count back by queue ID.

use std::time::Duration;

use mailfleet_stack::TestStack;

use crate::policy::{delivered, held_of, hook_postfix, start_server, submit, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn mail_rejected_after_counting_is_given_back() {
    let stack = TestStack::start().await.expect("stack");
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let conf = stack.base().join("mx1/conf");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let config = stack.base().join("reconcile.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[policy]\nlisten = \"127.0.0.1:{port}\"\nwindow_secs = 3600\n\
             block_refresh_secs = 1\nmta = \"mx1\"\n\n\
             [[policy.quota]]\nfor = \"alice@example.com\"\nmessages = 2\n"
        ),
    )
    .unwrap();
    let _server = start_server(&config, port);
    hook_postfix(&stack, &config);
    // A restriction after mailfleet's: erin takes no mail today.
    let rejects = conf.join("reject-rcpts");
    std::fs::write(
        &rejects,
        "erin@example.com REJECT erin takes no mail today\n",
    )
    .unwrap();
    let eod = crate::common::mailfleet_ok(&config, &["policy", "postfix-config"])
        .lines()
        .find(|l| l.starts_with("smtpd_end_of_data_restrictions"))
        .unwrap()
        .to_string();
    let mut main_cf = std::fs::read_to_string(conf.join("main.cf")).unwrap();
    main_cf.push_str(&format!(
        "{eod}, check_recipient_access texthash:{}\n",
        rejects.display()
    ));
    std::fs::write(conf.join("main.cf"), main_cf).unwrap();
    let reload = std::process::Command::new("postfix")
        .arg("-c")
        .arg(&conf)
        .arg("reload")
        .output()
        .unwrap();
    assert!(reload.status.success(), "{reload:?}");

    for i in 0..2 {
        let refused = submit(
            &stack,
            "alice@example.com",
            &["erin@example.com"],
            &format!("to-erin-{i}"),
        )
        .await;
        assert!(
            refused.is_err_and(|e| e.contains("no mail today")),
            "the later check rejects"
        );
    }
    // Counted at end of data, then given back once the rejection shows in Postfix's log (the
    // server says so in its own log; its state file is written behind, so it is no witness).
    let server_log = config.with_extension("log");
    wait_for(
        "the counts to be given back",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&server_log)
                .unwrap_or_default()
                .matches("was rejected after counting: count given back")
                .count()
                == 2
        },
    );
    for i in 0..2 {
        submit(
            &stack,
            "alice@example.com",
            &["bob@example.com"],
            &format!("alice-ok-{i}"),
        )
        .await
        .unwrap();
    }
    wait_for("both delivered, none held", Duration::from_secs(40), || {
        delivered(&stack, "alice-ok-") == 2
    });
    assert_eq!(held_of(&stack, "alice@example.com"), 0);
}
