//! `meshwork init`: programs the pod's network namespace so that its TCP traffic reaches
//! the sidecar — the app's outbound connections to the outbound port, connections to the
//! pod to the inbound port — and proves that it does (`--validate`).
//!
//! Interception is one nftables table, `inet meshwork`, loaded by `nft -f -` in a single
//! transaction: the `inet` family covers IPv4 and IPv6 with one set of rules, the load is
//! atomic (a pod never runs with half its rules), running it again replaces the table
//! instead of appending a second copy, and `--cleanup` is one table deletion. On hosts
//! whose `iptables` is iptables-nft (every current distribution) the rules end up in the
//! same kernel subsystem either way; `nft` is used directly because iptables has no
//! atomic replace of one's own chains across both families.

mod commands;
mod nft;
mod policy_routing;
mod validate;

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

pub use commands::CommandError;
pub use validate::{DEFAULT_VALIDATE_ADDRESS, ValidateError};

/// The outbound port `meshwork init` redirects the app's connections to by default.
pub const DEFAULT_OUTBOUND_PORT: u16 = 15001;
/// The inbound port connections to the pod are redirected to by default.
pub const DEFAULT_INBOUND_PORT: u16 = 15006;
/// The UID and GID the proxy runs as; their traffic is never captured.
pub const DEFAULT_PROXY_ID: u32 = 1337;
/// The firewall mark of TPROXY'd connections (and of the proxy's connections to the app
/// that keep the client's address), and the routing table that delivers them locally.
pub const DEFAULT_TPROXY_MARK: u32 = 0x539;
pub const DEFAULT_TPROXY_TABLE: u32 = 133;

/// How inbound connections reach the inbound port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InterceptMode {
    /// nat REDIRECT: the app sees connections from the proxy's address.
    Redirect,
    /// TPROXY: the inbound listener receives connections with their addresses untouched,
    /// so the proxy can connect to the app from the client's own address.
    Tproxy,
}

/// What to capture and what to leave alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterceptRules {
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    /// Destination ports of outbound connections that go out untouched.
    pub outbound_skip_ports: Vec<u16>,
    /// Destination networks of outbound connections that go out untouched.
    pub outbound_skip_cidrs: Vec<IpNet>,
    /// Destination ports of inbound connections that reach their port untouched (the
    /// proxy's admin port, so kubelet probes of `/ready` reach it).
    pub inbound_skip_ports: Vec<u16>,
    /// Source networks whose inbound connections reach their port untouched.
    pub inbound_skip_cidrs: Vec<IpNet>,
    pub mode: InterceptMode,
    pub tproxy_mark: u32,
    pub tproxy_table: u32,
}

/// Why a set of rules cannot be programmed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidRules {
    #[error("--outbound-port and --inbound-port are both {0}: they must differ")]
    SamePorts(u16),
    #[error("port 0 is not a port (--{0})")]
    ZeroPort(&'static str),
    #[error(
        "--inbound-skip-ports holds the inbound port {0}: connections to it would never \
         be captured and never reach it by redirect either; remove it"
    )]
    InboundPortSkipped(u16),
    #[error("--tproxy-mark must not be 0 (a zero mark matches every unmarked packet)")]
    ZeroMark,
}

impl InterceptRules {
    /// # Errors
    /// When the rules contradict themselves (see [`InvalidRules`]).
    pub fn check(&self) -> Result<(), InvalidRules> {
        if self.outbound_port == 0 {
            return Err(InvalidRules::ZeroPort("outbound-port"));
        }
        if self.inbound_port == 0 {
            return Err(InvalidRules::ZeroPort("inbound-port"));
        }
        if self.outbound_port == self.inbound_port {
            return Err(InvalidRules::SamePorts(self.inbound_port));
        }
        if self.outbound_skip_ports.contains(&0) {
            return Err(InvalidRules::ZeroPort("outbound-skip-ports"));
        }
        if self.inbound_skip_ports.contains(&0) {
            return Err(InvalidRules::ZeroPort("inbound-skip-ports"));
        }
        if self.inbound_skip_ports.contains(&self.inbound_port) {
            return Err(InvalidRules::InboundPortSkipped(self.inbound_port));
        }
        if self.mode == InterceptMode::Tproxy && self.tproxy_mark == 0 {
            return Err(InvalidRules::ZeroMark);
        }
        Ok(())
    }

