//! `network.budget`, counted for the whole proxy (so for the whole
//! sandbox): connections in all, connections in any 60 s, bytes out
//! (agent to upstream) and bytes in, at the TCP level, so TLS tunnels count
//! like everything else (DESIGN.md §9); a secret route's requests and
//! responses count at the HTTP level on the agent's side ([`super::route`]).
//!
//! Pure bookkeeping over an `Instant` the caller passes: the proxy asks
//! [`Budgets::admit`] before dialling and [`Budgets::allowance`] before
//! each read of a relay, and adds what it read with [`Budgets::add`], with
//! no await in between, so concurrent relays never overshoot a byte budget.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::events::Which;
use crate::plan::egress::{Budget, OnExhausted};

const MINUTE: Duration = Duration::from_secs(60);

/// A direction of a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Agent to upstream.
    Out,
    /// Upstream to agent.
    In,
}

/// A budget that is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhausted {
    pub which: Which,
    pub limit: u64,
    pub used: u64,
}

impl Exhausted {
    /// In words, for refusals and records.
    pub fn describe(&self) -> String {
        format!("budget {} ({}) used up", self.which.name(), self.limit)
    }
}

#[derive(Debug)]
pub struct Budgets {
    limits: Budget,
    connections: u64,
    /// Admissions of the last 60 s, oldest first (only when `per_minute`
    /// is set).
    window: VecDeque<Instant>,
    bytes_out: u64,
    bytes_in: u64,
    /// Which budgets have been reported used up (a `budget` event each).
    reported: [bool; 4],
    /// With `on_exhausted: stop`, the budget that stopped the sandbox:
    /// everything is refused from then on.
    stopped: Option<Exhausted>,
}

fn index(which: Which) -> usize {
    match which {
        Which::Connections => 0,
        Which::PerMinute => 1,
        Which::BytesOut => 2,
        Which::BytesIn => 3,
    }
}

impl Budgets {
    pub fn new(limits: Budget) -> Budgets {
        Budgets {
            limits,
            connections: 0,
            window: VecDeque::new(),
            bytes_out: 0,
            bytes_in: 0,
            reported: [false; 4],
            stopped: None,
        }
    }

    pub fn on_exhausted(&self) -> OnExhausted {
        self.limits.on_exhausted
    }

    /// Counts a new connection, or says which budget refuses it. Byte
    /// budgets that are used up refuse new connections too.
    pub fn admit(&mut self, now: Instant) -> Result<(), Exhausted> {
        if let Some(stop) = self.stopped {
            return Err(stop);
        }
        for dir in [Dir::Out, Dir::In] {
            if self.allowance(dir) == 0 {
                return Err(self.bytes_exhausted(dir));
            }
        }
        if let Some(limit) = self.limits.connections {
            if self.connections >= limit {
                return Err(Exhausted {
                    which: Which::Connections,
                    limit,
                    used: self.connections,
                });
            }
        }
        if let Some(limit) = self.limits.per_minute {
            while self
                .window
                .front()
                .is_some_and(|&t| now.saturating_duration_since(t) >= MINUTE)
            {
                self.window.pop_front();
            }
            let used = self.window.len() as u64;
            if used >= limit {
                return Err(Exhausted {
                    which: Which::PerMinute,
                    limit,
                    used,
                });
            }
            // The rate recovers: the next time it runs out is reported again.
            self.reported[index(Which::PerMinute)] = false;
            self.window.push_back(now);
        }
        self.connections += 1;
        Ok(())
    }

    /// Bytes `dir` may still move (`u64::MAX` without a budget).
    pub fn allowance(&self, dir: Dir) -> u64 {
        if self.stopped.is_some() {
            return 0;
        }
        let (limit, used) = match dir {
            Dir::Out => (self.limits.bytes_out, self.bytes_out),
            Dir::In => (self.limits.bytes_in, self.bytes_in),
        };
        limit.map_or(u64::MAX, |l| l.saturating_sub(used))
    }

    /// What a relay reports when [`Budgets::allowance`] is 0.
    pub fn bytes_exhausted(&self, dir: Dir) -> Exhausted {
        if let Some(stop) = self.stopped {
            return stop;
        }
        let (which, limit, used) = match dir {
            Dir::Out => (Which::BytesOut, self.limits.bytes_out, self.bytes_out),
            Dir::In => (Which::BytesIn, self.limits.bytes_in, self.bytes_in),
        };
        Exhausted {
            which,
            limit: limit.unwrap_or(u64::MAX),
            used,
        }
    }

