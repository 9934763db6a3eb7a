//! The rate governor shared by every request of one `Client`.
//!
//! Three mechanisms, applied to every attempt (retries included):
//!
//! 1. **Concurrency**: a semaphore bounds requests in flight (`concurrency`).
//! 2. **Pacing**: request *starts* are spaced evenly, `interval = window / (limit · 0.98)`,
//!    with no burst credit: an idle client does not bank slots. `limit` is
//!    min(user cap, server's `X-RateLimit-Limit`, or 1,666 before the first answer). Even spacing
//!    at 98 % means any window — aligned or sliding — sees at most ~0.98·limit + 1 starts, so a
//!    fixed-window server (Intercom, the mock) is never exhausted by our own traffic, while ≥ 95 %
//!    of the allowed rate is used when callers keep enough requests queued.
//! 3. **Server feedback** (`X-RateLimit-Remaining` / `-Reset`): each answer gives a budget
//!    estimate for its window: `remaining − (starts reserved after that request)` — requests
//!    that may be in flight or not yet counted by the server are charged conservatively. The
//!    budget is the minimum of those estimates for the newest window (answers from older windows
//!    are ignored) and is decremented at every start. When it reaches 0 (e.g. another integration
//!    shares the app's quota), new starts are held until the window resets. A 429 whose
//!    `Remaining` is 0 or absent sets the budget to 0 the same way, so every queued request waits
//!    for the reset, not only the one that was refused. (A 429 that still reports quota left was
//!    refused for some other reason: only that request waits for the reset.)
//!
//! **Clock skew.** `X-RateLimit-Reset` is a unix second on the *server's* clock, so it is not
//! compared with the local wall clock directly. Every answer's `Date` header (which Intercom and
//! the mock send) bounds the server clock offset from below: received at local time `r` with
//! `Date: D` (whole seconds, truncated, possibly up to 1 s stale) means `offset ≥ D − r`. The best
//! bound of the last 30–60 s is kept (older ones age out, so a server clock that steps back is
//! followed). With many answers it converges to within the network latency of the true offset.
//! A reset at server time `T` is then waited for until local time `T − bound` — the latest moment
//! the server could still be before `T`, i.e. never early — plus a 25 ms margin. Local time is a
//! monotonic `Instant` anchored to the wall clock once, so local clock jumps do not matter.
//! Without any `Date` header we treat `Reset` relative to our own clock and assume the server
//! may be up to 250 ms behind us (wait until `T + 250 ms` local). Being late costs a fraction of
//! one window only in the rare exhausted/429 case; being early would cost more 429s.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Fraction of the window limit the pacer aims for.
pub(crate) const UTILISATION: f64 = 0.98;
/// Added after a converted reset instant.
const RESET_MARGIN: Duration = Duration::from_millis(25);
/// Assumed worst-case server lag when no `Date` header was ever seen.
const NO_DATE_MARGIN: f64 = 0.25;
/// Never hold longer than this on the word of one header (protects against garbage values).
const MAX_HOLD: Duration = Duration::from_secs(120);

/// Rate-limit related headers of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    /// `X-RateLimit-Limit`: requests per window.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`: requests left in the current window.
    pub remaining: Option<i64>,
    /// `X-RateLimit-Reset`: unix seconds when the window ends.
    pub reset: Option<u64>,
    /// `Date`, as unix seconds.
    pub date: Option<u64>,
}

