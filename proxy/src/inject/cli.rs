//! `meshwork inject`'s command line: where the resources come from, and the options.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;

use super::{InjectError, InjectOptions, Injected};

/// `meshwork inject -f FILE [--image IMG] [--config-map NAME] ...`.
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// The YAML file of resources (several documents allowed); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// The meshwork image, for the proxy and init containers alike.
    #[arg(long, value_name = "IMAGE", default_value_t = super::default_image(), value_parser = NonEmptyStringValueParser::new())]
    pub image: String,
    /// The ConfigMap holding the proxy's config as its `config.yaml` key.
    #[arg(long, value_name = "NAME", default_value = super::DEFAULT_CONFIG_MAP, value_parser = NonEmptyStringValueParser::new())]
    pub config_map: String,
    /// The Secret holding the identity (`cert.pem`, `key.pem`, `ca.pem`)
    /// [default: meshwork-identity-<the pod's service account>].
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub identity_secret: Option<String>,
    /// The proxy's drain deadline; the pod's terminationGracePeriodSeconds is raised to
    /// cover it plus 5s [default: the pod's grace period (30s if unset) less 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
}

/// Why `meshwork inject` failed.
#[derive(Debug, thiserror::Error)]
pub enum InjectCliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Inject {
        path: String,
        source: Box<InjectError>,
    },
}

impl InjectArgs {
    /// Reads the input and injects it.
    ///
    /// # Errors
    /// An unreadable input, or what [`super::inject`] refuses.
    pub fn run(&self) -> Result<Injected, InjectCliError> {
        let path = if self.file.as_os_str() == "-" {
            "<stdin>".to_owned()
        } else {
            self.file.display().to_string()
        };
        let mut text = String::new();
        let read = if self.file.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut text).map(drop)
        } else {
            std::fs::File::open(&self.file).and_then(|mut f| f.read_to_string(&mut text).map(drop))
        };
        read.map_err(|source| InjectCliError::Read {
            path: path.clone(),
            source,
        })?;
        let options = InjectOptions {
            image: self.image.clone(),
            config_map: self.config_map.clone(),
            identity_secret: self.identity_secret.clone(),
            drain_timeout: self.drain_timeout,
        };
        super::inject(&text, &options).map_err(|source| InjectCliError::Inject {
            path,
            source: Box::new(source),
        })
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match meshwork_config::units::parse_duration(text)? {
        Duration::ZERO => Err("the drain deadline must be longer than 0s".into()),
        duration => Ok(duration),
    }
}
