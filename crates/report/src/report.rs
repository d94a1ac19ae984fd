//! The report: what `--json` prints (a stable shape scripts can rely on) and what the
//! table, CSV and HTML outputs render.

use std::collections::BTreeMap;

use serde::Serialize;

/// Everything one run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// pflogsumm's grand totals.
    pub totals: Totals,
    /// One profile per host that logged.
    pub machines: Vec<Machine>,
    /// One profile per account.
    pub users: Vec<User>,
    /// Connections to scanned mail, stage by stage.
    pub funnel: Funnel,
    /// Accounts that behaved unlike themselves.
    pub anomalies: Vec<Anomaly>,
    /// Message sizes over the whole log, by power-of-two class.
    pub sizes: Vec<SizeClass>,
    /// Lines not understood, by kind.
    pub unparsed: Unparsed,
    /// What was read.
    pub input: InputSummary,
}

/// Totals counted as pflogsumm counts them (see the README for the few differences).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Messages received: smtpd `client=` and pickup lines.
    pub received: u64,
    /// Recipients delivered (`status=sent`, not forwarded).
    pub delivered: u64,
    /// Recipients forwarded (`status=sent ... forwarded as`).
    pub forwarded: u64,
    /// Messages with at least one deferral.
    pub deferred: u64,
    /// Deferral lines.
    pub deferrals: u64,
    /// Recipients bounced.
    pub bounced: u64,
    /// Rejections (smtpd, postscreen, cleanup).
    pub rejected: u64,
    /// `reject_warning` and header/body `WARN` lines.
    pub reject_warnings: u64,
    /// Messages put on hold.
    pub held: u64,
    /// Messages discarded.
    pub discarded: u64,
    /// Bytes of received messages.
    pub bytes_received: u64,
    /// Bytes delivered (message size once per recipient).
    pub bytes_delivered: u64,
    /// Distinct senders of received messages.
    pub senders: u64,
    /// Distinct recipients delivered to.
    pub recipients: u64,
    /// Distinct sending domains (or client hosts).
    pub sending_domains: u64,
    /// Distinct recipient domains.
    pub recipient_domains: u64,
}

/// Sizes of messages: exact min, max and mean; the median from a histogram (under 3.2% low).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SizeStats {
    /// Messages counted.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Largest.
    pub max: u64,
    /// Median, approximate.
    pub median: u64,
    /// Mean.
    pub average: f64,
}

/// Messages up to a size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SizeClass {
    /// Upper bound in bytes (a power of two).
    pub upto: u64,
    /// Messages in this class.
    pub count: u64,
}

/// One host's profile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    /// Its name in the log.
    pub host: String,
    /// Distinct accounts seen on it (logins, deliveries to its stores).
    pub accounts: u64,
    /// Messages received.
    pub received: u64,
    /// Recipients delivered.
    pub delivered: u64,
    /// Per day (`YYYY-MM-DD`): messages in and deliveries out.
    pub per_day: BTreeMap<String, InOut>,
    /// Message sizes.
    pub sizes: SizeStats,
    /// Mean recipients per message.
    pub recipients_per_message: f64,
    /// Most recipients of one message.
    pub max_recipients: u64,
    /// Messages received per hour of day (0-23).
    pub by_hour: [u64; 24],
    /// Messages received per weekday (0 Monday .. 6 Sunday).
    pub by_weekday: [u64; 7],
    /// The busiest hour (`YYYY-MM-DD HH:00`) and its count.
    pub peak_hour: Option<(String, u64)>,
    /// The busiest day and its count.
    pub peak_day: Option<(String, u64)>,
    /// Deferral lines over delivery attempts.
    pub deferral_rate: f64,
    /// Bounces over delivery attempts.
    pub bounce_rate: f64,
    /// Recipient domains delivered to most.
    pub top_destinations: Vec<(String, u64)>,
}

/// Messages in and out in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InOut {
    /// Received.
    #[serde(rename = "in")]
    pub received: u64,
    /// Delivered.
    #[serde(rename = "out")]
    pub delivered: u64,
}

/// One account's profile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct User {
    /// The account (SASL user, local sender or local recipient).
    pub account: String,
    /// Messages it sent (authenticated or local submissions).
    pub sent: u64,
    /// Recipients of its mail delivered to local mailboxes.
    pub sent_internal: u64,
    /// Recipients of its mail relayed out.
    pub sent_external: u64,
    /// Bytes it sent.
    pub bytes_sent: u64,
    /// Messages delivered to its mailbox.
    pub received: u64,
    /// Bytes delivered to its mailbox.
    pub bytes_received: u64,
    /// Distinct recipients it wrote to.
    pub distinct_recipients: u64,
    /// Activity (sends and logins) per hour of day.
    pub active_hours: [u64; 24],
    /// Successful logins per protocol (`imap`, `pop3`).
    pub logins: BTreeMap<String, u64>,
    /// Successful logins per client address.
    pub login_addresses: BTreeMap<String, u64>,
    /// Failed logins.
    pub failed_logins: u64,
    /// Bytes read and written in IMAP/POP3 sessions.
    pub session_bytes_out: u64,
}

/// The spam funnel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Funnel {
    /// Inbound connections (postscreen, else smtpd).
    pub connections: u64,
    /// Connections rejected because of a DNSBL.
    pub dnsbl_rejected: u64,
    /// Rejections per DNSBL named in the reject line.
    pub rejected_by_list: BTreeMap<String, u64>,
    /// Clients each DNSBL listed (from dnsblog) and how many only that list listed.
    pub listed_by: BTreeMap<String, Hits>,
    /// Other rejections (policy, unknown users, milters).
    pub other_rejected: u64,
    /// Messages accepted (smtpd `client=`).
    pub accepted: u64,
    /// Clients or messages passed on a whitelist.
    pub whitelisted: u64,
    /// Clients or messages refused on a blacklist.
    pub blacklisted: u64,
    /// Not scanned: too large.
    pub too_large: u64,
    /// Not scanned: filtering off for the user, or bypassed.
    pub not_scanned: u64,
    /// Scanned by a content filter.
    pub scanned: u64,
    /// Scanned and found clean.
    pub clean: u64,
    /// Scanned and found spam.
    pub spam: u64,
    /// Per rule: spam messages it hit, and those it alone hit.
    pub rules: BTreeMap<String, Hits>,
}

/// Hits and unique hits (the only list or rule that fired).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Hits {
    /// All hits.
    pub hits: u64,
    /// Hits where nothing else fired.
    pub unique: u64,
}

/// Something an account did far outside its habit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The account.
    pub account: String,
    /// `sending-spike` or `many-login-addresses`.
    pub kind: String,
    /// The day.
    pub day: String,
    /// What was seen (messages, or distinct addresses).
    pub value: u64,
    /// The account's usual value.
    pub baseline: f64,
}

/// Lines not understood.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unparsed {
    /// All of them.
    pub total: u64,
    /// By kind (`not a syslog line`, `program sendmail`, `postfix/smtpd: other`...).
    pub by_kind: BTreeMap<String, u64>,
}

/// What was read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputSummary {
    /// Files (or `-`), in the order read.
    pub files: Vec<String>,
    /// Lines read.
    pub lines: u64,
    /// Bytes read (uncompressed).
    pub bytes: u64,
    /// Files that could not be read to the end, and why; what was read of them counts.
    pub errors: Vec<String>,
}
