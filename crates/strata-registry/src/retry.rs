//! When to try a request again, and how long to wait: exponential backoff with jitter on
//! connection errors, 408, 429 and 5xx; a `Retry-After` (seconds or an HTTP date) wins.
use std::time::{Duration, SystemTime};

/// Retry policy of a client.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured (a longer one fails the request instead of hanging it).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// Statuses worth another try.
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status) && status != 501 && status != 505
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): `base * 2^(retry-1)`, capped, then
    /// "equal jitter" (half fixed, half random) so parallel layers do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + Duration::from_nanos(rand::random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// The wait a `Retry-After` value asks for, if it parses and is not too long.
    pub fn retry_after(&self, value: &str, now: SystemTime) -> Option<Duration> {
        let v = value.trim();
        let d = if let Ok(secs) = v.parse::<u64>() {
            Duration::from_secs(secs)
        } else {
            parse_http_date(v)?.duration_since(now).unwrap_or(Duration::ZERO)
        };
        (d <= self.max_retry_after).then_some(d)
    }
}

/// Parses an HTTP date in the three forms HTTP/1.1 recipients must accept (RFC 9110 §5.6.7):
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, what servers send), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`), as Go's
/// `http.ParseTime` does.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        [_, d, m, y, t, "GMT"] => (*d, *m, y.parse::<i64>().ok()?, *t),
        [_, dmy, t, "GMT"] => {
            let f: Vec<&str> = dmy.split('-').collect();
            let [d, m, y] = f.as_slice() else { return None };
            // Two-digit years: RFC 9110 says a year more than 50 years ahead is in the past.
            let yy: i64 = y.parse().ok().filter(|_| y.len() == 2)?;
            (*d, *m, if yy >= 70 { 1900 + yy } else { 2000 + yy }, *t)
        }
        [_, m, d, t, y] => (*d, *m, y.parse::<i64>().ok()?, *t),
        _ => return None,
    };
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == month)? as u64
        + 1;
    let hms: Vec<u64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u64;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe as i64 - 719_468;
    let secs = days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    (secs >= 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for r in 1..10 {
            let d = p.backoff(r);
            let full = p.base_delay.saturating_mul(1 << (r - 1)).min(p.max_delay);
            assert!(d >= full / 2 && d <= full, "retry {r}: {d:?} vs {full:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_after("3", SystemTime::now()), Some(Duration::from_secs(3)));
        assert_eq!(p.retry_after("99999", SystemTime::now()), None);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(p.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(p.retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(p.retry_after("Sun Nov  6 08:49:37 1994", now), Some(Duration::from_secs(7)));
        // A date in the past: retry at once.
        assert_eq!(p.retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(p.retry_after("tomorrow", now), None);
        assert_eq!(p.retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now), None);
        assert_eq!(p.retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now), None);
        assert!(retryable_status(429) && retryable_status(503) && retryable_status(408));
        assert!(!retryable_status(404) && !retryable_status(501));
    }
}
