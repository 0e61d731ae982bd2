//! `blocker run`: the long-running daemon.

mod run;

pub use run::*;
