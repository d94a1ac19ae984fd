//! Gives syslog lines their missing year, in log order: a month that drops by half a year
//! or more is the new year; a small step back is an out-of-order line of the same year.

use chrono::{Datelike, NaiveDate};

use crate::syslog::Stamp;

/// A resolved time: the day and the seconds since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct When {
    /// The calendar day.
    pub day: NaiveDate,
    /// Seconds since midnight.
    pub secs: u32,
}

impl When {
    /// Hour of day, 0-23.
    pub fn hour(&self) -> usize {
        (self.secs / 3600).min(23) as usize
    }
    /// Weekday, 0 Monday .. 6 Sunday.
    pub fn weekday(&self) -> usize {
        self.day.weekday().num_days_from_monday() as usize
    }
}

/// The year tracker.
#[derive(Debug, Clone)]
pub struct Clock {
    year: i32,
    /// Month of the last in-order line; 0 before the first line.
    last_month: u8,
    /// The first line decides whether the log started last year.
    guess_first: bool,
    now: NaiveDate,
    /// The log's last yearless line (month, day), when it could be read ahead.
    last_line: Option<(u8, u8)>,
    cache: Option<(i32, u8, u8, NaiveDate)>,
}

impl Clock {
    /// A clock whose first yearless line is in `year`, or if none is given, in the latest
    /// year that puts the log's last line not after `now` (as syslog readers do: a log of
    /// 15-16 December read on 1 December is last year's). The last line is the one given
    /// with [`Clock::ending_at`] (read ahead from the end of a plain file); without it the
    /// first line may not be after `now`.
    pub fn new(year: Option<i32>, now: NaiveDate) -> Self {
        Clock {
            year: year.unwrap_or(now.year()),
            last_month: 0,
            guess_first: year.is_none(),
            now,
            last_line: None,
            cache: None,
        }
    }

    /// The log's last yearless line is on this month and day.
    pub fn ending_at(mut self, last: Option<(u8, u8)>) -> Self {
        self.last_line = last;
        self
    }

    /// The year of a log's first line on (month, day).
    fn first_year(&self, month: u8, day: u8) -> i32 {
        let today = (self.now.month() as u8, self.now.day() as u8);
        let mut year = self.now.year();
        if (month, day) > today {
            year -= 1;
        }
        if let Some(last) = self.last_line {
            // Less than a year from first to last line: the last is in the first line's
            // year, or, when earlier in the year, in the next.
            let last_year = if last >= (month, day) { year } else { year + 1 };
            if (last_year, last) > (self.now.year(), today) {
                year -= 1;
            }
        }
        year
    }

    /// The date of a stamp; `None` for an impossible date.
    pub fn resolve(&mut self, s: Stamp) -> Option<When> {
        let year = match s.year {
            Some(y) => i32::from(y),
            None => self.infer(s.month, s.day),
        };
        if let Some((y, m, d, date)) = self.cache
            && (y, m, d) == (year, s.month, s.day)
        {
            return Some(When {
                day: date,
                secs: s.secs,
            });
        }
        let date = NaiveDate::from_ymd_opt(year, u32::from(s.month), u32::from(s.day))?;
        self.cache = Some((year, s.month, s.day, date));
        Some(When {
            day: date,
            secs: s.secs,
        })
    }

    fn infer(&mut self, month: u8, day: u8) -> i32 {
        if self.last_month == 0 {
            if self.guess_first {
                self.year = self.first_year(month, day);
            }
            self.last_month = month;
        } else if month + 6 <= self.last_month {
            self.year += 1;
            self.last_month = month;
        } else if month >= self.last_month + 6 {
            // A straggler from before the new year: leave the clock where it is.
            return self.year - 1;
        } else {
            self.last_month = month;
        }
        self.year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(month: u8, day: u8) -> Stamp {
        Stamp {
            year: None,
            month,
            day,
            secs: 0,
        }
    }

    #[test]
    fn year_rolls_over_in_order() {
        let now = NaiveDate::from_ymd_opt(2025, 1, 5).unwrap();
        let mut c = Clock::new(None, now);
        // December lines read in January belong to last year.
        assert_eq!(c.resolve(stamp(12, 30)).unwrap().day.year(), 2024);
        assert_eq!(c.resolve(stamp(12, 31)).unwrap().day.year(), 2024);
        assert_eq!(c.resolve(stamp(1, 1)).unwrap().day.year(), 2025);
        // An out-of-order December line after the new year stays in December 2024.
        assert_eq!(c.resolve(stamp(12, 31)).unwrap().day.year(), 2024);
        assert_eq!(c.resolve(stamp(1, 2)).unwrap().day.year(), 2025);
    }

    #[test]
    fn a_log_is_never_dated_after_today() {
        let now = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        // 15-16 December read on 1 December: last year's.
        let mut c = Clock::new(None, now);
        assert_eq!(c.resolve(stamp(12, 15)).unwrap().day.year(), 2025);
        // 26 November to 11 December: its end may not be after today either.
        let mut c = Clock::new(None, now).ending_at(Some((12, 11)));
        assert_eq!(c.resolve(stamp(11, 26)).unwrap().day.year(), 2025);
        assert_eq!(c.resolve(stamp(12, 11)).unwrap().day.year(), 2025);
        // 20 November to 30 November: this year's.
        let mut c = Clock::new(None, now).ending_at(Some((11, 30)));
        assert_eq!(c.resolve(stamp(11, 20)).unwrap().day.year(), 2026);
        // Across New Year, read on 5 January: December is last year's, January this year's.
        let jan = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let mut c = Clock::new(None, jan).ending_at(Some((1, 4)));
        assert_eq!(c.resolve(stamp(12, 28)).unwrap().day.year(), 2025);
        assert_eq!(c.resolve(stamp(1, 4)).unwrap().day.year(), 2026);
    }

    #[test]
    fn explicit_year_and_bad_dates() {
        let now = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
        let mut c = Clock::new(Some(2023), now);
        assert_eq!(c.resolve(stamp(8, 1)).unwrap().day.year(), 2023);
        assert!(c.resolve(stamp(2, 30)).is_none());
    }
}