    pub fn add(&mut self, dir: Dir, n: u64) {
        match dir {
            Dir::Out => self.bytes_out = self.bytes_out.saturating_add(n),
            Dir::In => self.bytes_in = self.bytes_in.saturating_add(n),
        }
    }

    /// Notes that `e` refused something. True the first time for that
    /// budget (the caller writes a `budget` event); with `on_exhausted:
    /// stop`, everything is refused from then on.
    pub fn note(&mut self, e: Exhausted) -> bool {
        if self.stopped.is_some() && self.reported.iter().any(|&r| r) {
            return false;
        }
        let first = !self.reported[index(e.which)];
        self.reported[index(e.which)] = true;
        if self.limits.on_exhausted == OnExhausted::Stop {
            self.stopped.get_or_insert(e);
        }
        first
    }

    #[cfg(test)]
    pub fn used(&self) -> (u64, u64, u64) {
        (self.connections, self.bytes_out, self.bytes_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(f: impl FnOnce(&mut Budget)) -> Budgets {
        let mut b = Budget::default();
        f(&mut b);
        Budgets::new(b)
    }

    #[test]
    fn unlimited() {
        let mut b = budget(|_| {});
        let now = Instant::now();
        for _ in 0..1000 {
            b.admit(now).unwrap();
        }
        assert_eq!(b.allowance(Dir::Out), u64::MAX);
        b.add(Dir::Out, u64::MAX);
        b.add(Dir::Out, 5);
        assert_eq!(b.allowance(Dir::Out), u64::MAX);
    }

    #[test]
    fn connections_total() {
        let mut b = budget(|b| b.connections = Some(3));
        let now = Instant::now();
        for _ in 0..3 {
            b.admit(now).unwrap();
        }
        let e = b.admit(now).unwrap_err();
        assert_eq!(
            e,
            Exhausted {
                which: Which::Connections,
                limit: 3,
                used: 3
            }
        );
        assert_eq!(e.describe(), "budget connections (3) used up");
        assert!(b.note(e));
        assert!(!b.note(e));
        assert!(b.admit(now + Duration::from_secs(3600)).is_err());
    }

    #[test]
    fn per_minute_slides() {
        let mut b = budget(|b| b.per_minute = Some(2));
        let t0 = Instant::now();
        b.admit(t0).unwrap();
        b.admit(t0 + Duration::from_secs(30)).unwrap();
        let e = b.admit(t0 + Duration::from_secs(59)).unwrap_err();
        assert_eq!(e.which, Which::PerMinute);
        assert!(b.note(e));
        assert!(!b.note(e));
        // The first admission leaves the window at 60 s.
        b.admit(t0 + Duration::from_secs(60)).unwrap();
        assert!(b.admit(t0 + Duration::from_secs(61)).is_err());
        // Reported again after it recovered.
        assert!(b.note(e));
        b.admit(t0 + Duration::from_secs(91)).unwrap();
        assert_eq!(b.used().0, 4);
    }

    #[test]
    fn bytes() {
        let mut b = budget(|b| {
            b.bytes_out = Some(100);
            b.bytes_in = Some(1000);
        });
        let now = Instant::now();
        assert_eq!(b.allowance(Dir::Out), 100);
        b.add(Dir::Out, 60);
        assert_eq!(b.allowance(Dir::Out), 40);
        b.admit(now).unwrap();
        b.add(Dir::Out, 40);
        assert_eq!(b.allowance(Dir::Out), 0);
        assert_eq!(b.allowance(Dir::In), 1000);
        // New connections are refused once a byte budget is used up.
        let e = b.admit(now).unwrap_err();
        assert_eq!(e.which, Which::BytesOut);
        assert_eq!(e, b.bytes_exhausted(Dir::Out));
        assert_eq!((e.limit, e.used), (100, 100));
    }

    #[test]
    fn stop_refuses_everything_after() {
        let mut b = budget(|b| {
            b.connections = Some(1);
            b.on_exhausted = OnExhausted::Stop;
        });
        let now = Instant::now();
        b.admit(now).unwrap();
        assert_eq!(b.allowance(Dir::In), u64::MAX);
        let e = b.admit(now).unwrap_err();
        assert!(b.note(e));
        assert_eq!(b.allowance(Dir::In), 0);
        assert_eq!(b.allowance(Dir::Out), 0);
        assert_eq!(b.admit(now).unwrap_err(), e);
        assert_eq!(b.bytes_exhausted(Dir::In), e);
        // One stop event only, whatever refuses next.
        assert!(!b.note(b.bytes_exhausted(Dir::Out)));
    }
}
