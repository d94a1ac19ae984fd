//! Counters in Redis, shared by every MTA's policy server: a sorted set of events per sender
//! (score = time), checked and added in one Lua script so two servers asking for the last slot
//! at once cannot both get it; held mail in one hash. Commands time out quickly: when Redis is
//! away the caller fails open (or closed, by config) instead of making Postfix wait.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::counters::{Counters, Held, Limits, Usage};
use crate::error::PolicyError;

/// Events older than this are trimmed (the longest window allowed).
const KEEP_MS: u64 = 7 * 86_400_000;
const HELD: &str = "mailfleet:held";

/// A held record's field in [`HELD`]: `MTA/QUEUE_ID`, since two MTAs may use the same queue
/// ID; the bare queue ID for a record without an MTA.
fn held_field(h: &Held) -> String {
    match &h.mta {
        Some(m) => format!("{m}/{}", h.queue_id),
        None => h.queue_id.clone(),
    }
}
const BLOCK_PASSWORDS: &str = "mailfleet:block-passwords";

/// Sums the window, and adds the event if the limits allow it, atomically.
const TRY_ADD: &str = r"
local k = KEYS[1]
local now, win, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', k, '-inf', now - keep)
local m, r, b = 0, 0, 0
for _, it in ipairs(redis.call('ZRANGEBYSCORE', k, '(' .. (now - win), '+inf')) do
  local a, c, d = string.match(it, ':(%d+):(%d+):(%d+)$')
  m, r, b = m + tonumber(a), r + tonumber(c), b + tonumber(d)
end
local am, ar, ab = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local lm, lr, lb = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local over = (lm >= 0 and m + am > lm) or (lr >= 0 and r + ar > lr) or (lb >= 0 and b + ab > lb)
if not over then
  redis.call('ZADD', k, now, ARGV[10] .. ':' .. am .. ':' .. ar .. ':' .. ab)
  redis.call('PEXPIRE', k, keep)
end
return {over and 0 or 1, m, r, b}
";

/// Commands that time out in a row before the store stops asking Redis for a while.
const TRIP_AFTER: u32 = 3;
/// How long requests are answered without asking Redis once it tripped; the next command
/// after that tries again (and the service pings it every second meanwhile).
const OPEN_FOR_MS: u64 = 5_000;

/// Counters in Redis.
pub struct RedisCounters {
    conn: ConnectionManager,
    script: redis::Script,
    seq: AtomicU64,
    /// Commands that timed out in a row.
    timeouts: AtomicU32,
    /// Until when (ms since the epoch) commands fail at once instead of waiting on a Redis
    /// that hangs; 0: closed.
    open_until_ms: AtomicU64,
}

fn err(what: &str) -> impl FnOnce(redis::RedisError) -> PolicyError + '_ {
    move |e| PolicyError::Redis(format!("{what}: {e}"))
}

fn events_key(key: &str) -> String {
    format!("mailfleet:q:{key}")
}