    /// The nftables ruleset that programs these rules (what `--dry-run` prints).
    pub fn ruleset(&self) -> String {
        nft::ruleset(self)
    }
}

/// What `meshwork init` was asked to do.
#[derive(Debug, Clone)]
pub enum InitAction {
    /// Program the rules (replacing any earlier ones).
    Apply,
    /// Print what `Apply` would do, change nothing.
    DryRun,
    /// Remove everything `Apply` programmed.
    Cleanup,
    /// Prove that the app's outbound connections are redirected to the outbound port.
    Validate {
        /// An address only the redirect can answer (nothing listens there).
        target: SocketAddr,
        timeout: Duration,
    },
}

/// Why `meshwork init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Invalid(#[from] InvalidRules),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Validate(#[from] ValidateError),
}

/// Runs `action`; returns what to print on stdout.
///
/// # Errors
/// Contradicting rules, a missing or failing `nft`/`ip` command, or a failed validation.
pub fn run(rules: &InterceptRules, action: &InitAction) -> Result<String, InitError> {
    rules.check()?;
    match action {
        InitAction::DryRun => {
            let mut out = format!("# nft -f -\n{}", rules.ruleset());
            for command in policy_routing::apply_commands(rules) {
                out.push_str(&format!("# {}\n", command.join(" ")));
            }
            Ok(out)
        }
        InitAction::Apply => {
            commands::nft_load(&rules.ruleset())?;
            policy_routing::apply(rules)?;
            Ok(String::new())
        }
        InitAction::Cleanup => {
            commands::nft_delete_table(nft::TABLE)?;
            policy_routing::cleanup(rules)?;
            Ok(String::new())
        }
        InitAction::Validate { target, timeout } => {
            let report = validate::outbound(rules, *target, *timeout)?;
            Ok(format!("{report}\n"))
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn defaults() -> InterceptRules {
        InterceptRules {
            outbound_port: DEFAULT_OUTBOUND_PORT,
            inbound_port: DEFAULT_INBOUND_PORT,
            proxy_uid: DEFAULT_PROXY_ID,
            proxy_gid: DEFAULT_PROXY_ID,
            outbound_skip_ports: vec![],
            outbound_skip_cidrs: vec![],
            inbound_skip_ports: vec![],
            inbound_skip_cidrs: vec![],
            mode: InterceptMode::Redirect,
            tproxy_mark: DEFAULT_TPROXY_MARK,
            tproxy_table: DEFAULT_TPROXY_TABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::defaults;
    use super::*;

    #[test]
    fn defaults_are_consistent() {
        assert_eq!(defaults().check(), Ok(()));
    }

    #[test]
    fn contradictions_are_refused_with_the_flag_to_fix() {
        let mut r = defaults();
        r.inbound_port = r.outbound_port;
        assert_eq!(r.check(), Err(InvalidRules::SamePorts(15001)));
        let mut r = defaults();
        r.inbound_skip_ports = vec![22, 15006];
        assert_eq!(r.check(), Err(InvalidRules::InboundPortSkipped(15006)));
        let mut r = defaults();
        r.outbound_skip_ports = vec![0];
        assert!(
            r.check()
                .unwrap_err()
                .to_string()
                .contains("outbound-skip-ports")
        );
        let mut r = defaults();
        r.mode = InterceptMode::Tproxy;
        r.tproxy_mark = 0;
        assert_eq!(r.check(), Err(InvalidRules::ZeroMark));
    }

    #[test]
    fn dry_run_prints_the_ruleset_and_changes_nothing() {
        let out = run(&defaults(), &InitAction::DryRun).unwrap();
        assert!(
            out.starts_with("# nft -f -\ntable inet meshwork\n"),
            "{out}"
        );
        assert!(
            !out.contains("# ip "),
            "redirect mode needs no policy routing: {out}"
        );
        let mut tproxy = defaults();
        tproxy.mode = InterceptMode::Tproxy;
        let out = run(&tproxy, &InitAction::DryRun).unwrap();
        assert!(
            out.contains("# ip -4 rule add fwmark 0x539 lookup 133"),
            "{out}"
        );
    }
}
