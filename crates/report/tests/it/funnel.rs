//! The spam funnel and anomaly detection on logs in the formats postscreen, dnsblog, smtpd,
//! spamd, amavis, Rspamd and Dovecot write.

use std::fmt::Write as _;

use mailfleet_report::{Options, run};

fn report(text: &str) -> mailfleet_report::Report {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mail.log");
    std::fs::write(&p, text).unwrap();
    run(
        &[p],
        &Options {
            year: Some(2024),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn funnel_counts_each_stage_and_unique_hits() {
    let log = "\
Mar  1 10:00:00 mx postfix/postscreen[1]: CONNECT from [192.0.2.1]:4000 to [10.0.0.1]:25
Mar  1 10:00:00 mx postfix/dnsblog[2]: addr 192.0.2.1 listed by domain zen.spamhaus.org as 127.0.0.2
Mar  1 10:00:00 mx postfix/dnsblog[2]: addr 192.0.2.1 listed by domain bl.spamcop.net as 127.0.0.2
Mar  1 10:00:01 mx postfix/postscreen[1]: NOQUEUE: reject: RCPT from [192.0.2.1]:4000: 550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org; from=<a@spam.test>, to=<u@example.com>, proto=ESMTP, helo=<x>
Mar  1 10:00:02 mx postfix/postscreen[1]: CONNECT from [192.0.2.2]:4000 to [10.0.0.1]:25
Mar  1 10:00:02 mx postfix/dnsblog[2]: addr 192.0.2.2 listed by domain bl.spamcop.net as 127.0.0.2
Mar  1 10:00:03 mx postfix/postscreen[1]: NOQUEUE: reject: RCPT from [192.0.2.2]:4000: 550 5.7.1 Service unavailable; client [192.0.2.2] blocked using bl.spamcop.net; from=<b@spam.test>, to=<u@example.com>, proto=ESMTP, helo=<x>
Mar  1 10:00:04 mx postfix/postscreen[1]: CONNECT from [198.51.100.9]:4000 to [10.0.0.1]:25
Mar  1 10:00:04 mx postfix/postscreen[1]: WHITELISTED [198.51.100.9]:4000
Mar  1 10:00:05 mx postfix/postscreen[1]: CONNECT from [198.51.100.7]:4000 to [10.0.0.1]:25
Mar  1 10:00:05 mx postfix/postscreen[1]: PASS NEW [198.51.100.7]:4000
Mar  1 10:00:06 mx postfix/smtpd[3]: connect from mx.remote.org[198.51.100.7]
Mar  1 10:00:06 mx postfix/smtpd[3]: NOQUEUE: reject: RCPT from mx.remote.org[198.51.100.7]: 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown; from=<c@remote.org> to=<nobody@example.com> proto=ESMTP helo=<mx.remote.org>
Mar  1 10:00:07 mx postfix/smtpd[3]: 11AA: client=mx.remote.org[198.51.100.7]
Mar  1 10:00:07 mx postfix/smtpd[3]: 22BB: client=mx.remote.org[198.51.100.7]
Mar  1 10:00:07 mx postfix/smtpd[3]: 33CC: client=mx.remote.org[198.51.100.7]
Mar  1 10:00:07 mx postfix/smtpd[3]: 44DD: client=mx.remote.org[198.51.100.7]
Mar  1 10:00:08 mx spamd[4]: spamd: result: Y 12 - BAYES_99,URIBL_BLACK scantime=0.4,size=2000,user=u,uid=1,required_score=5.0,rhost=l,raddr=127.0.0.1,rport=1,mid=<1@x>,autolearn=no
Mar  1 10:00:08 mx spamd[4]: spamd: result: . 1 - HTML_MESSAGE scantime=0.4,size=2000,user=u,uid=1,required_score=5.0,rhost=l,raddr=127.0.0.1,rport=1,mid=<2@x>,autolearn=no
Mar  1 10:00:09 mx amavis[5]: (01234-01) Passed SPAM {RelayedTaggedInbound}, [198.51.100.7]:4000 [198.51.100.7] <c@remote.org> -> <u@example.com>, Queue-ID: 33CC, Message-ID: <3@x>, mail_id: m, Hits: 9.1, size: 800, queued_as: 55EE, tests=[BAYES_99=3.5], 900 ms
Mar  1 10:00:09 mx rspamd[6]: <ab>; task; rspamd_task_write_log: id: <4@x>, qid: <44DD>, ip: 198.51.100.7, from: <c@remote.org>, (default: F (no action): [1.20/15.00] [MIME_GOOD(-0.10){text/plain;}]), len: 900, time: 40ms
Mar  1 10:00:10 mx spamc[7]: skipped message, greater than max message size (512000 bytes)
";
    let f = report(log).funnel;
    assert_eq!(f.connections, 4);
    assert_eq!(f.dnsbl_rejected, 2);
    assert_eq!(f.rejected_by_list.get("zen.spamhaus.org"), Some(&1));
    assert_eq!(f.rejected_by_list.get("bl.spamcop.net"), Some(&1));
    let spamcop = f.listed_by["bl.spamcop.net"];
    assert_eq!(
        (spamcop.hits, spamcop.unique),
        (2, 1),
        "192.0.2.2 only on spamcop"
    );
    let zen = f.listed_by["zen.spamhaus.org"];
    assert_eq!((zen.hits, zen.unique), (1, 0));
    assert_eq!((f.other_rejected, f.accepted, f.whitelisted), (1, 4, 1));
    assert_eq!((f.scanned, f.spam, f.clean, f.too_large), (4, 2, 2, 1));
    let bayes = f.rules["BAYES_99"];
    assert_eq!(
        (bayes.hits, bayes.unique),
        (2, 1),
        "alone in amavis's list, with URIBL_BLACK in spamd's"
    );
    assert!(
        !f.rules.contains_key("HTML_MESSAGE"),
        "rules count on spam only"
    );
}

#[test]
fn sending_spike_and_many_login_addresses_are_anomalies() {
    let mut log = String::new();
    let mut q = 0;
    // mallory sends 3 a day for five days, then 200 on the sixth.
    for (day, n) in [(1, 3), (2, 3), (3, 3), (4, 3), (5, 3), (6, 200)] {
        for i in 0..n {
            q += 1;
            let _ = writeln!(
                log,
                "Apr  {day} 09:{:02}:00 mx postfix/smtpd[1]: Q{q:05X}: client=h[203.0.113.5], sasl_method=PLAIN, sasl_username=mallory@example.com",
                i % 60
            );
            let _ = writeln!(
                log,
                "Apr  {day} 09:{:02}:00 mx postfix/qmgr[2]: Q{q:05X}: from=<mallory@example.com>, size=900, nrcpt=1 (queue active)",
                i % 60
            );
            let _ = writeln!(
                log,
                "Apr  {day} 09:{:02}:01 mx postfix/qmgr[2]: Q{q:05X}: removed",
                i % 60
            );
        }
    }
    // trudy logs in from 12 addresses on one day.
    for i in 0..12 {
        let _ = writeln!(
            log,
            "Apr  6 10:00:{i:02} store1 dovecot: imap-login: Login: user=<trudy@example.com>, method=PLAIN, rip=198.51.100.{i}, lip=10.0.0.2, mpid={i}, session=<s{i}>"
        );
    }
    let r = report(&log);
    let kinds: Vec<(&str, &str, &str, u64)> = r
        .anomalies
        .iter()
        .map(|a| (a.account.as_str(), a.kind.as_str(), a.day.as_str(), a.value))
        .collect();
    assert_eq!(
        kinds,
        [
            ("mallory@example.com", "sending-spike", "2024-04-06", 200),
            (
                "trudy@example.com",
                "many-login-addresses",
                "2024-04-06",
                12
            )
        ]
    );
    let mallory = r
        .users
        .iter()
        .find(|u| u.account == "mallory@example.com")
        .unwrap();
    assert_eq!(mallory.sent, 215);
}
