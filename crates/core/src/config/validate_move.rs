//! `[move]`: how mailbox moves run.

use std::time::Duration;

use super::MoveConfig;
use super::raw::RawMove;
use super::validate::Problems;

/// A duration written as a number and a unit: `500ms`, `5s`, `2m`, `1h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let at = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit: write it like 5s, 500ms, 2m or 1h"))?;
    let (num, unit) = t.split_at(at);
    if num.is_empty() {
        return Err(format!(
            "{text:?} is not a duration: write it like 5s, 500ms, 2m, 1h or 7d"
        ));
    }
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?}: {num:?} is not a number"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        u => return Err(format!("{text:?}: unknown unit {u:?} (ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is out of range"))
}

pub(super) fn moves(
    r: &RawMove,
    monitor_email: &[crate::Address],
    base: &std::path::Path,
    p: &mut Problems,
) -> MoveConfig {
    let lock_budget = match r.lock_budget.as_deref().map(parse_duration) {
        None => Duration::from_secs(5),
        Some(Ok(d)) if d >= Duration::from_millis(100) && d <= Duration::from_secs(3600) => d,
        Some(Ok(d)) => {
            p.add(
                "move.lock_budget",
                format!("{d:?} is out of range 100ms-1h"),
            );
            Duration::from_secs(5)
        }
        Some(Err(e)) => {
            p.add("move.lock_budget", e);
            Duration::from_secs(5)
        }
    };
    let keep_old_copy = match r.keep_old_copy.as_deref().map(parse_duration) {
        None => Duration::from_secs(7 * 86_400),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.add("move.keep_old_copy", e);
            Duration::from_secs(7 * 86_400)
        }
    };
    let mut int = |v: Option<i64>, key: &str, default: i64, min: i64, max: i64| {
        let v = v.unwrap_or(default);
        if !(min..=max).contains(&v) {
            p.add(
                format!("move.{key}"),
                format!("{v} is out of range {min}-{max}"),
            );
        }
        v.clamp(min, max)
    };
    let parallel = int(r.parallel, "parallel", 2, 1, 64) as usize;
    let max_passes = int(r.max_passes, "max_passes", 10, 1, 100) as usize;
    let keep_free_pct = int(r.keep_free_pct, "keep_free_pct", 10, 0, 99) as u8;
    let max_load = r.max_load.filter(|l| {
        let ok = l.is_finite() && *l > 0.0 && *l <= 1000.0;
        if !ok {
            p.add(
                "move.max_load",
                format!("{l} is out of range: a load average per CPU above 0 (2.0: two runnable tasks per CPU)"),
            );
        }
        ok
    });
    let share = r.max_failed_share.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&share) {
        p.add(
            "move.max_failed_share",
            format!("{share} is out of range 0-1 (a share: 0.2 is 20%)"),
        );
    }
    let notify_email = match &r.notify_email {
        None => monitor_email.to_vec(),
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match crate::Address::parse(a) {
                Ok(a) => Some(a),
                Err(e) => {
                    p.add(format!("move.notify_email[{i}]"), e.to_string());
                    None
                }
            })
            .collect(),
    };
    let user_notice = r.user_notice.as_ref().map(|f| base.join(f));
    if let Some(f) = &user_notice
        && let Err(e) = std::fs::read_to_string(f)
    {
        p.add(
            "move.user_notice",
            format!("{}: cannot be read: {e}", f.display()),
        );
    }
    MoveConfig {
        notify_email,
        user_notice,
        lock_budget,
        parallel,
        max_passes,
        max_load,
        keep_free_pct,
        max_failed_share: share.clamp(0.0, 1.0),
        keep_old_copy,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("5 weeks")
                .unwrap_err()
                .contains("unknown unit")
        );
    }
}
