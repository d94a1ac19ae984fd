//! SMTP, submission and LMTP: connect, banner, EHLO/LHLO, STARTTLS or implicit TLS, optional
//! AUTH, each step timed (the client is `mailclient`'s).

use mailfleet_mailclient::smtp::{Options, Smtp};
use mailfleet_mailclient::tls::Endpoint;

use crate::outcome::{Failure, Run};

/// What to say on the connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dialog<'a> {
    /// LMTP (LHLO) instead of SMTP (EHLO).
    pub lmtp: bool,
    /// Log in with AUTH PLAIN as this account and password.
    pub auth: Option<(&'a str, &'a str)>,
}

/// Opens a session as the dialog asks (greeting, TLS, AUTH).
pub async fn session(run: &mut Run, at: &Endpoint<'_>, d: &Dialog<'_>) -> Result<Smtp, Failure> {
    let options = Options {
        lmtp: d.lmtp,
        helo_name: "probe.mailfleet".into(),
    };
    let mut s = Smtp::connect(at, options, run.clock()).await?;
    run.note_tls(s.tls());
    if let Some((user, password)) = d.auth {
        s.auth_plain(user, password).await?;
    }
    Ok(s)
}

/// Checks a server greets and answers EHLO (LHLO for LMTP), with TLS and AUTH as asked.
pub async fn check(run: &mut Run, at: &Endpoint<'_>, d: &Dialog<'_>) -> Result<String, Failure> {
    let s = session(run, at, d).await?;
    let mut msg = format!(
        "banner: {}",
        s.banner().chars().take(60).collect::<String>()
    );
    if let Some(t) = s.tls() {
        msg.push_str(&format!("; {}", t.summary()));
    }
    if let Some((user, _)) = d.auth {
        msg.push_str(&format!("; authenticated as {user}"));
    }
    s.quit().await;
    Ok(msg)
}
