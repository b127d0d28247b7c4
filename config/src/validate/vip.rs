//! Validation of a cluster's `vip`: the Service virtual addresses that stand for it. An
//! address is an IP literal and a port that interception can see (not loopback, never
//! captured, nor unspecified), and stands for one cluster only: two clusters claiming
//! one address would make where a connection goes depend on their order.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Check;
use crate::model::{PortProtocol, Vip};
use crate::raw::{PortProtocolName, RawVip};
use crate::spanned::Spanned;

/// The addresses claimed so far, each by the cluster that claimed it first.
pub(crate) type VipClaims = HashMap<SocketAddr, String>;

/// `cluster`'s `vip`, its addresses recorded in `claims`.
pub(crate) fn vip(
    ck: &mut Check<'_>,
    at: &Spanned<RawVip>,
    cluster: &str,
    claims: &mut VipClaims,
) -> Option<Vip> {
    let raw = at.get()?;
    if ck.require(at, &raw.addresses, "addresses")
        && raw
            .addresses
            .as_ref()
            .and_then(Spanned::get)
            .is_some_and(Vec::is_empty)
    {
        if let Some(list) = &raw.addresses {
            ck.error(list, "needs at least one address");
        }
    }
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for (address, item) in ck.list(&raw.addresses, |ck, item, text| {
        let address = ck.parse(&Some(item.clone()), |_| parse_vip(text))?;
        Some((address, item.clone()))
    }) {
        if addresses.contains(&address) {
            ck.error(&item, format!("{address} is listed twice"));
            continue;
        }
        match claims.get(&address) {
            Some(owner) if owner != cluster => {
                ck.error(
                    &item,
                    format!(
                        "{address} already stands for cluster {owner:?} (an address may stand for one cluster only)"
                    ),
                );
                continue;
            }
            _ => {}
        }
        claims.insert(address, cluster.to_string());
        addresses.push(address);
    }
    let protocol = match raw.protocol.as_ref().and_then(Spanned::get) {
        None | Some(PortProtocolName::Auto) => PortProtocol::Auto,
        Some(PortProtocolName::Http) => PortProtocol::Http,
        Some(PortProtocolName::Opaque) => PortProtocol::Opaque,
    };
    Some(Vip {
        addresses,
        protocol,
    })
}

/// An address interception can deliver: an IP literal (a DNS name has no one address a
/// connection could be going to), a port, not loopback or unspecified.
fn parse_vip(text: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text.parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address and port (e.g. \"10.96.0.10:80\" or \"[fd00::10]:80\")"
        )
    })?;
    let ip = address.ip().to_canonical();
    if ip.is_loopback() || ip.is_unspecified() {
        return Err(format!(
            "{text:?} is never intercepted (loopback and unspecified addresses are not captured): give the Service's cluster IP"
        ));
    }
    if address.port() == 0 {
        return Err(format!("{text:?} has port 0 (give the Service's port)"));
    }
    Ok(address)
}
