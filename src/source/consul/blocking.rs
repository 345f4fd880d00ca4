//! Consul blocking queries, as the API documents them: each request carries the `index` of the
//! previous answer's `X-Consul-Index` and a `wait`, and the agent holds it until something
//! changes or the wait passes. An index that goes backwards (a restored snapshot, a new
//! cluster) resets to 0, which makes the next request answer at once; an index of 0 in an
//! answer is treated as 1, so the next request blocks. Errors back off exponentially with jitter.

use super::client::{ConsulClient, ConsulError};
use bytes::Bytes;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long the agent may hold a request (Consul caps it at 10 minutes; it adds up to 1/16
/// of jitter).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The state of one blocking query between requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingQuery {
    index: u64,
    failures: u32,
    wait: Duration,
}

impl BlockingQuery {
    pub fn new(wait: Duration) -> BlockingQuery {
        BlockingQuery { index: 0, failures: 0, wait }
    }

    /// The query parameters of the next request (`index` only once there is one).
    pub fn params(&self) -> String {
        let wait = format!("wait={}ms", self.wait.as_millis().max(1));
        match self.index {
            0 => wait,
            index => format!("index={index}&{wait}"),
        }
    }

    /// How long the next request may take before it is given up (the agent may add 1/16).
    pub fn timeout(&self) -> Duration {
        self.wait + self.wait / 16 + Duration::from_secs(10)
    }

    /// An answer came with `index`; returns whether it is news: the index changed, or it is the
    /// first answer, or the first after failures (whoever follows the answers must learn that
    /// the query works again, even when nothing changed meanwhile).
    pub fn answered(&mut self, index: Option<u64>) -> bool {
        let recovered = std::mem::take(&mut self.failures) > 0;
        let next = match index {
            None => return true, // not a blocking endpoint, or a proxy dropped the header
            Some(next) if next < self.index => 0,
            Some(0) => 1,
            Some(next) => next,
        };
        let changed = next != self.index || self.index == 0 || recovered;
        self.index = next;
        changed
    }

    /// A request failed; returns how long to wait before the next one.
    pub fn failed(&mut self, jitter: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.saturating_sub(1).min(16);
        let backoff = FIRST_BACKOFF.saturating_mul(1u32 << exponent).min(MAX_BACKOFF);
        // Between half and all of it, so clients that failed together do not retry together.
        backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    pub fn index(&self) -> u64 {
        self.index
    }
}

/// A number in [0, 1) that differs between calls and processes (no random crate needed).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs the blocking query `path` (with `?` or `&` already ending it) against `client` until
/// `stop` turns true, calling `on_answer` with each answer whose index changed, and
/// `on_error` with each failure (then backing off).
pub async fn run(
    client: &ConsulClient,
    path: &str,
    wait: Duration,
    mut stop: watch::Receiver<bool>,
    mut on_answer: impl FnMut(Bytes),
    mut on_error: impl FnMut(ConsulError),
) {
    let mut query = BlockingQuery::new(wait);
    loop {
        if *stop.borrow() {
            return;
        }
        let url = format!("{path}{}", query.params());
        let result = tokio::select! {
            result = client.get(&url, query.timeout()) => result,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match result {
            Ok(reply) => {
                if query.answered(reply.index) {
                    on_answer(reply.body);
                }
            }
            Err(err) => {
                on_error(err);
                let delay = query.failed(jitter());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_answers_and_resets_when_it_goes_backwards() {
        let mut query = BlockingQuery::new(Duration::from_secs(60));
        assert_eq!(query.params(), "wait=60000ms");
        assert!(query.answered(Some(42)));
        assert_eq!(query.params(), "index=42&wait=60000ms");
        assert!(!query.answered(Some(42)), "the wait ran out: nothing changed");
        assert!(query.answered(Some(50)));
        assert!(query.answered(Some(7)), "backwards: reset, and what came is new");
        assert_eq!(query.index(), 0);
        assert_eq!(query.params(), "wait=60000ms", "the next request answers at once");
        assert!(query.answered(Some(7)));
        assert!(query.answered(Some(0)), "backwards again");
        assert_eq!(query.index(), 0);
        query.answered(Some(0));
        assert_eq!(query.index(), 1, "an index of 0 blocks on 1");
    }

    #[test]
    fn failures_back_off_with_jitter_up_to_a_ceiling() {
        let mut query = BlockingQuery::new(DEFAULT_WAIT);
        assert_eq!(query.failed(1.0), Duration::from_millis(250));
        assert_eq!(query.failed(1.0), Duration::from_millis(500));
        assert_eq!(query.failed(0.0), Duration::from_millis(500));
        for _ in 0..20 {
            assert!(query.failed(1.0) <= MAX_BACKOFF);
        }
        assert!(query.answered(Some(3)));
        assert!(!query.answered(Some(3)));
        query.failed(1.0);
        assert!(query.answered(Some(3)), "the first answer after a failure is news");
        assert_eq!(query.failed(1.0), Duration::from_millis(250), "an answer resets the backoff");
        let spread: Vec<f64> = (0..20).map(|_| jitter()).collect();
        assert!(spread.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(spread.windows(2).any(|w| w[0] != w[1]));
    }
}
