//! HTTP(S): a GET of the server's `http_path` (webmail, admin console, proxy), timed to the
//! status line; 2xx and 3xx are OK.

use mailfleet_mailclient::tls::Endpoint;

use crate::outcome::{Failure, Run};

/// GETs `path` and checks the status.
pub async fn check(run: &mut Run, at: &Endpoint<'_>, path: &str) -> Result<String, Failure> {
    let r = mailfleet_mailclient::http::get(at, path, run.clock()).await?;
    run.note_tls(r.tls.as_ref());
    let status = &r.status_line;
    if (200..400).contains(&r.status) {
        let tls = r
            .tls
            .map_or(String::new(), |t| format!("; {}", t.summary()));
        Ok(format!("GET {path}: {status}{tls}"))
    } else {
        Err(Failure::new("response", format!("GET {path}: {status}")))
    }
}
