//! A closed set of values an operator names on the command line or in the
//! configuration (`--list block`, `--xdp-mode skb`, `agents = "llm"`). The
//! names and their help live with the type, in the room that owns it; the
//! CLI builds its parsers from them, so no room below the CLI needs clap.

/// A type whose values are a fixed list of names.
pub trait Choice: Copy + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];

    /// The name an operator types (the same as its serde name).
    fn name(self) -> &'static str;

    /// One line on what the value does, for help texts.
    fn help(self) -> &'static str;

    /// The value named `s`, if any.
    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == s)
    }
}
