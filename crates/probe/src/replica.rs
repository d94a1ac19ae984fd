//! Each directory replica's newest change beside its master's (`contextCSN`): what an
//! upgrade's gate compares to know that a replica has every change its master had, before a
//! directory server goes down.

use mailfleet_core::Config;
use mailfleet_mailclient::tls::Tls;

use crate::outcome::Run;

pub use mailfleet_core::replica::ReplicaCsn;

/// Reads every replica's and its master's newest `contextCSN` (the master first, so that a
/// change written in between makes the replica look no further ahead than it is).
pub async fn csns(config: &Config) -> Result<Vec<ReplicaCsn>, String> {
    let bind_pw = match &config.ldap {
        Some(l) => Some((l.bind_dn.clone(), crate::plan::bind_password(l)?)),
        None => None,
    };
    let bind = bind_pw.as_ref().map(|(d, p)| (d.as_str(), p.as_str()));
    let timeout = config.probe.timeout;
    let mut out = Vec::new();
    for replica in &config.fleet.servers {
        let Some(master) = replica
            .replica_of
            .as_ref()
            .and_then(|m| config.fleet.server(m))
        else {
            continue;
        };
        let read = |s: &mailfleet_core::Server| {
            let url = format!("ldap://{}:{}", s.host, s.ports.ldap.unwrap_or(389));
            let tls = Tls::new(&s.tls, &s.host);
            let name = s.name.clone();
            async move {
                let tls = tls.map_err(|e| format!("{name}: {e}"))?;
                let mut run = Run::new(timeout);
                crate::ldap::context_csn(&mut run, &url, Some(&tls), bind, timeout)
                    .await
                    .map_err(|e| format!("{name}: contextCSN: {e}"))
            }
        };
        let master_csn = read(master).await?;
        let replica_csn = read(replica).await?;
        out.push(ReplicaCsn {
            replica: replica.name.clone(),
            master: master.name.clone(),
            replica_csn,
            master_csn,
        });
    }
    Ok(out)
}
