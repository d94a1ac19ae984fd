//! The milter protocol (version 6, as Postfix speaks it): each packet is a 4-byte big-endian
//! length, a command byte and its data; strings are NUL-terminated. Postfix sends every mail,
//! also one submitted by the `sendmail` binary, through `non_smtpd_milters`, which is how local
//! submissions get the same quotas as SMTP.

/// Largest packet accepted (Postfix sends body chunks of at most 64 KiB).
pub const MAX_PACKET: usize = 1 << 20;
/// The protocol version spoken.
pub const VERSION: u32 = 6;
/// Action flag: the filter may quarantine (put on hold).
pub const SMFIF_QUARANTINE: u32 = 0x20;
/// Protocol flags the filter asks for: no reply to each header and body chunk (they are only
/// counted), no HELO, no unknown commands.
pub const PROTOCOL_FLAGS: u32 = SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NR_HDR | SMFIP_NR_BODY;
const SMFIP_NOHELO: u32 = 0x2;
const SMFIP_NR_HDR: u32 = 0x80;
const SMFIP_NOUNKNOWN: u32 = 0x100;
const SMFIP_NR_BODY: u32 = 0x80000;

/// Why a packet was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MilterError {
    /// A length above [`MAX_PACKET`] or zero.
    #[error("packet length {0} out of range")]
    BadLength(usize),
    /// The data does not fit the command.
    #[error("malformed {command:?} packet: {why}")]
    Malformed {
        /// The command byte.
        command: char,
        /// What is wrong.
        why: &'static str,
    },
    /// A command byte this side does not know.
    #[error("unknown milter command {0:?}")]
    UnknownCommand(char),
}

/// A command from the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Option negotiation (first packet).
    OptNeg {
        /// The MTA's version.
        version: u32,
        /// Actions it allows.
        actions: u32,
        /// Protocol steps it can skip.
        protocol: u32,
    },
    /// Macros for the next command (`stage` is that command's byte).
    Macros {
        /// The command they belong to.
        stage: u8,
        /// Name and value pairs.
        pairs: Vec<(String, String)>,
    },
    /// The SMTP client (for `non_smtpd_milters`, Postfix reports the local host).
    Connect {
        /// Its host name.
        hostname: String,
        /// Its address, when it has one.
        address: Option<String>,
    },
    /// HELO/EHLO.
    Helo(String),
    /// MAIL FROM: the sender first, then ESMTP arguments.
    Mail(Vec<String>),
    /// RCPT TO: the recipient first.
    Rcpt(Vec<String>),
    /// DATA.
    Data,
    /// One header.
    Header {
        /// Its name.
        name: String,
        /// Its value.
        value: String,
    },
    /// End of headers.
    EndOfHeaders,
    /// A body chunk.
    Body(Vec<u8>),
    /// End of the message: the final verdict is due.
    EndOfMessage,
    /// The current message is abandoned.
    Abort,
    /// Close the connection.
    Quit,
    /// Forget the connection's state; a new one follows on the same socket.
    QuitNewConnection,
    /// An unknown SMTP command.
    Unknown(Vec<u8>),
}

/// The length of the next packet, when its 4-byte header is in `buf`.
pub fn packet_len(buf: &[u8]) -> Result<Option<usize>, MilterError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_PACKET {
        return Err(MilterError::BadLength(len));
    }
    Ok(Some(len))
}

/// Decodes the next packet in `buf`: the command and the bytes it took, or `None` if more
/// bytes are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(Command, usize)>, MilterError> {
    let Some(len) = packet_len(buf)? else {
        return Ok(None);
    };
    let Some(packet) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((parse(packet[0], &packet[1..])?, 4 + len)))
}

fn strings(data: &[u8]) -> Vec<String> {
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn parse(command: u8, data: &[u8]) -> Result<Command, MilterError> {
    let bad = |why| MilterError::Malformed {
        command: char::from(command),
        why,
    };
    Ok(match command {
        b'O' => {
            let word = |i: usize| -> Result<u32, MilterError> {
                let b = data
                    .get(i * 4..i * 4 + 4)
                    .ok_or(bad("shorter than 12 bytes"))?;
                Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            Command::OptNeg {
                version: word(0)?,
                actions: word(1)?,
                protocol: word(2)?,
            }
        }
        b'D' => {
            let (&stage, rest) = data.split_first().ok_or(bad("empty"))?;
            let s = strings(rest);
            if s.len() % 2 != 0 {
                return Err(bad("a macro name without a value"));
            }
            Command::Macros {
                stage,
                pairs: s.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect(),
            }
        }
        b'C' => {
            let end = data
                .iter()
                .position(|&b| b == 0)
                .ok_or(bad("no host name"))?;
            let hostname = String::from_utf8_lossy(&data[..end]).into_owned();
            let rest = &data[end + 1..];
            // Family byte, then (unless the family is 'U'nknown) a port and the address.
            let address = match rest.split_first() {
                Some((b'4' | b'6', tail)) if tail.len() > 2 => {
                    strings(&tail[2..]).into_iter().next()
                }
                Some((b'L', tail)) => strings(tail).into_iter().next(),
                _ => None,
            };
            Command::Connect { hostname, address }
        }
        b'H' => Command::Helo(strings(data).into_iter().next().unwrap_or_default()),
        b'M' => Command::Mail(strings(data)),
        b'R' => Command::Rcpt(strings(data)),
        b'T' => Command::Data,
        b'L' => {
            let mut s = strings(data).into_iter();
            let name = s.next().ok_or(bad("no header name"))?;
            Command::Header {
                name,
                value: s.next().unwrap_or_default(),
            }
        }
        b'N' => Command::EndOfHeaders,
        b'B' => Command::Body(data.to_vec()),
        b'E' => Command::EndOfMessage,
        b'A' => Command::Abort,
        b'Q' => Command::Quit,
        b'K' => Command::QuitNewConnection,
        b'U' => Command::Unknown(data.to_vec()),
        other => return Err(MilterError::UnknownCommand(char::from(other))),
    })
}

/// A reply to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Option negotiation answer.
    OptNeg {
        /// Version spoken.
        version: u32,
        /// Actions wanted.
        actions: u32,
        /// Protocol steps skipped.
        protocol: u32,
    },
    /// Go on.
    Continue,
    /// Accept the message, no more callbacks for it.
    Accept,
    /// Reject with the MTA's default text.
    Reject,
    /// Temporary failure.
    Tempfail,
    /// A reply with code and text (`550 5.7.1 ...`).
    ReplyCode(String),
    /// Put the message on hold, with a reason (only at end of message; a final reply follows).
    Quarantine(String),
}

fn packet(command: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + data.len());
    // data is at most a short reply text: its length fits u32.
    out.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
    out.push(command);
    out.extend_from_slice(data);
    out
}

