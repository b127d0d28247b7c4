//! A route's policies beside matching and forwarding: Envoy's `retry_policy` as
//! meshwork's `retry`, and header additions and removals as `set`/`add`/`remove`.

// Servers still send the deprecated `append` of header options: reading it is the point.
#![allow(deprecated)]

use std::mem::take;

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
use serde_json::{Map, Value, json};

use super::fields;
use super::leftover::{Refusals, join};
use super::units;

/// Envoy retries every method; meshwork's default is idempotent methods only.
const ENVOY_RETRY_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"];

pub(super) fn retry_policy(
    mut r: RetryPolicy,
    path: &str,
    refusals: &mut Refusals,
) -> Option<Value> {
    let mut on = Vec::new();
    let codes = take(&mut r.retriable_status_codes);
    for token in take(&mut r.retry_on)
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match token {
            "5xx" | "gateway-error" | "reset" | "connect-failure" | "retriable-4xx"
            | "cancelled" | "deadline-exceeded" | "resource-exhausted" | "unavailable" => {
                on.push(json!(token))
            }
            "retriable-status-codes" => on.extend(codes.iter().map(|c| json!(c))),
            other => refusals.refuse(
                join(path, "retry_on"),
                format!("{other:?} is not supported"),
            ),
        }
    }
    let attempts = take(&mut r.num_retries)
        .map_or(1, |n| n.value)
        .saturating_add(1);
    let mut out = Map::new();
    out.insert("attempts".into(), json!(attempts));
    out.insert("on".into(), Value::Array(on.clone()));
    out.insert("methods".into(), json!(ENVOY_RETRY_METHODS));
    if let Some(d) = take(&mut r.per_try_timeout).filter(|d| !units::is_zero(d)) {
        match units::duration(&d) {
            Some(t) => {
                out.insert("per_try_timeout".into(), json!(t));
            }
            None => refusals.refuse(join(path, "per_try_timeout"), "not a valid duration"),
        }
    }
    if let Some(mut backoff) = take(&mut r.retry_back_off) {
        let mut b = Map::new();
        for (name, d) in [
            ("base", take(&mut backoff.base_interval)),
            ("max", take(&mut backoff.max_interval)),
        ] {
            if let Some(t) = d.as_ref().and_then(units::duration) {
                b.insert(name.into(), json!(t));
            }
        }
        out.insert("backoff".into(), Value::Object(b));
        refusals.leftover(&join(path, "retry_back_off"), &backoff, &[]);
    }
    refusals.leftover(path, &r, fields::RETRY_POLICY);
    // No condition: Envoy does not retry.
    (!on.is_empty()).then_some(Value::Object(out))
}

/// Header additions and removals as meshwork's `set`/`add`/`remove`.
pub(super) fn header_edits(
    add: Vec<HeaderValueOption>,
    remove: Vec<String>,
    path: &str,
    refusals: &mut Refusals,
) -> Option<Value> {
    if add.is_empty() && remove.is_empty() {
        return None;
    }
    let (mut set, mut append) = (Map::new(), Map::new());
    for (i, option) in add.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(header) = option.header else {
            refusals.refuse(at, "no header");
            continue;
        };
        let overwrite = match (
            option.append.map(|a| a.value),
            HeaderAppendAction::try_from(option.append_action),
        ) {
            (Some(append), _) => !append,
            (None, Ok(HeaderAppendAction::AppendIfExistsOrAdd)) => false,
            (None, Ok(HeaderAppendAction::OverwriteIfExistsOrAdd)) => true,
            _ => {
                refusals.refuse(
                    join(&at, "append_action"),
                    "only APPEND_IF_EXISTS_OR_ADD and OVERWRITE_IF_EXISTS_OR_ADD are supported",
                );
                continue;
            }
        };
        let value = if header.raw_value.is_empty() {
            header.value
        } else {
            match String::from_utf8(header.raw_value) {
                Ok(v) => v,
                Err(_) => {
                    refusals.refuse(join(&at, "header.raw_value"), "not UTF-8");
                    continue;
                }
            }
        };
        if overwrite { &mut set } else { &mut append }.insert(header.key, json!(value));
    }
    Some(json!({ "set": set, "add": append, "remove": remove }))
}
