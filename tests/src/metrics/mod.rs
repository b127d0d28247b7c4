//! The proxy's `/metrics`: scraped, parsed strictly ([`parse`]), queried by exact label
//! sets, polled until an observation lands, and checked by `promtool`.
//!
//! ```text
//! let scrape = proxy.scrape_when("13 requests", |s| s.sum("meshwork_http_requests_total") == 13.0).await;
//! assert_eq!(scrape.get("meshwork_http_requests_total", &[("route", "api"), ...]), Some(7.0));
//! ```

pub mod parse;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use parse::{Family, Kind, Labels, Sample, series_id};

use crate::proxy::Proxy;

/// How long an observation may take to show in `/metrics` after its response ended.
pub const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// One parsed scrape of `/metrics`.
#[derive(Clone, Debug)]
pub struct Scrape {
    pub families: Vec<Family>,
    pub text: String,
}

impl Scrape {
    /// Parses `text` strictly.
    ///
    /// # Panics
    /// When it is not a valid exposition, with the problem and the text.
    pub fn parse(text: &str) -> Self {
        match parse::parse(text) {
            Ok(families) => Self {
                families,
                text: text.to_owned(),
            },
            Err(e) => panic!("/metrics is not a valid exposition: {e}\n--- /metrics ---\n{text}"),
        }
    }

    fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| &f.samples)
    }

    /// The value of the series `name` whose labels are exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted = labels_of(labels);
        self.samples()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Like [`Scrape::get`], with 0 for a series that does not exist (yet).
    pub fn get_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every series of sample name `name`: labels to value.
    pub fn series(&self, name: &str) -> BTreeMap<Labels, f64> {
        self.samples()
            .filter(|s| s.name == name)
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    }

    /// Every series of `name` whose value is not 0 (a series may exist at 0 once its
    /// label values were resolved).
    pub fn nonzero_series(&self, name: &str) -> BTreeMap<Labels, f64> {
        let mut series = self.series(name);
        series.retain(|_, v| *v != 0.0);
        series
    }

    /// The sum over every series of sample name `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    /// The identity (`name{labels}`) of every series in the scrape.
    pub fn series_ids(&self) -> BTreeSet<String> {
        self.samples()
            .map(|s| series_id(&s.name, &s.labels))
            .collect()
    }

    /// Every label value in the scrape.
    pub fn label_values(&self) -> BTreeSet<String> {
        self.samples()
            .flat_map(|s| s.labels.values().cloned())
            .collect()
    }

    /// Whether a family of this name is declared.
    pub fn has_family(&self, name: &str) -> bool {
        self.families.iter().any(|f| f.name == name)
    }

    /// The lines of the exposition that mention `name`, for failure messages.
    pub fn lines_of(&self, name: &str) -> String {
        self.text
            .lines()
            .filter(|l| l.contains(name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A label set from pairs.
pub fn labels_of(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Proxy {
    /// `GET /metrics`, checked (200, Prometheus text content type) and parsed strictly.
    ///
    /// # Panics
    /// When the scrape fails or is not a valid exposition.
    pub async fn scrape(&self) -> Scrape {
        let reply = self.admin_get_ok("/metrics").await;
        let content_type = reply.header("content-type").unwrap_or_default();
        if !content_type.starts_with("text/plain") || !content_type.contains("version=0.0.4") {
            self.fail(&format!("/metrics content-type is {content_type:?}"));
        }
        Scrape::parse(&reply.text())
    }

    /// Scrapes until `check` holds (observations land when a response ends, a moment
    /// after the client has read it) and returns that scrape.
    ///
    /// # Panics
    /// When `check` still fails after [`METRICS_TIMEOUT`], with the last scrape.
    pub async fn scrape_when(&self, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = tokio::time::Instant::now() + METRICS_TIMEOUT;
        loop {
            let scrape = self.scrape().await;
            if check(&scrape) {
                return scrape;
            }
            if tokio::time::Instant::now() > deadline {
                let meshwork: Vec<&str> = scrape
                    .text
                    .lines()
                    .filter(|l| l.starts_with("meshwork_") && !l.contains("_bucket{"))
                    .collect();
                self.fail(&format!(
                    "/metrics did not show {what} within {METRICS_TIMEOUT:?}; last scrape \
                     (meshwork_ samples, buckets left out):\n{}",
                    meshwork.join("\n")
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Debian's package that ships `promtool`.
pub const PROMTOOL_PACKAGE: &str = "prometheus";

/// Runs `promtool check metrics` on `text`.
///
/// # Errors
/// What promtool said, when it found problems.
///
/// # Panics
/// When `promtool` is not installed, naming the package to install.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run promtool ({e}): install Debian's `{PROMTOOL_PACKAGE}` package \
             (`apt-get install --no-install-recommends {PROMTOOL_PACKAGE}`; .ci/run does)"
        ),
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(text.as_bytes())
        .expect("write the exposition to promtool");
    drop(stdin);
    let output = child.wait_with_output().expect("wait for promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics ({}): {said}",
            output.status
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_accepts_a_clean_exposition_and_reports_lint_problems() {
        let clean = "# HELP x_total Things.\n# TYPE x_total counter\nx_total 1\n";
        assert_eq!(promtool_check_metrics(clean), Ok(()));
        let unsuffixed = "# HELP x_bytes Bytes.\n# TYPE x_bytes counter\nx_bytes 1\n";
        let problems = promtool_check_metrics(unsuffixed).unwrap_err();
        assert!(problems.contains("_total"), "{problems}");
    }
}