fn c_string(s: &str) -> Vec<u8> {
    let mut v: Vec<u8> = s
        .bytes()
        .filter(|&b| b != 0 && b != b'\r' && b != b'\n')
        .collect();
    v.push(0);
    v
}

impl Reply {
    /// The packet bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::OptNeg {
                version,
                actions,
                protocol,
            } => {
                let mut d = Vec::with_capacity(12);
                d.extend_from_slice(&version.to_be_bytes());
                d.extend_from_slice(&actions.to_be_bytes());
                d.extend_from_slice(&protocol.to_be_bytes());
                packet(b'O', &d)
            }
            Reply::Continue => packet(b'c', &[]),
            Reply::Accept => packet(b'a', &[]),
            Reply::Reject => packet(b'r', &[]),
            Reply::Tempfail => packet(b't', &[]),
            Reply::ReplyCode(text) => packet(b'y', &c_string(text)),
            Reply::Quarantine(reason) => packet(b'q', &c_string(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(command: u8, data: &[u8]) -> Vec<u8> {
        packet(command, data)
    }

    #[test]
    fn commands_decode() {
        let mut opt = Vec::new();
        for w in [6u32, 0x1ff, 0x1f_ffff] {
            opt.extend_from_slice(&w.to_be_bytes());
        }
        let cases: Vec<(Vec<u8>, Command)> = vec![
            (
                raw(b'O', &opt),
                Command::OptNeg {
                    version: 6,
                    actions: 0x1ff,
                    protocol: 0x1f_ffff,
                },
            ),
            (
                raw(b'D', b"Mi\0ABC123\0{auth_authen}\0a@example.com\0"),
                Command::Macros {
                    stage: b'M',
                    pairs: vec![
                        ("i".into(), "ABC123".into()),
                        ("{auth_authen}".into(), "a@example.com".into()),
                    ],
                },
            ),
            (
                raw(b'C', b"localhost\x004\x00\x19127.0.0.1\0"),
                Command::Connect {
                    hostname: "localhost".into(),
                    address: Some("127.0.0.1".into()),
                },
            ),
            (
                raw(b'C', b"localhost\0U"),
                Command::Connect {
                    hostname: "localhost".into(),
                    address: None,
                },
            ),
            (
                raw(b'M', b"<a@example.com>\0SIZE=10\0"),
                Command::Mail(vec!["<a@example.com>".into(), "SIZE=10".into()]),
            ),
            (
                raw(b'R', b"<b@example.org>\0"),
                Command::Rcpt(vec!["<b@example.org>".into()]),
            ),
            (
                raw(b'L', b"Subject\0hi\0"),
                Command::Header {
                    name: "Subject".into(),
                    value: "hi".into(),
                },
            ),
            (raw(b'B', b"body"), Command::Body(b"body".to_vec())),
            (raw(b'E', b""), Command::EndOfMessage),
            (raw(b'K', b""), Command::QuitNewConnection),
        ];
        for (bytes, want) in cases {
            let (got, used) = decode(&bytes).unwrap().unwrap();
            assert_eq!(got, want);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn partial_and_bad_packets() {
        let p = raw(b'M', b"<a@b>\0");
        assert_eq!(decode(&p[..3]), Ok(None));
        assert_eq!(decode(&p[..p.len() - 1]), Ok(None));
        assert_eq!(decode(&[0, 0, 0, 0, b'x']), Err(MilterError::BadLength(0)));
        assert_eq!(
            decode(&[0xff, 0, 0, 0]),
            Err(MilterError::BadLength(0xff00_0000))
        );
        assert_eq!(
            decode(&raw(b'Z', b"")),
            Err(MilterError::UnknownCommand('Z'))
        );
        assert!(decode(&raw(b'O', b"short")).is_err());
        assert!(decode(&raw(b'D', b"Mname-without-value\0")).is_err());
        assert!(decode(&raw(b'L', b"")).is_err());
    }

    #[test]
    fn replies_encode() {
        assert_eq!(Reply::Continue.encode(), [0, 0, 0, 1, b'c']);
        assert_eq!(
            Reply::Quarantine("over quota\n".into()).encode(),
            [&[0, 0, 0, 12, b'q'][..], b"over quota\0"].concat()
        );
        let opt = Reply::OptNeg {
            version: 6,
            actions: SMFIF_QUARANTINE,
            protocol: PROTOCOL_FLAGS,
        }
        .encode();
        assert_eq!(opt.len(), 17);
        assert_eq!(opt[4], b'O');
    }
}
