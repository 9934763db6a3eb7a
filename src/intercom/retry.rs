//! The client's single retry policy: which failures are retried, and how long to wait.
//!
//! * 2xx → success.
//! * 429 → retried after the rate window resets (`X-RateLimit-Reset`, converted to local time by
//!   the governor's server clock, plus a little jitter); falls back to `Retry-After`, then to
//!   backoff, when the header is missing. 429 means "not processed", so it is retried for every call.
//! * 408, 5xx, timeouts, connection refused/reset, incomplete answers → full-jitter exponential
//!   backoff: sleep = random(0, min(cap, base · 2^(n−1))) before retry n; a `Retry-After` header
//!   raises the sleep to at least its value (bounded).
//! * Every other status (400, 401, 403, 404, 409, 410, 422, …) is terminal, except a refusal
//!   that names a data attribute the client created less than 60 s ago as unknown (Intercom's
//!   new attributes "can take a short while to appear"): backoff, then retry, until then.
//!
//! Attempts are bounded by `max_attempts` (including the first); the new-attribute retries by
//! their 60 s.

use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;

/// Full-jitter exponential backoff.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Upper bound of the sleep before retry `retry` (1 = first retry): min(cap, base·2^(retry−1)).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let factor = 1u64 << exp;
        let nanos = (self.base.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.cap)
    }

    /// A uniformly random sleep in [0, ceiling(retry)].
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceil = self.ceiling(retry).as_nanos() as u64;
        Duration::from_nanos(rng.random_range(0..=ceil))
    }
}

/// What to do with an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// 2xx
    Success,
    /// 429: wait for the window reset, then retry.
    RateLimited,
    /// 408 / 5xx: back off, then retry (if the call may be replayed).
    Retry,
    /// Any other status.
    Terminal,
}

/// Classifies an HTTP status under the client's policy.
pub(crate) fn classify(status: u16) -> Disposition {
    match status {
        200..=299 => Disposition::Success,
        429 => Disposition::RateLimited,
        408 | 500..=599 => Disposition::Retry,
        _ => Disposition::Terminal,
    }
}

/// `Retry-After` in delta-seconds form (the HTTP-date form is ignored), bounded by `max`.
pub(crate) fn retry_after(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs.min(max.as_secs_f64())))
}

/// Small random delay added after a rate-window reset so that retries queued behind a 429 do
/// not all land in the same millisecond: uniform in [0, min(250 ms, window/40)].
pub(crate) fn reset_jitter<R: Rng + ?Sized>(window: Duration, rng: &mut R) -> Duration {
    let max = Duration::from_millis(250).min(window / 40).as_nanos() as u64;
    Duration::from_nanos(rng.random_range(0..=max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(20),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = policy();
        assert_eq!(b.ceiling(1), Duration::from_millis(250));
        assert_eq!(b.ceiling(2), Duration::from_millis(500));
        assert_eq!(b.ceiling(3), Duration::from_millis(1000));
        assert_eq!(b.ceiling(7), Duration::from_millis(16_000));
        assert_eq!(b.ceiling(8), Duration::from_secs(20));
        assert_eq!(
            b.ceiling(1000),
            Duration::from_secs(20),
            "huge retry numbers must not overflow"
        );
    }

    #[test]
    fn delay_is_full_jitter_within_bounds() {
        let b = policy();
        let mut rng = rand::rng();
        for retry in 1..=10 {
            let ceil = b.ceiling(retry);
            let mut max_seen = Duration::ZERO;
            let mut min_seen = Duration::MAX;
            for _ in 0..2000 {
                let d = b.delay(retry, &mut rng);
                assert!(d <= ceil, "retry {retry}: {d:?} > {ceil:?}");
                max_seen = max_seen.max(d);
                min_seen = min_seen.min(d);
            }
            // Full jitter spreads over the whole range, not just near the ceiling.
            assert!(
                max_seen > ceil.mul_f64(0.9),
                "retry {retry}: max {max_seen:?}"
            );
            assert!(
                min_seen < ceil.mul_f64(0.1),
                "retry {retry}: min {min_seen:?}"
            );
        }
    }

    #[test]
    fn classification() {
        assert_eq!(classify(200), Disposition::Success);
        assert_eq!(classify(204), Disposition::Success);
        assert_eq!(classify(429), Disposition::RateLimited);
        for s in [408, 500, 502, 503, 504] {
            assert_eq!(classify(s), Disposition::Retry, "{s}");
        }
        for s in [301, 400, 401, 403, 404, 409, 410, 422] {
            assert_eq!(classify(s), Disposition::Terminal, "{s}");
        }
    }

    #[test]
    fn retry_after_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, Duration::from_secs(60)), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(
            retry_after(&h, Duration::from_secs(60)),
            Some(Duration::from_secs(3))
        );
        h.insert(reqwest::header::RETRY_AFTER, "3600".parse().unwrap());
        assert_eq!(
            retry_after(&h, Duration::from_secs(60)),
            Some(Duration::from_secs(60))
        );
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, Duration::from_secs(60)), None);
    }

    #[test]
    fn reset_jitter_is_small() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            assert!(reset_jitter(Duration::from_secs(10), &mut rng) <= Duration::from_millis(250));
            assert!(reset_jitter(Duration::from_secs(1), &mut rng) <= Duration::from_millis(25));
        }
    }
}