impl RateHeaders {
    /// Reads the headers; malformed values are treated as absent.
    pub fn from_headers(h: &HeaderMap) -> Self {
        fn num<T: std::str::FromStr>(h: &HeaderMap, name: &str) -> Option<T> {
            h.get(name)?.to_str().ok()?.trim().parse().ok()
        }
        RateHeaders {
            limit: num(h, "x-ratelimit-limit"),
            remaining: num(h, "x-ratelimit-remaining"),
            reset: num(h, "x-ratelimit-reset"),
            date: h
                .get(reqwest::header::DATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_http_date),
        }
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into unix seconds.
pub(crate) fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = match parts[2] {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    u64::try_from(secs).ok()
}

/// Estimate of the server clock offset (server unix time − local unix time), as a lower bound.
///
/// An answer received at local time `r` whose `Date` header says `D` (whole seconds, truncated,
/// possibly stale — hyper, for one, re-renders it only once per second) proves that the server's
/// clock read at least `D` before `r`: `offset ≥ D − r`. The best (largest) such bound over the
/// last 30–60 s is kept; old samples age out so that a server clock stepped backwards is
/// followed within a minute. No upper bound is derived: a stale `Date` would make it wrong.
#[derive(Debug, Clone)]
pub(crate) struct ServerClock {
    anchor: Instant,
    anchor_unix: f64,
    /// Best bound of the current 30-second bucket, and when that bucket started.
    current: Option<f64>,
    bucket_start: Instant,
    /// Best bound of the previous bucket.
    previous: Option<f64>,
}

/// Length of one sample bucket of [`ServerClock`].
const CLOCK_BUCKET: Duration = Duration::from_secs(30);

impl ServerClock {
    /// A clock whose local time is `anchor_unix` at `anchor`.
    pub fn with_anchor(anchor: Instant, anchor_unix: f64) -> Self {
        ServerClock {
            anchor,
            anchor_unix,
            current: None,
            bucket_start: anchor,
            previous: None,
        }
    }

    /// A clock anchored to the system wall clock now.
    pub fn from_system() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self::with_anchor(Instant::now(), unix)
    }

    /// Local unix time (monotonic, anchored) at `t`.
    pub fn local_unix(&self, t: Instant) -> f64 {
        if t >= self.anchor {
            self.anchor_unix + (t - self.anchor).as_secs_f64()
        } else {
            self.anchor_unix - (self.anchor - t).as_secs_f64()
        }
    }

    /// Adds the bound `offset ≥ date − local(received)` from one answer.
    pub fn observe_date(&mut self, date: u64, received: Instant) {
        if received.saturating_duration_since(self.bucket_start) >= CLOCK_BUCKET {
            self.previous = self.current.take();
            self.bucket_start = received;
        }
        let bound = date as f64 - self.local_unix(received);
        self.current = Some(self.current.map_or(bound, |b| b.max(bound)));
    }

    /// Lower bound of the offset (server − local) used for waiting; −0.25 s without any `Date`.
    pub fn offset_lower_bound(&self) -> f64 {
        match (self.current, self.previous) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => -NO_DATE_MARGIN,
        }
    }

    /// The local instant by which the server's clock has surely reached `server_unix`.
    pub fn local_instant_for(&self, server_unix: u64) -> Instant {
        let local = server_unix as f64 - self.offset_lower_bound();
        let delta = local - self.anchor_unix;
        if delta >= 0.0 {
            self.anchor + Duration::from_secs_f64(delta.min(1e9))
        } else {
            self.anchor
                .checked_sub(Duration::from_secs_f64((-delta).min(1e9)))
                .unwrap_or(self.anchor)
        }
    }
}

/// Settings of the pacer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaceConfig {
    /// Rate window length (10 s).
    pub window: Duration,
    /// User cap per window (hard ceiling).
    pub user_cap: Option<u32>,
    /// Limit assumed before the server states one.
    pub default_limit: u32,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Window identity: the server's `X-RateLimit-Reset`.
    reset: u64,
    /// Estimated requests we may still start in that window.
    remaining: i64,
    /// Local instant at which the window has surely ended.
    ends_at: Instant,
}

/// The governor's pure state machine (no I/O, explicit time): unit-testable.
#[derive(Debug)]
pub(crate) struct PaceState {
    cfg: PaceConfig,
    server_limit: Option<u32>,
    next_slot: Option<Instant>,
    hold_until: Option<Instant>,
    /// Starts reserved so far; a request's ticket is the value right after its reservation.
    starts: u64,
    latest_reset: Option<u64>,
    budget: Option<Budget>,
    clock: ServerClock,
}

impl PaceState {
    /// Fresh state.
    pub fn new(cfg: PaceConfig, clock: ServerClock) -> Self {
        PaceState {
            cfg,
            server_limit: None,
            next_slot: None,
            hold_until: None,
            starts: 0,
            latest_reset: None,
            budget: None,
            clock,
        }
    }

