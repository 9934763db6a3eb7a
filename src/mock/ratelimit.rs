//! Fixed-window rate limiter with windows aligned to multiples of the window length in unix time.

/// Rate-limit header values for one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// `X-RateLimit-Limit`: requests allowed per window.
    pub limit: u32,
    /// `X-RateLimit-Remaining`: requests left in the current window.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: unix time in whole seconds (rounded up) when the current window ends.
    pub reset: u64,
}

/// Counts requests in the current window; a new window starts at every multiple of `window_ms`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window_ms: u64,
    window_start_ms: u64,
    used: u32,
}

impl RateLimiter {
    /// A limiter allowing `limit` requests per window of `window_ms` milliseconds (min 1 ms).
    pub fn new(limit: u32, window_ms: u64) -> Self {
        RateLimiter {
            limit,
            window_ms: window_ms.max(1),
            window_start_ms: 0,
            used: 0,
        }
    }

    /// Moves to the window containing `now_ms`, resetting the count if it is a new window.
    fn roll(&mut self, now_ms: u64) {
        let start = now_ms - now_ms % self.window_ms;
        if start != self.window_start_ms {
            self.window_start_ms = start;
            self.used = 0;
        }
    }

    fn info(&self) -> RateInfo {
        RateInfo {
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.used),
            reset: (self.window_start_ms + self.window_ms).div_ceil(1000),
        }
    }

    /// Counts one request at `now_ms`; returns whether it is within the limit, and the headers.
    pub fn take(&mut self, now_ms: u64) -> (bool, RateInfo) {
        self.roll(now_ms);
        let allowed = self.used < self.limit;
        if allowed {
            self.used += 1;
        }
        (allowed, self.info())
    }

    /// The headers at `now_ms` without counting a request.
    pub fn peek(&mut self, now_ms: u64) -> RateInfo {
        self.roll(now_ms);
        self.info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_reset() {
        let mut rl = RateLimiter::new(2, 10_000);
        assert_eq!(
            rl.take(1_000_003_000),
            (
                true,
                RateInfo {
                    limit: 2,
                    remaining: 1,
                    reset: 1_000_010
                }
            )
        );
        assert!(rl.take(1_000_009_999).0);
        let (ok, info) = rl.take(1_000_009_999);
        assert!(!ok);
        assert_eq!(info.remaining, 0);
        let (ok, info) = rl.take(1_000_010_000);
        assert!(ok);
        assert_eq!(info.reset, 1_000_020);
    }
}
