//! `mailfleet upgrade notify`: what the library sent, printed.

use std::process::ExitCode;

use super::{Context, exit, print_json};

pub(crate) async fn notify(
    config: &mailfleet_core::Config,
    ctx: &Context,
    servers: Vec<String>,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<ExitCode> {
    let now = at.unwrap_or_else(chrono::Utc::now);
    let report = mailfleet_upgrade::notice::notify(config, servers, now)
        .await
        .map_err(|e| match e {
            mailfleet_upgrade::notice::NoticeError::Plan(
                p @ mailfleet_upgrade::PlanError::UnknownServer(_),
            ) => exit::Usage(p.to_string()).into(),
            e => anyhow::Error::from(e),
        })?;
    if ctx.json {
        print_json(&report)?;
    } else {
        let tz = config.upgrade.timezone;
        for w in &report.windows {
            println!(
                "{:<16} {} - {} ({})",
                w.store,
                w.start.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                w.end.with_timezone(&tz).format("%H:%M"),
                tz.name()
            );
        }
        for m in &report.mails {
            match &m.error {
                None => println!("{:?} sent to {} ({})", m.kind, m.address, m.store),
                Some(e) => println!("{:?} NOT sent to {} ({}): {e}", m.kind, m.address, m.store),
            }
        }
        if report.mails.is_empty() {
            println!("nothing due");
        }
    }
    Ok(if report.failed() > 0 {
        exit::code(exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
