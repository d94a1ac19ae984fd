//! Mail through each MTA between two rounds, from its mail log followed through its access
//! (`mail_log`, its live file): messages received (qmgr's `from=<...>, nrcpt=` line, once per
//! message entering the queue), deliveries and bounces, and rejections, as the `traffic`
//! check whose quantity is messages received per hour over the time since the last look:
//! the charts' messages per hour. The first round only finds the log's end; a rotated log is
//! followed into its new file by the shared follower.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailfleet_core::follow_remote::LogFollower;
use mailfleet_core::{Config, Role, Server};
use mailfleet_maillog::event::{Kind, Status};
use mailfleet_maillog::{Hosts, classify_line};
use mailfleet_remote::Reach;

use crate::outcome::{Outcome, State, unknown};

/// The check's name.
pub const CHECK: &str = "traffic";

/// At most this much log is read per MTA and round; the rest waits for the next.
const MAX_READ: u64 = 32 << 20;

/// What the log said between two looks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Messages that entered the queue.
    pub received: u64,
    /// Recipients delivered.
    pub delivered: u64,
    /// Recipients bounced.
    pub bounced: u64,
    /// Clients, recipients or messages refused.
    pub rejected: u64,
}

/// Counts `lines` (complete log lines).
pub fn count(lines: &[u8], hosts: &mut Hosts) -> Counts {
    let mut c = Counts::default();
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match classify_line(line, hosts).kind {
            Kind::QueueFrom { .. } => c.received += 1,
            Kind::Delivery {
                status: Status::Sent,
                ..
            } => c.delivered += 1,
            Kind::Delivery {
                status: Status::Bounced,
                ..
            } => c.bounced += 1,
            Kind::Reject(_) => c.rejected += 1,
            _ => {}
        }
    }
    c
}

struct Followed {
    follower: LogFollower,
    since: Instant,
    hosts: Hosts,
}

/// Each MTA's log, followed from round to round.
#[derive(Default)]
pub struct Traffic {
    followed: HashMap<String, Followed>,
}

fn mtas(config: &Config) -> impl Iterator<Item = (&Server, &std::path::Path)> {
    config
        .fleet
        .with_role(Role::Mta)
        .filter_map(|s| s.live_logs().next().map(|l| (s, l.as_path())))
}

impl Traffic {
    /// Looks at every MTA's log (all at once): an outcome for each looked at before.
    pub async fn round(&mut self, config: &Config, reach: &Reach) -> Vec<Outcome> {
        let deadline = config.probe.timeout;
        let looks = mtas(config).map(|(server, log)| {
            let followed = self.followed.remove(&server.name);
            look(reach, server, log, followed, deadline)
        });
        let mut out = Vec::new();
        for (name, followed, outcome) in futures::future::join_all(looks).await {
            if let Some(f) = followed {
                self.followed.insert(name, f);
            }
            out.extend(outcome);
        }
        out
    }
}

/// One MTA's look: the follower to keep, and the outcome when there was a look before.
async fn look(
    reach: &Reach,
    server: &Server,
    log: &std::path::Path,
    followed: Option<Followed>,
    deadline: Duration,
) -> (String, Option<Followed>, Option<Outcome>) {
    let name = server.name.clone();
    let Some(mut f) = followed else {
        return match LogFollower::from_end(reach, &name, &server.access, log, deadline).await {
            Ok(follower) => {
                let unnamed = Some(Arc::<str>::from(name.as_str()));
                let f = Followed {
                    follower,
                    since: Instant::now(),
                    hosts: Hosts::new(unnamed),
                };
                (name, Some(f), None)
            }
            Err(e) => {
                let o = unknown(&name, CHECK, format!("{}: {e}", log.display()));
                (name, None, Some(o))
            }
        };
    };
    let started = Instant::now();
    match f.follower.poll(reach, MAX_READ, false, deadline).await {
        Ok(lines) => {
            let c = count(&lines, &mut f.hosts);
            let secs = f.since.elapsed().as_secs_f64().max(0.001);
            f.since = Instant::now();
            let per_hour = c.received as f64 * 3600.0 / secs;
            let o = Outcome {
                server: name.clone(),
                check: CHECK.into(),
                state: State::Ok,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                steps: Vec::new(),
                message: format!(
                    "{} received, {} delivered, {} bounced, {} rejected in {secs:.0} s ({per_hour:.0} messages/h)",
                    c.received, c.delivered, c.bounced, c.rejected
                ),
                value: None,
            }
            .with_value(per_hour);
            (name, Some(f), Some(o))
        }
        // Kept: the next round reads on from the same place.
        Err(e) => {
            let o = unknown(&name, CHECK, format!("{}: {e}", log.display()));
            (name, Some(f), Some(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_counted_by_message_and_recipient() {
        let log = b"Dec  3 19:00:01 mx1 postfix/smtpd[10]: 4AB12: client=localhost[127.0.0.1]\n\
Dec  3 19:00:01 mx1 postfix/qmgr[11]: 4AB12: from=<bob@example.com>, size=400, nrcpt=2 (queue active)\n\
Dec  3 19:00:01 mx1 postfix/lmtp[12]: 4AB12: to=<alice@example.com>, relay=store1[127.0.0.3]:24, delay=0.1, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Saved)\n\
Dec  3 19:00:01 mx1 postfix/lmtp[12]: 4AB12: to=<nobody@example.com>, relay=store1[127.0.0.3]:24, delay=0.1, delays=0/0/0/0, dsn=5.1.1, status=bounced (550 5.1.1 User unknown)\n\
Dec  3 19:00:02 mx1 postfix/smtpd[10]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <x@example.net>: Relay access denied; from=<a@b.c> to=<x@example.net> proto=ESMTP helo=<x>\n\
not a log line\n";
        let c = count(log, &mut Hosts::new(None));
        assert_eq!(
            c,
            Counts {
                received: 1,
                delivered: 1,
                bounced: 1,
                rejected: 1
            }
        );
    }
}
