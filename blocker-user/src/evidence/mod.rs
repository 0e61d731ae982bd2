//! Alert sources: each turns one kind of input into [`Alert`](crate::evidence::alert::Alert)s
//! on a bounded channel (see [`crate::evidence::alert::deliver`]).
//!
//! - [`probe`]: the kernel probes' and XDP's ring-buffer events;
//! - [`eve`]: Suricata `eve.json`, followed across rotation and truncation;
//! - [`kmsg`]: `/dev/kmsg` lines in every spelling of the treason message.
//!
//! Text sources share a bounded line splitter and a log throttle (`follow`), so
//! no input can grow memory or flood the log.

pub mod alert;
pub mod crowdsec;
pub mod eve;
mod follow;
pub mod kmsg;
pub mod probe;
