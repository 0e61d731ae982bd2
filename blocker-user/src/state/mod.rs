//! What blocker remembers and enforces: the enforcer (the only writer of
//! the maps), the SQLite journal, and rule files.

pub mod enforcer;
pub mod journal;
pub mod retention;
pub mod rulefile;
