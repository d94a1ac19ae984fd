//! `mailfleet move ADDRESS... --to STORE`: each account copied live, locked for seconds,
//! verified, switched; one account failing does not stop the others.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mailfleet_core::{AccountBook, Address};
use mailfleet_move::{MoveOptions, Moved, move_account};

use super::{Context, exit, print_json};

#[derive(Debug, Args)]
pub(crate) struct MoveCmd {
    /// Accounts to move.
    #[arg(required = true)]
    accounts: Vec<String>,
    /// The mailbox store they go to.
    #[arg(long, value_name = "STORE")]
    to: String,
    /// Copy before the lock until a pass takes at most this many seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lock_budget_secs: u64,
}

/// One account's result, for `--json`.
#[derive(serde::Serialize)]
struct Outcome {
    address: String,
    moved: Option<Moved>,
    error: Option<String>,
}

pub(crate) async fn run(cmd: MoveCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let book = AccountBook::open(&config).await?;
    book.check_server(&cmd.to)
        .map_err(|e| exit::Usage(e.to_string()))?;
    let opts = MoveOptions {
        lock_budget: Duration::from_secs(cmd.lock_budget_secs),
        ..MoveOptions::default()
    };
    let reach = mailfleet_remote::Reach::new();
    let mut outcomes = Vec::new();
    for a in &cmd.accounts {
        let address = Address::parse(a).map_err(|e| exit::Usage(e.to_string()))?;
        let r = move_account(&book, &reach, &address, &cmd.to, &opts).await;
        if !ctx.json {
            match &r {
                Ok(m) => println!(
                    "{}: {} -> {}, {} messages in {} folders, {} passes, locked {:.1} s",
                    m.address,
                    m.from,
                    m.to,
                    m.messages,
                    m.folders,
                    m.passes_ms.len() + 1,
                    m.lock_ms / 1000.0
                ),
                Err(e) => eprintln!("mailfleet: {a}: not moved: {e}"),
            }
        }
        outcomes.push(match r {
            Ok(m) => Outcome {
                address: a.clone(),
                moved: Some(m),
                error: None,
            },
            Err(e) => Outcome {
                address: a.clone(),
                moved: None,
                error: Some(e.to_string()),
            },
        });
    }
    if ctx.json {
        print_json(&outcomes)?;
    }
    let failed = outcomes.iter().any(|o| o.error.is_some());
    Ok(exit::code(if failed { exit::FAILED } else { exit::OK }))
}