    /// Requests per window we pace against: min(user cap, server limit or default), ≥ 1.
    pub fn effective_limit(&self) -> u32 {
        let server = self.server_limit.unwrap_or(self.cfg.default_limit);
        self.cfg.user_cap.map_or(server, |c| c.min(server)).max(1)
    }

    /// Spacing between two starts.
    pub fn interval(&self) -> Duration {
        self.cfg
            .window
            .div_f64(self.effective_limit() as f64 * UTILISATION)
    }

    /// Reserves the next start slot at or after `now`; returns (start instant, ticket).
    pub fn reserve(&mut self, now: Instant) -> (Instant, u64) {
        let mut start = self.next_slot.map_or(now, |s| s.max(now));
        if let Some(h) = self.hold_until {
            if h > start {
                start = h;
            } else if h <= now {
                self.hold_until = None;
            }
        }
        if let Some(b) = self.budget {
            if start >= b.ends_at {
                self.budget = None; // that window is over; the next answers describe the new one
            } else if b.remaining <= 0 {
                start = start.max(b.ends_at);
                self.budget = None;
            }
        }
        if let Some(b) = self.budget.as_mut() {
            b.remaining -= 1;
        }
        self.next_slot = Some(start + self.interval());
        self.starts += 1;
        (start, self.starts)
    }

    /// If a hold (exhausted window / 429) covers `now`, the instant it ends.
    pub fn held_until(&self, now: Instant) -> Option<Instant> {
        let hold = self.hold_until.filter(|h| *h > now);
        let budget = self
            .budget
            .filter(|b| b.remaining < 0 && b.ends_at > now)
            .map(|b| b.ends_at);
        hold.max(budget)
    }

    /// Feeds back one answer to the request holding `ticket`, received at `received`.
    /// `rate_limited` is true for a 429. Returns the local instant at which the answer's window
    /// has surely reset, if the answer said when.
    pub fn observe(
        &mut self,
        ticket: u64,
        received: Instant,
        h: &RateHeaders,
        rate_limited: bool,
    ) -> Option<Instant> {
        if let Some(date) = h.date {
            self.clock.observe_date(date, received);
        }
        if let Some(limit) = h.limit.filter(|l| *l > 0) {
            self.server_limit = Some(limit);
        }
        let reset = h.reset?;
        let ends_at = (self.clock.local_instant_for(reset) + RESET_MARGIN).min(received + MAX_HOLD);
        if self.latest_reset.is_some_and(|latest| reset < latest) {
            return Some(ends_at); // an answer from an older window: no news about the current one
        }
        self.latest_reset = Some(reset);
        let reserved_after = self.starts.saturating_sub(ticket) as i64;
        // A 429 without `Remaining` (or with 0) means the window is exhausted. A 429 that still
        // reports quota left was refused for another reason (e.g. a different limit): only the
        // refused request waits for the reset then, everyone else keeps the normal pace.
        let window_exhausted = rate_limited && h.remaining.is_none_or(|r| r <= 0);
        let candidate = if window_exhausted {
            0
        } else {
            match h.remaining {
                Some(r) => r - reserved_after,
                None => return Some(ends_at),
            }
        };
        match self.budget.as_mut() {
            Some(b) if b.reset == reset => {
                b.remaining = b.remaining.min(candidate);
                b.ends_at = ends_at;
            }
            _ => {
                self.budget = Some(Budget {
                    reset,
                    remaining: candidate,
                    ends_at,
                });
            }
        }
        if window_exhausted {
            self.hold_until = Some(self.hold_until.map_or(ends_at, |h| h.max(ends_at)));
        }
        Some(ends_at)
    }
}

/// Concurrency limit + pacer, shared by all requests of a client.
#[derive(Debug)]
pub(crate) struct Governor {
    sem: Semaphore,
    state: Mutex<PaceState>,
}

/// Proof that a request may start now; hand it back via [`Governor::observe`].
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    _permit: SemaphorePermit<'a>,
    seq: u64,
    /// Time spent waiting for the permit and the pacer.
    pub waited: Duration,
}

