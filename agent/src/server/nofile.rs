//! The route server's open-file limit. Every BGP session holds one socket,
//! so the soft RLIMIT_NOFILE bounds how many hosts can be connected at
//! once; past it `accept` fails (EMFILE) for hosts and appliances alike.
//! At start the soft limit is raised to the hard one (what systemd's
//! `LimitNOFILE=` or the shell's `ulimit -Hn` allows), and a warning says
//! when `[hosts] ranges` admit more hosts than that leaves room for.

use crate::config::ServerConfig;
use std::io;

/// Descriptors the daemon needs besides its sessions: listeners, the
/// control and metrics sockets and their clients, BFD sockets, epoll,
/// log files.
pub const RESERVED: u64 = 64;

/// The soft limit before and after [`raise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (the hard limit).
    pub now: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit.
pub fn raise() -> io::Result<Raised> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the rlimit we own; raising the soft limit
        // up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Raised {
        before,
        now: lim.rlim_cur,
    })
}

/// How many sessions `cfg` admits at most: its appliances and every
/// address of its host ranges (saturating).
pub fn admitted_sessions(cfg: &ServerConfig) -> u128 {
    cfg.hosts
        .ranges
        .iter()
        .map(|r| {
            let bits = u32::from(r.afi().max_len() - r.len());
            1u128.checked_shl(bits).unwrap_or(u128::MAX)
        })
        .fold(cfg.peers.len() as u128, u128::saturating_add)
}

/// The warning to log when `cfg` admits more sessions than a soft limit
/// of `limit` descriptors leaves room for.
pub fn advice(limit: u64, cfg: &ServerConfig) -> Option<String> {
    let room = limit.saturating_sub(RESERVED);
    let admitted = admitted_sessions(cfg);
    if admitted <= u128::from(room) {
        return None;
    }
    let admitted = if admitted > 1 << 40 {
        "more than 10^12".to_string()
    } else {
        admitted.to_string()
    };
    Some(format!(
        "the open-file limit is {limit}: room for about {room} BGP sessions (one descriptor each), but the appliances and [hosts] ranges admit {admitted}; hosts beyond it cannot connect and stall accepting for the others. Raise LimitNOFILE= (systemd) or `ulimit -n` to the number of hosts you run plus {RESERVED}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use std::path::Path;

    fn config(ranges: &str) -> ServerConfig {
        let text = format!(
            "asn = 65515\nrouter_id = \"10.1.0.4\"\n[[peer]]\nname = \"fw\"\naddress = \"10.1.0.20\"\nasn = 65020\n[hosts]\nranges = [{ranges}]\n"
        );
        ServerConfig::from_str(Path::new("rs.toml"), &text).unwrap()
    }

    #[test]
    fn a_slash_16_of_hosts_is_65536_sessions_plus_the_appliances() {
        assert_eq!(admitted_sessions(&config("\"10.1.0.0/16\"")), 65_537);
        assert_eq!(
            admitted_sessions(&config("\"10.1.0.0/24\", \"10.2.0.0/24\"")),
            513
        );
        assert_eq!(admitted_sessions(&config("\"::/0\"")), u128::MAX);
    }

    #[test]
    fn warns_only_when_the_ranges_admit_more_sessions_than_the_limit_leaves_room_for() {
        let w = advice(20_000, &config("\"10.1.0.0/16\"")).unwrap();
        assert!(w.contains("limit is 20000"), "{w}");
        assert!(w.contains("about 19936 BGP sessions"), "{w}");
        assert!(w.contains("admit 65537"), "{w}");
        assert!(w.contains("LimitNOFILE"), "{w}");
        assert_eq!(advice(1024, &config("\"10.1.0.0/24\"")), None);
        assert_eq!(
            advice(65_536 + RESERVED + 1, &config("\"10.1.0.0/16\"")),
            None
        );
        let v6 = advice(1_048_576, &config("\"2001:db8::/64\"")).unwrap();
        assert!(v6.contains("more than 10^12"), "{v6}");
    }

    #[test]
    fn raise_lifts_the_soft_limit_to_the_hard_one() {
        let r = raise().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the rlimit we own.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!((r.now, lim.rlim_cur), (lim.rlim_max, lim.rlim_max));
        assert!(r.before <= r.now);
    }
}
