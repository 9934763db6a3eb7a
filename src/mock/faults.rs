//! Fault injection: per-request random faults drawn from a seeded RNG, and a response body that
//! makes hyper abort the connection.

use axum::body::Bytes;
use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Fault settings; replaceable at runtime ([`super::MockServer::set_faults`], `POST /_mock/faults`).
/// Probabilities are per API request (control endpoints are never faulted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Fixed delay added to every answer, in milliseconds.
    pub latency_ms: u64,
    /// Probability of a 500/502/503 answer; nothing is applied.
    pub p_5xx: f64,
    /// Probability of an injected 429 `rate_limit_exceeded`, even under the limit.
    pub p_429: f64,
    /// Probability of dropping the connection before applying the request.
    pub p_drop_before: f64,
    /// Probability of applying the request, then dropping the connection without an answer.
    pub p_drop_after: f64,
    /// Probability of applying the request, then delaying the answer by `slow_ms`.
    pub p_slow: f64,
    /// Extra delay of a slow answer, in milliseconds.
    pub slow_ms: u64,
    /// `company_id`s whose `PUT /companies/{id}` always answers 500 (a permanent fault); a bulk
    /// item naming such a company fails.
    pub fail_company_ids: Vec<String>,
    /// While set, no bulk task finishes: tasks turn `running` and stay so, nothing is applied.
    /// Once cleared, the tasks held past their finish time finish at that moment.
    pub bulk_stuck: bool,
}

/// A fault taking the place of the request's normal handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreFault {
    /// Answer 429 `rate_limit_exceeded`.
    Inject429,
    /// Answer with this 5xx status.
    Inject5xx(StatusCode),
    /// Drop the connection without applying anything.
    DropBefore,
}

/// The faults drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roll {
    /// Replaces the normal handling when set.
    pub pre: Option<PreFault>,
    /// After applying, drop the connection instead of answering.
    pub drop_after: bool,
    /// After applying, delay the answer by `slow_ms`.
    pub slow: bool,
}

impl FaultConfig {
    /// Draws this request's faults. Always consumes the same number of random numbers, so the
    /// sequence of faults depends only on the seed and the order of requests.
    pub fn roll(&self, rng: &mut StdRng) -> Roll {
        let [r429, r5xx, rdb, rda, rslow]: [f64; 5] = std::array::from_fn(|_| rng.random());
        let status = match rng.random_range(0..3) {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            1 => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let pre = if r429 < self.p_429 {
            Some(PreFault::Inject429)
        } else if r5xx < self.p_5xx {
            Some(PreFault::Inject5xx(status))
        } else if rdb < self.p_drop_before {
            Some(PreFault::DropBefore)
        } else {
            None
        };
        Roll {
            pre,
            drop_after: pre.is_none() && rda < self.p_drop_after,
            slow: pre.is_none() && rslow < self.p_slow,
        }
    }
}

/// A response body whose first frame is an error: hyper then closes the connection without
/// flushing the response head, so the client sees the connection closed with no answer.
pub struct AbortBody;

impl http_body::Body for AbortBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "mock: injected connection drop",
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn roll_is_deterministic_and_respects_probabilities() {
        let faults = FaultConfig {
            p_drop_after: 0.5,
            ..FaultConfig::default()
        };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..200).map(|_| faults.roll(&mut rng)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        let drops = a.iter().filter(|r| r.drop_after).count();
        assert!((60..140).contains(&drops), "{drops}");
        assert!(a.iter().all(|r| r.pre.is_none() && !r.slow));
    }
}
