//! Validation of a route's `upgrades`: the protocols it lets clients switch to.

use super::Check;
use crate::model::DEFAULT_UPGRADES;
use crate::spanned::List;
use crate::units;

/// The route's `upgrades`: protocol names (tokens), lower-cased, each once, never `h2c`;
/// `[websocket]` when absent.
pub(crate) fn upgrades(ck: &mut Check<'_>, raw: &List<String>) -> Vec<String> {
    if raw.is_none() {
        return DEFAULT_UPGRADES.iter().map(|p| (*p).to_string()).collect();
    }
    let mut seen: Vec<String> = Vec::new();
    ck.list(raw, |ck, at, name| {
        let protocol = match units::parse_upgrade_protocol(name) {
            Ok(protocol) => protocol,
            Err(e) => {
                ck.error(at, e);
                return None;
            }
        };
        if seen.contains(&protocol) {
            ck.error(at, format!("{name:?} is listed twice"));
            return None;
        }
        seen.push(protocol.clone());
        Some(protocol)
    })
}
