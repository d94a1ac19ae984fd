//! How `mailfleet accounts ...` prints accounts for a person (`--json` prints the values).

use mailfleet_core::Account;

pub(crate) fn print_table(list: &[Account]) {
    let w = list
        .iter()
        .map(|a| a.address.as_str().len())
        .max()
        .unwrap_or(7)
        .max(7);
    let s = list
        .iter()
        .map(|a| a.server.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:w$}  {:s$}  {:12}  PASSWORD",
        "ADDRESS", "SERVER", "STATUS"
    );
    for a in list {
        println!(
            "{:w$}  {:s$}  {:12}  {}",
            a.address.as_str(),
            a.server,
            a.status().to_string(),
            a.password_scheme().unwrap_or("-")
        );
    }
    println!("{} accounts", list.len());
}

pub(crate) fn print_one(a: &Account) {
    println!("address:  {}", a.address);
    println!("server:   {}", a.server);
    println!("status:   {}", a.status());
    println!(
        "locked:   {}",
        if a.locked { "yes (mailbox move)" } else { "no" }
    );
    match &a.send_block {
        Some(b) => println!(
            "sending:  blocked since {}: {}",
            b.since.to_rfc3339(),
            b.reason
        ),
        None => println!("sending:  allowed"),
    }
    println!(
        "password: {}",
        a.password_scheme()
            .map_or("none".to_string(), |s| format!("{{{s}}} hash"))
    );
}
