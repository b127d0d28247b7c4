//! nginx (Debian's `nginx` package) as a reference HTTP server for differential tests:
//! started by the test on `127.0.0.1` with its own prefix directory and config, in the
//! foreground, as one process (`master_process off`), ended when dropped.
//!
//! Its one location answers `200` with `$request_uri` (the target as received) and
//! `$uri` (nginx's own normalized, decoded reading of the path), one per line; a path
//! nginx refuses gets its `400`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

/// Debian's package that ships `nginx`.
pub const NGINX_PACKAGE: &str = "nginx";

/// Set to `1` to let a test skip (saying so) where nginx is not installed; otherwise a
/// missing nginx fails the test.
pub const SKIP_NGINX_ENV: &str = "MESHWORK_SKIP_NGINX";

/// How long nginx has to accept connections after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried when the one picked was taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// The `nginx` binary: in `PATH` or Debian's `/usr/sbin`.
pub fn nginx_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// A running nginx; killed when dropped.
#[derive(Debug)]
pub struct Nginx {
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx, or says why the calling test may not run: `Err` with the reason when
    /// nginx is not installed and [`SKIP_NGINX_ENV`] is `1` (the test should return).
    ///
    /// # Panics
    /// When nginx is not installed and skipping was not asked for, or it does not start.
    pub async fn start_or_skip() -> Result<Self, String> {
        let Some(bin) = nginx_bin() else {
            let why = format!(
                "nginx is not installed (Debian: apt-get install -y --no-install-recommends \
                 {NGINX_PACKAGE})"
            );
            if std::env::var(SKIP_NGINX_ENV).as_deref() == Ok("1") {
                eprintln!("SKIPPED: {why}; {SKIP_NGINX_ENV}=1");
                return Err(why);
            }
            panic!("{why}, or set {SKIP_NGINX_ENV}=1 to skip this test");
        };
        let dir = tempfile::Builder::new()
            .prefix("meshwork-nginx-")
            .tempdir()
            .expect("create a temporary directory");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match start(&bin, dir.path(), port).await {
                Ok(child) => {
                    return Ok(Self {
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        child,
                        dir,
                    });
                }
                Err(e) => last_error = e,
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, for a cluster's `endpoints`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// nginx's error log so far (it says why it refused a request), without its lines
    /// about connections closed.
    pub fn error_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        log.lines()
            .filter(|l| !l.contains("closed keepalive connection"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A port that was free a moment ago (nginx cannot report a port it picked itself).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("the bound address").port()
}

fn config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            return 200 \"$request_uri\\n$uri\\n\";
        }}
    }}
}}
"
    )
}

/// Whether what listens on `port` is nginx (and not whoever took the port before it).
async fn answers_as_nginx(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        Some(text.contains("\r\nserver: nginx"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Starts nginx on `port` and waits until it answers.
async fn start(bin: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    let file = dir.join("nginx.conf");
    std::fs::write(&file, config(dir, port)).expect("write nginx.conf");
    let mut child = Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&file)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            return Err(format!("nginx exited ({status}): {log}"));
        }
        if answers_as_nginx(port).await {
            return Ok(child);
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.start_kill();
            return Err(format!(
                "nginx did not accept on port {port} within {START_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