fn limit(l: Option<u64>) -> i64 {
    l.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl RedisCounters {
    /// Connects lazily to `url` (the first command connects; a lost connection is re-made).
    pub fn open(url: &str, timeout: Duration) -> Result<Self, PolicyError> {
        let client = redis::Client::open(url).map_err(err("redis url"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(err("redis"))?;
        Ok(RedisCounters {
            conn,
            script: redis::Script::new(TRY_ADD),
            seq: AtomicU64::new(0),
            timeouts: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
        })
    }

    /// A connection for one command, unless Redis hung lately: then the command fails at
    /// once, and the caller's failure mode answers without waiting.
    fn conn(&self) -> Result<ConnectionManager, PolicyError> {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if until != 0 && crate::counters::now_ms() < until {
            return Err(PolicyError::Redis(format!(
                "not asked: the last {TRIP_AFTER} commands got no answer in time (trying again within {} s)",
                OPEN_FOR_MS / 1000
            )));
        }
        Ok(self.conn.clone())
    }

    /// Notes how a command went: timeouts in a row trip the store, an answer resets it.
    fn note<T>(&self, r: Result<T, redis::RedisError>, what: &str) -> Result<T, PolicyError> {
        match r {
            Ok(v) => {
                self.timeouts.store(0, Ordering::Relaxed);
                self.open_until_ms.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                if e.is_timeout() {
                    let n = self.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                    if n >= TRIP_AFTER {
                        let until = crate::counters::now_ms() + OPEN_FOR_MS;
                        if self.open_until_ms.swap(until, Ordering::Relaxed) == 0 {
                            tracing::error!(
                                "redis: {n} commands in a row got no answer: answering without it for now"
                            );
                        }
                    }
                }
                Err(err(what)(e))
            }
        }
    }

    fn member_id(&self) -> String {
        format!(
            "{}.{}.{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed),
            crate::counters::now_ms()
        )
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn try_add_tagged(
        &self,
        key: &str,
        now_ms: u64,
        window_ms: u64,
        add: Usage,
        limits: Limits,
        queue_id: Option<&str>,
    ) -> Result<(bool, Usage), PolicyError> {
        let mut conn = self.conn()?;
        let r = self
            .script
            .key(events_key(key))
            .arg(now_ms)
            .arg(window_ms)
            .arg(KEEP_MS)
            .arg(add.messages)
            .arg(add.recipients)
            .arg(add.bytes)
            .arg(limit(limits.messages))
            .arg(limit(limits.recipients))
            .arg(limit(limits.bytes))
            .arg(format!("{}|{}", queue_id.unwrap_or("-"), self.member_id()))
            .invoke_async(&mut conn)
            .await;
        let (ok, m, r, b): (i64, u64, u64, u64) = self.note(r, "counting")?;
        Ok((
            ok == 1,
            Usage {
                messages: m,
                recipients: r,
                bytes: b,
            },
        ))
    }

    async fn refund(&self, key: &str, queue_id: &str) -> Result<(), PolicyError> {
        let mut conn = self.conn()?;
        let prefix = format!("{queue_id}|");
        let r = conn.zrange(events_key(key), 0, -1).await;
        let members: Vec<String> = self.note(r, "refund")?;
        for m in members.iter().filter(|m| m.starts_with(&prefix)) {
            let r = conn.zrem::<_, _, ()>(events_key(key), m).await;
            self.note(r, "refund")?;
        }
        Ok(())
    }

    async fn usage(&self, key: &str, now_ms: u64, window_ms: u64) -> Result<Usage, PolicyError> {
        // A check with no room to add: the script's sum without a write.
        let none = Limits {
            messages: Some(0),
            ..Limits::default()
        };
        let (_, u) = self
            .try_add(key, now_ms, window_ms, Usage::message(0, 0), none)
            .await?;
        Ok(u)
    }

    async fn reset(&self, key: &str) -> Result<(), PolicyError> {
        let mut conn = self.conn()?;
        let r = conn.del::<_, ()>(events_key(key)).await;
        self.note(r, "reset")
    }

    async fn hold(&self, held: &Held) -> Result<(), PolicyError> {
        let mut conn = self.conn()?;
        let json = serde_json::to_string(held).map_err(|e| PolicyError::Redis(e.to_string()))?;
        let r = conn.hset::<_, _, _, ()>(HELD, held_field(held), json).await;
        self.note(r, "recording held mail")
    }

    async fn held(&self, key: Option<&str>) -> Result<Vec<Held>, PolicyError> {
        let mut conn = self.conn()?;
        let r = conn.hgetall(HELD).await;
        let all: Vec<(String, String)> = self.note(r, "held mail")?;
        let mut out = Vec::with_capacity(all.len());
        for (id, v) in all {
            match serde_json::from_str::<Held>(&v) {
                Ok(h) if key.is_none_or(|k| h.key == k) => out.push(h),
                Ok(_) => {}
                // One damaged record must not hide the others; it is named.
                Err(e) => tracing::error!("redis {HELD} {id}: unreadable record: {e}"),
            }
        }
        out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.queue_id.cmp(&b.queue_id)));
        Ok(out)
    }

    async fn unhold(&self, held: &Held) -> Result<(), PolicyError> {
        let mut conn = self.conn()?;
        let r = conn.hdel::<_, _, ()>(HELD, held_field(held)).await;
        self.note(r, "forgetting held mail")
    }

    async fn block_fingerprint(&self, address: &str) -> Result<Option<String>, PolicyError> {
        let mut conn = self.conn()?;
        let r = conn.hget(BLOCK_PASSWORDS, address).await;
        self.note(r, "block fingerprint")
    }

    async fn set_block_fingerprint(
        &self,
        address: &str,
        fingerprint: Option<&str>,
    ) -> Result<(), PolicyError> {
        let mut conn = self.conn()?;
        let r = match fingerprint {
            Some(f) => conn.hset::<_, _, _, ()>(BLOCK_PASSWORDS, address, f).await,
            None => conn.hdel::<_, _, ()>(BLOCK_PASSWORDS, address).await,
        };
        self.note(r, "block fingerprint")
    }

    async fn ping(&self) -> Result<(), PolicyError> {
        // Past the open circuit on purpose: this is how it learns Redis answers again.
        let mut conn = self.conn.clone();
        let r = redis::cmd("PING").query_async::<String>(&mut conn).await;
        self.note(r, "ping").map(|_| ())
    }

    async fn all_usage(
        &self,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<Vec<(String, Usage)>, PolicyError> {
        let mut conn = self.conn()?;
        // SCAN, a page at a time: KEYS would block Redis for every MTA on a big keyspace.
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let r = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("mailfleet:q:*")
                .arg("COUNT")
                .arg(1000)
                .query_async::<(u64, Vec<String>)>(&mut conn)
                .await;
            let (next, page) = self.note(r, "listing counters")?;
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key twice across pages.
        keys.sort_unstable();
        keys.dedup();
        let mut out = Vec::new();
        for k in keys {
            let key = k.trim_start_matches("mailfleet:q:").to_string();
            let u = self.usage(&key, now_ms, window_ms).await?;
            if u.messages > 0 {
                out.push((key, u));
            }
        }
        out.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then(a.0.cmp(&b.0)));
        Ok(out)
    }
}
