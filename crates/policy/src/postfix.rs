//! The main.cf lines that put mailfleet in Postfix's path: the send-block check first in
//! `smtpd_sender_restrictions` (ahead of any `permit_mynetworks` or
//! `permit_sasl_authenticated`, so a blocked sender is refused at RCPT whoever it is); the
//! policy service at RCPT (after `reject_unauth_destination`, so relaying is refused before
//! any policy work: the DNSBL stage) and at end of data (where size and recipient count are
//! known); and the milter for local submissions.

use mailfleet_core::config::policy::PolicyConfig;
use mailfleet_core::postfix::Postfix;

/// The current value of a main.cf parameter, through `postconf` on the MTA (within 30 s);
/// empty when Postfix cannot say (not installed there, no such parameter), with a warning.
async fn postconf(postfix: &Postfix, name: &str) -> String {
    match postfix
        .run(
            "postconf",
            &["-h", name],
            std::time::Duration::from_secs(30),
        )
        .await
    {
        Ok(v) => v.trim().to_string(),
        Err(e) => {
            tracing::warn!("{e}");
            String::new()
        }
    }
}

/// `list` with `item` inserted right after `reject_unauth_destination` (or at the end),
/// unless it is there already; the rest of the text is kept as written.
fn insert_after_relay_check(list: &str, item: &str) -> String {
    let list = list.trim();
    if list.contains(item) {
        return list.to_string();
    }
    const RELAY: &str = "reject_unauth_destination";
    let word_end = list
        .match_indices(RELAY)
        .map(|(i, _)| i + RELAY.len())
        .find(|&end| {
            list[end..]
                .chars()
                .next()
                .is_none_or(|c| c == ',' || c.is_whitespace())
        });
    match word_end {
        Some(end) => format!("{}, {item}{}", &list[..end], &list[end..]),
        None if list.is_empty() => item.to_string(),
        None => format!("{list}, {item}"),
    }
}

/// The `policy_context` of the send-block check: the server answers it with the block
/// verdict only.
pub const BLOCK_CONTEXT: &str = "block";

/// `list` with `item` first, unless it is there already.
fn prepend(list: &str, item: &str) -> String {
    let list = list.trim();
    if list.contains(item) {
        list.to_string()
    } else if list.is_empty() {
        item.to_string()
    } else {
        format!("{item}, {list}")
    }
}

/// The lines to add to main.cf, given Postfix's current settings (read with `postconf` on
/// the `[policy] mta` through its access, from `postfix_config_dir` when set).
pub async fn lines(config: &PolicyConfig) -> String {
    let conf = &crate::release::postfix_of(config, &mailfleet_remote::Reach::new());
    let service = format!(
        "check_policy_service {{ inet:{}, timeout=10s, default_action=DUNNO }}",
        config.listen
    );
    let block = format!(
        "check_policy_service {{ inet:{}, timeout=10s, default_action=DUNNO, policy_context={BLOCK_CONTEXT} }}",
        config.listen
    );
    let sender = prepend(&postconf(conf, "smtpd_sender_restrictions").await, &block);
    let rcpt = postconf(conf, "smtpd_recipient_restrictions").await;
    let rcpt = if rcpt.is_empty() {
        format!(
            "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, {service}"
        )
    } else {
        insert_after_relay_check(&rcpt, &service)
    };
    let eod = postconf(conf, "smtpd_end_of_data_restrictions").await;
    let eod = if eod.is_empty() {
        service.clone()
    } else {
        insert_after_relay_check(&eod, &service)
    };
    let mut out = format!(
        "# mailfleet policy: send blocks act at RCPT before any permit (authenticated and local\n\
         # senders too), the DNSBL stage after the relay check, quotas at end of data (size and\n\
         # recipients known). A policy service that does not answer lets mail through\n\
         # (default_action=DUNNO).\n\
         smtpd_sender_restrictions = {sender}\n\
         smtpd_recipient_restrictions = {rcpt}\n\
         smtpd_end_of_data_restrictions = {eod}\n"
    );
    if let Some(m) = config.milter_listen {
        let milters = postconf(conf, "non_smtpd_milters").await;
        let ours = format!("inet:{m}");
        let milters = if milters.contains(&ours) {
            milters
        } else if milters.is_empty() {
            ours
        } else {
            format!("{milters}, {ours}")
        };
        out.push_str(&format!(
            "# Local submissions (the sendmail binary) reach mailfleet through the milter.\n\
             non_smtpd_milters = {milters}\n\
             milter_protocol = 6\n\
             milter_default_action = accept\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_goes_after_the_relay_check() {
        let svc = "check_policy_service inet:127.0.0.1:10040";
        assert_eq!(
            insert_after_relay_check(
                "permit_mynetworks, reject_unauth_destination, reject_rbl_client x",
                svc
            ),
            "permit_mynetworks, reject_unauth_destination, check_policy_service inet:127.0.0.1:10040, reject_rbl_client x"
        );
        assert_eq!(
            insert_after_relay_check("permit_mynetworks", svc),
            format!("permit_mynetworks, {svc}")
        );
        let done = format!("reject_unauth_destination, {svc}");
        assert_eq!(insert_after_relay_check(&done, svc), done);
    }

    #[test]
    fn the_block_check_goes_before_every_permit() {
        let svc = "check_policy_service { inet:127.0.0.1:10040, policy_context=block }";
        assert_eq!(
            prepend(
                "permit_mynetworks, permit_sasl_authenticated, reject_non_fqdn_sender",
                svc
            ),
            format!("{svc}, permit_mynetworks, permit_sasl_authenticated, reject_non_fqdn_sender")
        );
        assert_eq!(prepend("", svc), svc);
        assert_eq!(prepend(svc, svc), svc);
    }
}
