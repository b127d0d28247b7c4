//! TPROXY mode's policy routing: packets carrying the TPROXY mark are delivered locally
//! (to the proxy's transparent sockets) through a routing table of their own.
//!
//! `ip rule add` appends a duplicate when run twice, so applying first deletes every
//! copy of the rule; `ip route replace` is idempotent by itself.

use super::commands::{self, CommandError};
use super::{InterceptMode, InterceptRules};

/// One `ip` invocation, as its arguments.
pub type IpCommand = Vec<String>;

/// The families to program: IPv6 only where the kernel has it (a pod on a cluster with
/// IPv6 disabled has no IPv6 routing to program).
fn families() -> Vec<&'static str> {
    if std::path::Path::new("/proc/net/if_inet6").exists() {
        vec!["-4", "-6"]
    } else {
        vec!["-4"]
    }
}

fn default_route(family: &str) -> &'static str {
    if family == "-6" { "::/0" } else { "0.0.0.0/0" }
}

fn rule_args(family: &str, verb: &str, r: &InterceptRules) -> IpCommand {
    [
        family,
        "rule",
        verb,
        "fwmark",
        &format!("{:#x}", r.tproxy_mark),
        "lookup",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(std::iter::once(r.tproxy_table.to_string()))
    .collect()
}

fn route_args(family: &str, verb: &str, r: &InterceptRules) -> IpCommand {
    [
        family,
        "route",
        verb,
        "local",
        default_route(family),
        "dev",
        "lo",
        "table",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(std::iter::once(r.tproxy_table.to_string()))
    .collect()
}

/// What applying programs (for `--dry-run`), each as `ip ARGS`.
pub fn apply_commands(r: &InterceptRules) -> Vec<Vec<String>> {
    if r.mode != InterceptMode::Tproxy {
        return Vec::new();
    }
    families()
        .into_iter()
        .flat_map(|f| [rule_args(f, "add", r), route_args(f, "replace", r)])
        .map(|args| std::iter::once("ip".to_owned()).chain(args).collect())
        .collect()
}

/// Programs the TPROXY routing, replacing earlier copies. In redirect mode, removes what
/// an earlier TPROXY-mode run left (where there is an `ip` to do it with: redirect mode
/// does not otherwise need one).
pub fn apply(r: &InterceptRules) -> Result<(), CommandError> {
    if r.mode != InterceptMode::Tproxy {
        return match cleanup(r) {
            Err(CommandError::NotFound { .. }) => Ok(()),
            other => other,
        };
    }
    for family in families() {
        delete_rules(family, r)?;
        ip(&rule_args(family, "add", r))?;
        ip(&route_args(family, "replace", r))?;
    }
    Ok(())
}

/// Removes what [`apply`] programmed in either mode (a pod may have been initialized in
/// TPROXY mode and be cleaned up with the default flags).
pub fn cleanup(r: &InterceptRules) -> Result<(), CommandError> {
    for family in families() {
        delete_rules(family, r)?;
        let args = route_args(family, "del", r);
        let out = try_ip(&args)?;
        if !out.success && !is_absent(&out.stderr) {
            return Err(commands::failure(
                format!("ip {}", args.join(" ")),
                out.stderr,
                "exit status non-zero",
            ));
        }
    }
    Ok(())
}

/// Deletes every copy of the mark's rule; stops at the first "not there".
fn delete_rules(family: &str, r: &InterceptRules) -> Result<(), CommandError> {
    let args = rule_args(family, "del", r);
    // Bounded: each success removes one rule, and a namespace holds few.
    for _ in 0..64 {
        let out = try_ip(&args)?;
        if out.success {
            continue;
        }
        if is_absent(&out.stderr) {
            return Ok(());
        }
        return Err(commands::failure(
            format!("ip {}", args.join(" ")),
            out.stderr,
            "exit status non-zero",
        ));
    }
    Ok(())
}

/// iproute2's wording for deleting a rule or route that does not exist.
fn is_absent(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
        || stderr.contains("No such process")
        || stderr.contains("FIB table does not exist")
}

fn ip(args: &[String]) -> Result<(), CommandError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    commands::run("ip", &args, None)
}

fn try_ip(args: &[String]) -> Result<commands::Output, CommandError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    commands::try_run("ip", &args)
}

#[cfg(test)]
mod tests {
    use super::super::testing::defaults;
    use super::*;

    #[test]
    fn redirect_mode_needs_no_policy_routing() {
        assert!(apply_commands(&defaults()).is_empty());
    }

    #[test]
    fn tproxy_mode_routes_the_mark_to_a_local_table() {
        let mut r = defaults();
        r.mode = InterceptMode::Tproxy;
        let commands: Vec<String> = apply_commands(&r).iter().map(|c| c.join(" ")).collect();
        assert_eq!(commands[0], "ip -4 rule add fwmark 0x539 lookup 133");
        assert_eq!(
            commands[1],
            "ip -4 route replace local 0.0.0.0/0 dev lo table 133"
        );
        if commands.len() > 2 {
            assert_eq!(
                commands[3],
                "ip -6 route replace local ::/0 dev lo table 133"
            );
        }
    }
}
