//! The LLM budget (`[council.llm.budget]`): calls and tokens per minute and
//! per day, shared by every LLM agent and the judge of a council. An
//! attacker who can make incidents can make us pay for debates; past the
//! budget no call is made, incidents are decided by the offline council
//! (`[council] fallback`), the transcript says why, and `blocker status`
//! shows the budget exhausted.
//!
//! Windows are fixed (a minute, a day) from the first call in them. Tokens
//! are known only from a reply, so the last call of a window may take its
//! token count past the limit; no call starts after that.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// `[council.llm.budget]`; 0: no limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    pub calls_per_minute: u64,
    pub calls_per_day: u64,
    pub tokens_per_minute: u64,
    pub tokens_per_day: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            calls_per_minute: 120,
            calls_per_day: 10_000,
            tokens_per_minute: 200_000,
            tokens_per_day: 5_000_000,
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

#[derive(Clone, Copy, Debug)]
struct Window {
    len: Duration,
    start: Option<Instant>,
    calls: u64,
    tokens: u64,
}

impl Window {
    const fn new(len: Duration) -> Self {
        Self {
            len,
            start: None,
            calls: 0,
            tokens: 0,
        }
    }

    /// Starts a new window if this one is over.
    fn roll(&mut self, now: Instant) {
        if self.start.is_none_or(|s| now.duration_since(s) >= self.len) {
            *self = Self {
                start: Some(now),
                ..Self::new(self.len)
            };
        }
    }

    fn resets_in(&self, now: Instant) -> Duration {
        self.start.map_or(Duration::ZERO, |s| {
            (s + self.len).saturating_duration_since(now)
        })
    }
}

/// What ran out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "LLM budget exhausted: {used} of {limit} {what} used (resets in {}); raise [council.llm.budget] {key} to allow more",
    crate::ttl::format_remaining(*resets_in)
)]
pub struct Exhausted {
    /// e.g. "calls per day".
    pub what: &'static str,
    /// The config key.
    pub key: &'static str,
    pub used: u64,
    pub limit: u64,
    pub resets_in: Duration,
}

/// Use and limit of one window, for `blocker status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStatus {
    pub calls: u64,
    /// 0: no limit.
    pub calls_limit: u64,
    pub tokens: u64,
    /// 0: no limit.
    pub tokens_limit: u64,
}

/// The budget as `blocker status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub minute: WindowStatus,
    pub day: WindowStatus,
    /// Why no call may start now, if none may.
    pub exhausted: Option<String>,
    /// Debates not held (or cut short) because the budget ran out.
    pub refused_debates: u64,
}

/// The budget of one council (one daemon, or one `blocker debate`).
#[derive(Debug)]
pub struct Budget {
    cfg: BudgetConfig,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    minute: Window,
    day: Window,
    refused_debates: u64,
}

impl Budget {
    pub fn new(cfg: BudgetConfig) -> Self {
        Self {
            cfg,
            state: Mutex::new(State {
                minute: Window::new(MINUTE),
                day: Window::new(DAY),
                refused_debates: 0,
            }),
        }
    }

