//! When to reload after change events: once `quiet` has passed without a change (a burst of
//! editor saves or kubelet's volume swap is one reload), but never later than `max_delay` after
//! the first change still waiting (steady churn from Kubernetes watchers cannot postpone
//! reloads forever).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    /// First and last change since the last reload started.
    pending: Option<(Instant, Instant)>,
}

impl Debounce {
    /// `max_delay` below `quiet` is raised to it (the quiet time is a minimum).
    pub fn new(quiet: Duration, max_delay: Duration) -> Debounce {
        Debounce { quiet, max_delay: max_delay.max(quiet), pending: None }
    }

    /// A change was seen at `now`.
    pub fn change(&mut self, now: Instant) {
        let first = self.pending.map_or(now, |(first, _)| first);
        self.pending = Some((first, now));
    }

    /// When the pending changes are due for a reload; `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|(first, last)| (last + self.quiet).min(first + self.max_delay))
    }

    /// A reload starts: what it reads covers every change seen so far.
    pub fn start_reload(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(1000);

    #[test]
    fn a_burst_is_one_reload_after_the_quiet_time() {
        let t0 = Instant::now();
        let mut debounce = Debounce::new(QUIET, MAX);
        assert_eq!(debounce.deadline(), None);
        debounce.change(t0);
        debounce.change(t0 + Duration::from_millis(30));
        assert_eq!(debounce.deadline(), Some(t0 + Duration::from_millis(130)));
        debounce.start_reload();
        assert_eq!(debounce.deadline(), None);
    }

    #[test]
    fn steady_churn_reloads_at_the_maximum_delay() {
        let t0 = Instant::now();
        let mut debounce = Debounce::new(QUIET, MAX);
        for i in 0..100 {
            debounce.change(t0 + Duration::from_millis(50 * i));
        }
        assert_eq!(debounce.deadline(), Some(t0 + MAX));
    }

    /// SplitMix64: a small, seeded generator so every run explores the same schedules.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The controller's loop on a virtual clock: changes arrive at `changes` (sorted); a reload
    /// that starts at `t` runs for `reload_ms(t)`, and changes that arrive meanwhile are seen when
    /// it ends. Returns each reload's (start, end).
    fn simulate(changes: &[Instant], reload: &mut impl FnMut() -> Duration) -> Vec<(Instant, Instant)> {
        let mut debounce = Debounce::new(QUIET, MAX);
        let mut reloads = Vec::new();
        let mut next = 0;
        let mut now = *changes.first().unwrap();
        loop {
            let arrival = changes.get(next).copied();
            let deadline = debounce.deadline();
            let change_first = match (arrival, deadline) {
                (None, None) => return reloads,
                // A change at the very moment the reload is due is seen first.
                (Some(at), Some(deadline)) => at <= deadline,
                (arrival, _) => arrival.is_some(),
            };
            if change_first {
                now = now.max(changes[next]);
                debounce.change(now);
                next += 1;
            } else {
                now = now.max(deadline.expect("a reload is due"));
                debounce.start_reload();
                let end = now + reload();
                reloads.push((now, end));
                now = end;
            }
        }
    }

    /// Over many seeded schedules (bursts, steady churn, pauses; quick and slow reloads):
    /// every change is covered by a reload that starts after it; no change waits longer than the
    /// maximum delay past the moment the controller saw it (plus the reload in progress); no
    /// reload starts with nothing pending; and a burst shorter than the maximum delay, followed
    /// by quiet, costs one reload.
    #[test]
    fn explored_schedules_never_starve_or_lose_a_change() {
        for seed in 0..500u64 {
            let mut rng = Rng(seed);
            let t0 = Instant::now();
            let mut changes = Vec::new();
            let mut at = t0;
            for _ in 0..(1 + rng.below(200)) {
                let gap = match rng.below(4) {
                    0 => rng.below(20), // a burst
                    1 => rng.below(QUIET.as_millis() as u64 * 2),
                    2 => 50 + rng.below(50), // steady churn just under the quiet time
                    _ => rng.below(3000),    // a pause
                };
                at += Duration::from_millis(gap);
                changes.push(at);
            }
            let slow = rng.below(2) == 0;
            let mut reload_rng = Rng(seed ^ 0xABCD);
            let mut reload = || Duration::from_millis(if slow { reload_rng.below(800) } else { reload_rng.below(5) });
            let reloads = simulate(&changes, &mut reload);

            for &change in &changes {
                assert!(
                    reloads.iter().any(|&(start, _)| start >= change),
                    "seed {seed}: the change at {:?} was never reloaded",
                    change - t0
                );
            }
            for &(start, _) in &reloads {
                // The earliest change this reload covers that no earlier reload did.
                let previous_start = reloads.iter().map(|r| r.0).filter(|s| *s < start).max();
                let previous_end = reloads.iter().map(|r| r.1).filter(|e| *e <= start).max();
                let covered: Vec<Instant> =
                    changes.iter().copied().filter(|c| *c <= start && previous_start.is_none_or(|p| *c > p)).collect();
                assert!(!covered.is_empty(), "seed {seed}: a reload at {:?} with nothing pending", start - t0);
                let seen = covered[0].max(previous_end.unwrap_or(t0));
                assert!(start - seen <= MAX, "seed {seed}: a change waited {:?}", start - seen);
            }
        }
    }

    #[test]
    fn separate_bursts_are_one_reload_each() {
        for seed in 0..200u64 {
            let mut rng = Rng(seed);
            let t0 = Instant::now();
            let mut changes = Vec::new();
            let bursts = 1 + rng.below(10);
            for burst in 0..bursts {
                let start = t0 + Duration::from_secs(5 * burst);
                let mut at = start;
                for _ in 0..(1 + rng.below(30)) {
                    at += Duration::from_millis(rng.below(QUIET.as_millis() as u64 - 1));
                    if at - start >= MAX - QUIET {
                        break;
                    }
                    changes.push(at);
                }
            }
            let reloads = simulate(&changes, &mut || Duration::from_millis(10));
            assert_eq!(reloads.len() as u64, bursts, "seed {seed}: {reloads:?}");
        }
    }
}