impl Governor {
    /// A governor allowing `concurrency` requests in flight.
    pub fn new(concurrency: usize, cfg: PaceConfig) -> Self {
        Governor {
            sem: Semaphore::new(concurrency.max(1)),
            state: Mutex::new(PaceState::new(cfg, ServerClock::from_system())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaceState> {
        // The state stays consistent even if a holder panicked mid-update (plain counters).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a concurrency permit and a start slot (honouring holds), then returns.
    pub async fn acquire(&self) -> Ticket<'_> {
        let began = Instant::now();
        let permit = match self.sem.acquire().await {
            Ok(p) => p,
            // The semaphore is owned here and never closed.
            Err(_) => unreachable!("governor semaphore closed"),
        };
        loop {
            let (start, seq) = self.lock().reserve(Instant::now());
            tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
            // A 429 or an exhausted budget may have put a hold in place while we slept.
            if self.lock().held_until(Instant::now()).is_none() {
                return Ticket {
                    _permit: permit,
                    seq,
                    waited: began.elapsed(),
                };
            }
        }
    }

    /// See [`PaceState::effective_limit`].
    pub fn effective_limit(&self) -> u32 {
        self.lock().effective_limit()
    }

    /// Feeds back an answer (see [`PaceState::observe`]).
    pub fn observe(
        &self,
        ticket: &Ticket<'_>,
        received: Instant,
        h: &RateHeaders,
        rate_limited: bool,
    ) -> Option<Instant> {
        self.lock().observe(ticket.seq, received, h, rate_limited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    fn state(user_cap: Option<u32>) -> (PaceState, Instant) {
        let t0 = Instant::now();
        let clock = ServerClock::with_anchor(t0, 1_000_000.0);
        (
            PaceState::new(
                PaceConfig {
                    window: W,
                    user_cap,
                    default_limit: 1666,
                },
                clock,
            ),
            t0,
        )
    }

    fn hdr(limit: u32, remaining: i64, reset: u64) -> RateHeaders {
        RateHeaders {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
            date: None,
        }
    }

    #[test]
    fn interval_math() {
        let (mut s, t0) = state(None);
        // Default 1666 per 10 s at 98 %.
        let expected = 10.0 / (1666.0 * UTILISATION);
        assert!((s.interval().as_secs_f64() - expected).abs() < 1e-9);
        // Server states a lower limit: follow it.
        s.observe(
            0,
            t0,
            &RateHeaders {
                limit: Some(500),
                ..Default::default()
            },
            false,
        );
        assert_eq!(s.effective_limit(), 500);
        // User cap is a hard ceiling even when the server allows more.
        let (mut c, t0) = state(Some(100));
        c.observe(
            0,
            t0,
            &RateHeaders {
                limit: Some(5000),
                ..Default::default()
            },
            false,
        );
        assert_eq!(c.effective_limit(), 100);
        assert!((c.interval().as_secs_f64() - 10.0 / 98.0).abs() < 1e-9);
    }

    #[test]
    fn starts_are_evenly_spaced_and_never_exceed_the_window_limit() {
        let (mut s, t0) = state(None);
        let starts: Vec<Instant> = (0..5000).map(|_| s.reserve(t0).0).collect();
        let iv = s.interval();
        for w in starts.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap >= iv - Duration::from_nanos(2) && gap <= iv + Duration::from_nanos(2));
        }
        // Any 10-second window (sliding) holds at most ceil(0.98 * 1666) starts.
        let max_in_window = (1666.0 * UTILISATION).ceil() as usize;
        let mut j = 0;
        for i in 0..starts.len() {
            while starts[i] - starts[j] >= W {
                j += 1;
            }
            assert!(i - j < max_in_window, "{} starts within 10 s", i - j + 1);
        }
        // And the rate is at least 95 % of the limit.
        let span = (starts[starts.len() - 1] - starts[0]).as_secs_f64();
        let rate_per_window = (starts.len() - 1) as f64 / span * 10.0;
        assert!(rate_per_window >= 0.95 * 1666.0, "{rate_per_window}");
    }

    #[test]
    fn no_burst_after_idle() {
        let (mut s, t0) = state(None);
        s.reserve(t0);
        let later = t0 + Duration::from_secs(5);
        let (a, _) = s.reserve(later);
        let (b, _) = s.reserve(later);
        assert_eq!(a, later);
        assert_eq!(
            b - a,
            s.interval(),
            "idle time must not be banked as burst credit"
        );
    }

    #[test]
    fn exhausted_budget_holds_until_reset() {
        let (mut s, t0) = state(None);
        // local unix at t0 = 1_000_000.0; no Date → reset waited until T + 0.25 s + margin.
        let reset = 1_000_003;
        let (_, ticket) = s.reserve(t0);
        s.observe(ticket, t0, &hdr(1666, 3, reset), false);
        let mut last = t0;
        for _ in 0..3 {
            last = s.reserve(t0).0;
        }
        assert!(
            last < t0 + Duration::from_secs(1),
            "budget of 3 must be usable immediately"
        );
        let (held, _) = s.reserve(t0);
        let expected = t0 + Duration::from_secs_f64(3.0 + NO_DATE_MARGIN) + RESET_MARGIN;
        assert!(
            held >= expected - Duration::from_millis(1)
                && held <= expected + Duration::from_millis(1),
            "held until {:?} after t0, expected {:?}",
            held - t0,
            expected - t0
        );
        // After the hold, pacing resumes without a burst.
        let (next, _) = s.reserve(t0);
        assert_eq!(next - held, s.interval());
    }

    #[test]
    fn in_flight_requests_are_charged_against_remaining() {
        let (mut s, t0) = state(None);
        let (_, first) = s.reserve(t0);
        for _ in 0..9 {
            s.reserve(t0); // 9 more requests started after `first`, maybe not yet counted
        }
        // Server says 12 left when it processed `first` → at most 12 - 9 = 3 more.
        s.observe(first, t0, &hdr(1666, 12, 1_000_005), false);
        let before_hold: Vec<Instant> = (0..4).map(|_| s.reserve(t0).0).collect();
        assert!(before_hold[2] < t0 + Duration::from_secs(1));
        assert!(
            before_hold[3] >= t0 + Duration::from_secs(5),
            "4th must wait for the reset"
        );
    }

    #[test]
    fn rate_limited_answer_holds_everyone_until_reset() {
        let (mut s, t0) = state(None);
        let (_, ticket) = s.reserve(t0);
        let reset = 1_000_002;
        let ends = s
            .observe(ticket, t0, &hdr(1666, 0, reset), true)
            .expect("reset known");
        assert!(ends >= t0 + Duration::from_secs(2));
        assert_eq!(s.held_until(t0), Some(ends));
        let (start, _) = s.reserve(t0 + Duration::from_millis(10));
        assert!(start >= ends);
        assert_eq!(s.held_until(ends + Duration::from_millis(1)), None);
    }

    #[test]
    fn rate_limited_answer_without_remaining_holds_too() {
        let (mut s, t0) = state(None);
        let (_, ticket) = s.reserve(t0);
        let h = RateHeaders {
            reset: Some(1_000_002),
            ..Default::default()
        };
        let ends = s.observe(ticket, t0, &h, true).expect("reset known");
        assert_eq!(s.held_until(t0), Some(ends));
    }

    #[test]
    fn rate_limited_answer_with_quota_left_does_not_stop_everyone() {
        let (mut s, t0) = state(None);
        let (_, ticket) = s.reserve(t0);
        let ends = s
            .observe(ticket, t0, &hdr(1666, 900, 1_000_002), true)
            .expect("the refused request still learns when the window resets");
        assert!(ends >= t0 + Duration::from_secs(2));
        assert_eq!(s.held_until(t0), None);
        let (start, _) = s.reserve(t0);
        assert!(start < t0 + Duration::from_millis(100));
    }

    #[test]
    fn stale_window_answers_are_ignored() {
        let (mut s, t0) = state(None);
        let (_, a) = s.reserve(t0);
        s.observe(a, t0, &hdr(1666, 1000, 1_000_010), false);
        // A late answer from the previous window with remaining 0 must not hold anything.
        s.observe(a, t0, &hdr(1666, 0, 1_000_000), false);
        let starts: Vec<Instant> = (0..10).map(|_| s.reserve(t0).0).collect();
        assert!(starts[9] < t0 + Duration::from_secs(1));
    }

    #[test]
    fn new_window_replaces_budget() {
        let (mut s, t0) = state(None);
        let (_, a) = s.reserve(t0);
        s.observe(a, t0, &hdr(1666, 1, 1_000_010), false);
        s.reserve(t0); // uses the last one
        let (_, b) = s.reserve(t0 + Duration::from_secs(11)); // after the window
        s.observe(
            b,
            t0 + Duration::from_secs(11),
            &hdr(1666, 1600, 1_000_020),
            false,
        );
        let (c, _) = s.reserve(t0 + Duration::from_secs(11));
        assert!(c < t0 + Duration::from_secs(12));
    }

    /// Simulates a server whose clock is `offset` s ahead and whose `Date` header is rendered by
    /// a once-per-second cache (as hyper does): up to 1 s stale.
    fn sample_clock(offset: f64, n: u64) -> (ServerClock, Instant) {
        let t0 = Instant::now();
        let mut c = ServerClock::with_anchor(t0, 1_000_000.0);
        let mut cache: Option<(f64, u64)> = None; // (next update, rendered second)
        for i in 0..n {
            let sent = t0 + Duration::from_millis(137 * i);
            let server_now = c.local_unix(sent) + 0.010 + offset;
            let date = match cache {
                Some((next, d)) if server_now <= next => d,
                _ => {
                    cache = Some((server_now + 1.0, server_now.floor() as u64));
                    server_now.floor() as u64
                }
            };
            let received = sent + Duration::from_millis(20);
            c.observe_date(date, received);
            assert!(
                c.offset_lower_bound() <= offset + 1e-9,
                "bound above the true offset"
            );
        }
        (c, t0)
    }

    #[test]
    fn clock_bound_is_safe_with_stale_dates_and_converges() {
        let true_offset = 2.3;
        let (c, _) = sample_clock(true_offset, 400);
        let lo = c.offset_lower_bound();
        assert!(
            true_offset - lo < 0.06,
            "bound should converge to ~latency: {lo}"
        );
        // A reset at server time 1_000_010 is waited for until local ≈ 1_000_007.7.
        let local = c.local_unix(c.local_instant_for(1_000_010));
        assert!(
            local >= 1_000_010.0 - true_offset - 1e-6,
            "must not be early: {local}"
        );
        assert!(
            local <= 1_000_010.0 - true_offset + 0.06,
            "must not be much later: {local}"
        );
    }

    #[test]
    fn clock_without_date_assumes_small_lag_and_follows_a_server_stepping_back() {
        let t0 = Instant::now();
        let mut c = ServerClock::with_anchor(t0, 1_000_000.0);
        // No Date: assume the server may be up to 250 ms behind.
        let at = c.local_instant_for(1_000_001);
        assert!((c.local_unix(at) - 1_000_001.25).abs() < 1e-6);
        // Server 5 s behind us: wait until local T + 5 s.
        c.observe_date(999_995, t0 + Duration::from_millis(10));
        assert!(c.local_unix(c.local_instant_for(1_000_001)) >= 1_000_006.0);
        // The server clock steps back by another 10 s: followed once old samples age out.
        let later = t0 + Duration::from_secs(61);
        for k in 0..3 {
            let r = later + Duration::from_secs(31 * k);
            let date = (c.local_unix(r) - 15.0).floor() as u64;
            c.observe_date(date, r);
        }
        assert!(c.offset_lower_bound() < -14.0, "{}", c.offset_lower_bound());
    }

    #[test]
    fn http_date_parsing() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Wed, 25 Nov 2026 19:59:44 GMT"),
            Some(1_795_636_784)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn rate_headers_are_read_and_garbage_ignored() {
        let mut h = HeaderMap::new();
        h.insert("X-RateLimit-Limit", "1667".parse().unwrap());
        h.insert("X-RateLimit-Remaining", "12".parse().unwrap());
        h.insert("X-RateLimit-Reset", "nonsense".parse().unwrap());
        h.insert("date", "Thu, 01 Jan 1970 00:00:10 GMT".parse().unwrap());
        let r = RateHeaders::from_headers(&h);
        assert_eq!(
            r,
            RateHeaders {
                limit: Some(1667),
                remaining: Some(12),
                reset: None,
                date: Some(10)
            }
        );
    }
}
