//! A real `nats-server` (Debian's package) with JetStream, for the fleet
//! tests: a temporary store directory, users with passwords and per-user
//! publish permissions (or a token, or NKey users), optionally TLS with a
//! CA the test generates, on loopback with a free port or inside a
//! namespace of the test's own. Killed on drop; [`NatsServer::kill`] and
//! [`NatsServer::restart`] (same port, same store) simulate an outage.

use std::{
    fs::File,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{lab::NetNs, unique};

/// A user of the test server: name, password, and the subjects it may
/// publish decisions on (besides the JetStream API).
pub struct User {
    pub name: &'static str,
    pub password: &'static str,
    pub publish: Vec<String>,
}

/// How clients authenticate to the test server.
pub enum Auth<'a> {
    /// Users with passwords and publish permissions.
    Users(&'a [User]),
    /// One shared token.
    Token(&'a str),
    /// NKey users (public keys, `U...`), allowed everything.
    Nkeys(&'a [String]),
}

/// A CA and a server certificate for 127.0.0.1 made with the `openssl`
/// CLI in `dir`, valid for a day.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn generate(dir: &std::path::Path, ip: &str) -> Self {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl (Debian's openssl package; `cargo xtask test` installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                crate::describe(&out)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=blocker test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        let cn = format!("/CN={ip}");
        csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", &cn]);
        run(&csr);
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write server.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ]);
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

pub struct NatsServer {
    child: Option<Child>,
    ns: Option<String>,
    pub host: String,
    pub port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    log: PathBuf,
}

/// The server binary: Debian installs it in /usr/sbin.
fn server_bin() -> PathBuf {
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if std::path::Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "nats-server not found: the fleet tests need Debian's nats-server package (`cargo xtask test` installs it)"
    );
}

impl NatsServer {
    /// Starts a server on `host` (in `ns` if given, else on the host's
    /// loopback with a free port) with JetStream and `users`.
    pub fn start(ns: Option<&NetNs>, host: &str, users: &[User]) -> Self {
        Self::start_with(ns, host, &Auth::Users(users), None)
    }

    /// Starts a server with `auth` and, given `tls`, requiring TLS.
    pub fn start_with(ns: Option<&NetNs>, host: &str, auth: &Auth<'_>, tls: Option<&Tls>) -> Self {
        crate::require_root();
        let dir = std::env::temp_dir().join(unique("blocker-nats-"));
        std::fs::create_dir_all(dir.join("store")).expect("nats store dir");
        let users = match auth {
            Auth::Users(users) => *users,
            _ => &[],
        };
        let mut users_conf = String::new();
        for u in users {
            let mut publish: Vec<String> = vec!["\"$JS.API.>\"".into(), "\"$JS.ACK.>\"".into()];
            publish.extend(u.publish.iter().map(|s| format!("{s:?}")));
            users_conf.push_str(&format!(
                "    {{ user: {:?}, password: {:?}, permissions: {{ publish: [{}], subscribe: [\"_INBOX.>\"] }} }}\n",
                u.name,
                u.password,
                publish.join(", ")
            ));
        }
        let auth_conf = match auth {
            Auth::Users(_) => format!("authorization {{\n  users = [\n{users_conf}  ]\n}}\n"),
            Auth::Token(t) => format!("authorization {{\n  token: {t:?}\n}}\n"),
            Auth::Nkeys(keys) => {
                let users: Vec<String> =
                    keys.iter().map(|k| format!("{{ nkey: {k:?} }}")).collect();
                format!("authorization {{\n  users = [ {} ]\n}}\n", users.join(", "))
            }
        };
        let tls_conf = tls
            .map(|t| {
                format!(
                    "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  timeout: 5\n}}\n",
                    t.cert.display().to_string(),
                    t.key.display().to_string()
                )
            })
            .unwrap_or_default();
        let conf = dir.join("nats.conf");
        let log = dir.join("nats.log");
        let mut s = Self {
            child: None,
            ns: ns.map(NetNs::path),
            host: host.to_owned(),
            port: 4222,
            dir,
            conf,
            log,
        };
        for attempt in 0..5 {
            if s.ns.is_none() {
                // A free port on loopback: bind 0, read it, release it. The
                // server binds it a moment later; a race with another test
                // shows as a failed start and is retried with a new port.
                let l = TcpListener::bind((host, 0)).expect("bind a free port");
                s.port = l.local_addr().unwrap().port();
            }
            std::fs::write(
                &s.conf,
                format!(
                    "listen: \"{}:{}\"\nserver_name: \"blocker-test\"\njetstream {{\n  store_dir: {:?}\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n{auth_conf}{tls_conf}",
                    s.host,
                    s.port,
                    s.dir.join("store").display().to_string()
                ),
            )
            .expect("write nats.conf");
            if s.spawn() {
                return s;
            }
            assert!(attempt < 4, "nats-server did not start:\n{}", s.log());
        }
        unreachable!()
    }

    /// `nats://host:port`.
    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(&mut self) -> bool {
        let file = File::create(&self.log).expect("nats log");
        let mut cmd = match &self.ns {
            Some(path) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={path}")).arg(server_bin());
                c
            }
            None => Command::new(server_bin()),
        };
        cmd.arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let mut child = cmd.spawn().expect("spawn nats-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if self.log().contains("Server is ready") {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: an outage, not a clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same address with the same store.
    pub fn restart(&mut self) {
        self.kill();
        let old = self.log();
        assert!(self.spawn(), "nats-server did not restart:\n{}", self.log());
        // Keep the first run's log for failure messages.
        let _ = std::fs::write(self.dir.join("nats.first.log"), old);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