    /// A budget of `cfg` that has already used what `old` used (a council
    /// rebuilt on SIGHUP must not start the day over).
    pub fn continuing(cfg: BudgetConfig, old: &Budget) -> Self {
        let o = old.state.lock().unwrap_or_else(|p| p.into_inner());
        Self {
            cfg,
            state: Mutex::new(State {
                minute: o.minute,
                day: o.day,
                refused_debates: o.refused_debates,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.minute.roll(now);
        s.day.roll(now);
        f(&mut s, now)
    }

    fn check(&self, s: &State, now: Instant) -> Option<Exhausted> {
        let c = &self.cfg;
        [
            (
                &s.day,
                s.day.calls,
                c.calls_per_day,
                "calls per day",
                "calls_per_day",
            ),
            (
                &s.day,
                s.day.tokens,
                c.tokens_per_day,
                "tokens per day",
                "tokens_per_day",
            ),
            (
                &s.minute,
                s.minute.calls,
                c.calls_per_minute,
                "calls per minute",
                "calls_per_minute",
            ),
            (
                &s.minute,
                s.minute.tokens,
                c.tokens_per_minute,
                "tokens per minute",
                "tokens_per_minute",
            ),
        ]
        .into_iter()
        .find(|(_, used, limit, _, _)| *limit != 0 && used >= limit)
        .map(|(w, used, limit, what, key)| Exhausted {
            what,
            key,
            used,
            limit,
            resets_in: w.resets_in(now),
        })
    }

    /// Why no call may start now, if none may.
    pub fn exhausted(&self) -> Option<Exhausted> {
        self.with(|s, now| self.check(s, now))
    }

    /// Takes one call from the budget, or says why not.
    pub fn take_call(&self) -> Result<(), Exhausted> {
        self.with(|s, now| {
            if let Some(e) = self.check(s, now) {
                return Err(e);
            }
            s.minute.calls += 1;
            s.day.calls += 1;
            Ok(())
        })
    }

    /// Counts the tokens a reply reported.
    pub fn add_tokens(&self, n: u64) {
        self.with(|s, _| {
            s.minute.tokens += n;
            s.day.tokens += n;
        });
    }

    /// Counts a debate the budget stopped.
    pub fn refused_debate(&self) {
        self.with(|s, _| s.refused_debates += 1);
    }

    pub fn status(&self) -> BudgetStatus {
        self.with(|s, now| {
            let window = |w: &Window, calls_limit, tokens_limit| WindowStatus {
                calls: w.calls,
                calls_limit,
                tokens: w.tokens,
                tokens_limit,
            };
            BudgetStatus {
                minute: window(
                    &s.minute,
                    self.cfg.calls_per_minute,
                    self.cfg.tokens_per_minute,
                ),
                day: window(&s.day, self.cfg.calls_per_day, self.cfg.tokens_per_day),
                exhausted: self.check(s, now).map(|e| e.to_string()),
                refused_debates: s.refused_debates,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_tokens_run_out_and_say_which() {
        let b = Budget::new(BudgetConfig {
            calls_per_minute: 3,
            calls_per_day: 0,
            tokens_per_minute: 0,
            tokens_per_day: 100,
        });
        for _ in 0..3 {
            b.take_call().unwrap();
        }
        let e = b.take_call().unwrap_err();
        assert_eq!((e.what, e.used, e.limit), ("calls per minute", 3, 3));
        assert!(e.resets_in <= MINUTE && e.resets_in > Duration::ZERO);
        assert!(e.to_string().contains("calls_per_minute"), "{e}");
        let s = b.status();
        assert_eq!(s.minute.calls, 3);
        assert!(s.exhausted.unwrap().contains("3 of 3 calls per minute"));

        let b = Budget::new(BudgetConfig {
            tokens_per_day: 100,
            ..BudgetConfig::default()
        });
        b.take_call().unwrap();
        b.add_tokens(150);
        assert_eq!(b.take_call().unwrap_err().what, "tokens per day");
        assert!(b.exhausted().is_some());
    }

    #[test]
    fn a_window_resets_after_its_length() {
        let mut w = Window::new(MINUTE);
        let t0 = Instant::now();
        w.roll(t0);
        w.calls = 5;
        w.roll(t0 + Duration::from_secs(59));
        assert_eq!(w.calls, 5);
        w.roll(t0 + MINUTE);
        assert_eq!(w.calls, 0);
    }

    #[test]
    fn a_rebuilt_budget_keeps_what_was_used() {
        let cfg = BudgetConfig {
            calls_per_day: 2,
            ..BudgetConfig::default()
        };
        let old = Budget::new(cfg.clone());
        old.take_call().unwrap();
        old.take_call().unwrap();
        let new = Budget::continuing(cfg, &old);
        assert_eq!(new.take_call().unwrap_err().what, "calls per day");
    }

    #[test]
    fn zero_means_no_limit() {
        let b = Budget::new(BudgetConfig {
            calls_per_minute: 0,
            calls_per_day: 0,
            tokens_per_minute: 0,
            tokens_per_day: 0,
        });
        for _ in 0..1000 {
            b.take_call().unwrap();
        }
        assert!(b.status().exhausted.is_none());
    }
}
