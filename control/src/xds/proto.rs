//! Small builders of Envoy protobuf values (durations, wrappers, addresses, matchers,
//! file data sources) shared by the translators.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, SocketAddress, address,
    config_source, data_source, socket_address,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{self, Any, BoolValue, UInt32Value};
use prost::{Message, Name};

use super::translate::Untranslatable;

pub(crate) fn duration(d: Duration) -> protobuf::Duration {
    protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn u32_value(value: u32) -> UInt32Value {
    UInt32Value { value }
}

pub(crate) fn bool_value(value: bool) -> BoolValue {
    BoolValue { value }
}

pub(crate) fn any<T: Message + Name>(message: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: message.encode_to_vec(),
    }
}

/// "Over the ADS stream this came on", xDS v3.
pub(crate) fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

pub(crate) fn socket_address(
    ip: IpAddr,
    port: u16,
) -> envoy_types::pb::envoy::config::core::v3::Address {
    envoy_types::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// A file Envoy reads itself, on its own machine: only absolute paths mean the same
/// thing there as here (meshwork proxies resolve relative ones against their own file).
pub(crate) fn file(field: &str, path: &Path) -> Result<DataSource, Untranslatable> {
    if !path.is_absolute() {
        return Err(Untranslatable::new(
            field,
            format!(
                "{:?} is relative; Envoy reads certificate files on its own machine, give an absolute path",
                path.display().to_string()
            ),
        ));
    }
    let name = path.to_str().ok_or_else(|| {
        Untranslatable::new(
            field,
            format!("{:?} is not UTF-8", path.display().to_string()),
        )
    })?;
    Ok(DataSource {
        specifier: Some(data_source::Specifier::Filename(name.to_string())),
        ..Default::default()
    })
}

pub(crate) fn exact(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(value.to_string())),
        ..Default::default()
    }
}

/// A regex as Envoy runs it (RE2, against the whole value).
pub(crate) fn full_regex(regex: String) -> RegexMatcher {
    RegexMatcher {
        regex,
        ..Default::default()
    }
}

/// meshwork's regexes match anywhere unless anchored (`^…$`); Envoy's must match the
/// whole value, so the pattern is wrapped to keep meshwork's meaning.
pub(crate) fn unanchored_regex(source: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(full_regex(
            format!("(?s).*(?:{source}).*"),
        ))),
        ..Default::default()
    }
}

/// Any of `values` exactly (for method lists), as one full-match regex.
pub(crate) fn one_of(values: &[String]) -> StringMatcher {
    let alternatives: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(full_regex(
            format!("(?:{})", alternatives.join("|")),
        ))),
        ..Default::default()
    }
}
