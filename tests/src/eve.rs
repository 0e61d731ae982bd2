//! Suricata's eve.json as the labs write it: the file a daemon follows
//! (`--eve-json`) and the confirmed IDS alerts the tests raise through it.
//! Since issue 10 a council ban needs confirmed evidence; an alert on an
//! established TCP session (one with an application protocol) is that.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use crate::{
    State,
    lab::{SERVER_V4, SERVICE_PORT},
};

/// One confirmed IDS alert from `src` against the lab's service, as
/// Suricata writes it (an FTP `USER root`, severity 1).
pub fn confirmed_alert(src: &str) -> String {
    format!(
        r#"{{"timestamp":"2026-11-21T12:00:00.000000+0000","event_type":"alert","src_ip":"{src}","src_port":40000,"dest_ip":"{SERVER_V4}","dest_port":{SERVICE_PORT},"proto":"TCP","app_proto":"ftp","direction":"to_server","alert":{{"signature_id":2100498,"signature":"GPL ATTACK_RESPONSE id check returned root","category":"Potentially Bad Traffic","severity":1}},"payload_printable":"USER root"}}"#
    )
}

/// An empty eve.json in the test's state directory, for `--eve-json`.
pub struct EveFile {
    path: PathBuf,
}

impl EveFile {
    pub fn new(state: &State) -> Self {
        let path = state.state_dir.join("eve.json");
        std::fs::write(&path, "").unwrap();
        Self { path }
    }

    /// The eve.json [`EveFile::new`] made for `state`, as it is now.
    pub fn at(state: &State) -> Self {
        Self {
            path: state.state_dir.join("eve.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Appends `line` as Suricata does: one event per line, flushed.
    pub fn append(&self, line: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
        f.flush().unwrap();
    }
}
