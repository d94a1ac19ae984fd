//! The milter side, for `non_smtpd_milters`: mail submitted with the `sendmail` binary (a
//! web site's PHP `mail()`) never reaches the policy server, but Postfix's cleanup passes it
//! through the milter. Same engine, same quotas: over quota the message is quarantined (put on
//! hold), a blocked sender is refused.

use std::sync::Arc;
use std::time::Duration;

use mailfleet_policy_proto::milter::{
    Command, MAX_PACKET, PROTOCOL_FLAGS, Reply, SMFIF_QUARANTINE, VERSION, decode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use mailfleet_core::shutdown::Shutdown;

use crate::engine::{Engine, Message, Verdict};

/// What the milter knows of the message in progress.
#[derive(Debug, Default)]
struct Transaction {
    sender: Option<String>,
    sasl_user: Option<String>,
    queue_id: Option<String>,
    recipients: u64,
    bytes: u64,
}

/// Per connection: the negotiated protocol flags and the message in progress.
#[derive(Debug, Default)]
struct Session {
    protocol: u32,
    macros: Vec<(String, String)>,
    client: Option<String>,
    tx: Transaction,
}

impl Session {
    fn macro_value(&self, name: &str) -> Option<String> {
        self.macros
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }

    /// Whether the MTA agreed not to wait for a reply to this kind of command.
    fn no_reply(&self, flag: u32) -> bool {
        self.protocol & flag != 0
    }
}

const NR_HDR: u32 = 0x80;
const NR_BODY: u32 = 0x80000;

fn reply_for(v: Verdict) -> Vec<Reply> {
    match v {
        Verdict::Pass => vec![Reply::Continue],
        Verdict::Hold(reason) => vec![Reply::Quarantine(reason), Reply::Continue],
        Verdict::Defer(text) => vec![Reply::ReplyCode(format!("451 {text}"))],
        Verdict::Reject(text) => vec![Reply::ReplyCode(format!("550 {text}"))],
    }
}

async fn answer(engine: &Engine, s: &mut Session, command: Command) -> Option<Vec<Reply>> {
    Some(match command {
        Command::OptNeg {
            actions, protocol, ..
        } => {
            s.protocol = PROTOCOL_FLAGS & protocol;
            vec![Reply::OptNeg {
                version: VERSION,
                actions: SMFIF_QUARANTINE & actions,
                protocol: s.protocol,
            }]
        }
        Command::Macros { pairs, .. } => {
            s.macros.extend(pairs);
            return Some(Vec::new());
        }
        Command::Mail(args) => {
            s.tx = Transaction {
                sender: args.first().cloned(),
                sasl_user: s.macro_value("{auth_authen}"),
                ..Transaction::default()
            };
            let key = engine.key(s.tx.sasl_user.as_deref(), s.tx.sender.as_deref());
            match key.as_deref().and_then(|k| engine.blocked(k)) {
                Some(v @ Verdict::Reject(_)) => reply_for(v),
                _ => vec![Reply::Continue],
            }
        }
        Command::Rcpt(_) => {
            s.tx.recipients += 1;
            vec![Reply::Continue]
        }
        Command::Header { name, value } => {
            s.tx.bytes += (name.len() + value.len() + 4) as u64;
            if s.no_reply(NR_HDR) {
                return Some(Vec::new());
            }
            vec![Reply::Continue]
        }
        Command::Body(chunk) => {
            s.tx.bytes += chunk.len() as u64;
            if s.no_reply(NR_BODY) {
                return Some(Vec::new());
            }
            vec![Reply::Continue]
        }
        Command::EndOfMessage => {
            s.tx.queue_id = s.macro_value("i");
            let m = Message {
                sasl_user: s.tx.sasl_user.as_deref(),
                sender: s.tx.sender.as_deref(),
                recipients: s.tx.recipients,
                bytes: s.tx.bytes,
                queue_id: s.tx.queue_id.as_deref(),
                client: s.client.as_deref(),
            };
            let verdict = match engine.end_of_message(&m).await {
                Ok(v) => v,
                Err(e) => engine.state_failed(&e),
            };
            s.tx = Transaction::default();
            s.macros.clear();
            reply_for(verdict)
        }
        Command::Abort => {
            s.tx = Transaction::default();
            return Some(Vec::new());
        }
        Command::QuitNewConnection => {
            *s = Session {
                protocol: s.protocol,
                ..Session::default()
            };
            return Some(Vec::new());
        }
        Command::Quit => return None,
        Command::Connect { address, .. } => {
            s.client = address;
            vec![Reply::Continue]
        }
        Command::Helo(_) | Command::Data | Command::EndOfHeaders | Command::Unknown(_) => {
            vec![Reply::Continue]
        }
    })
}

async fn connection(
    mut stream: TcpStream,
    engine: Arc<Engine>,
    idle: Duration,
    shutdown: Shutdown,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut session = Session::default();
    loop {
        loop {
            let (command, used) = match decode(&buf) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("milter client {peer}: {e}: closing the connection");
                    return;
                }
            };
            buf.drain(..used);
            let Some(replies) = answer(&engine, &mut session, command).await else {
                return;
            };
            for r in replies {
                if stream.write_all(&r.encode()).await.is_err() {
                    return;
                }
            }
        }
        if buf.len() > MAX_PACKET + 4 {
            return;
        }
        // Between messages a shutdown ends the connection (the MTA applies
        // milter_default_action); a message in progress is answered first.
        let between = buf.is_empty() && session.tx.sender.is_none();
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read(&mut chunk)) => r,
            () = shutdown.wait(), if between => return,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Serves milter connections until shutdown.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, shutdown: Shutdown) {
    let idle = engine.config().idle_timeout;
    crate::server::accept_loop("milter", listener, shutdown, |stream, stop| {
        connection(stream, engine.clone(), idle, stop)
    })
    .await;
}
