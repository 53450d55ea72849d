//! IPv4 subnets: parsing, membership, overlap and the pool `network create` draws from.

use std::fmt;
use std::net::Ipv4Addr;

use berth_core::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// `10.1.0.0/16`; host bits must be zero, and the prefix leave room for a gateway and a
    /// container (at most /30).
    pub fn parse(text: &str) -> Result<Subnet> {
        let bad = |reason: String| {
            Error::invalid(format!("subnet {text:?}"), reason)
                .with_hint("use a CIDR such as 10.10.0.0/24")
        };
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| bad("it needs a prefix length, e.g. /24".into()))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| bad(format!("{address:?} is not an IPv4 address")))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| bad("the prefix length must be 8-30".into()))?;
        let subnet = Subnet {
            network: address,
            prefix,
        };
        if subnet.masked(address) != address {
            return Err(bad(format!(
                "{address} has host bits set; the network is {}",
                Subnet {
                    network: subnet.masked(address),
                    prefix
                }
            )));
        }
        Ok(subnet)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    fn masked(&self, ip: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(ip) & self.mask())
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.masked(ip) == self.network
    }

    /// Whether `ip` can be a container's: in the subnet, neither its network nor broadcast
    /// address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let broadcast = u32::from(self.network) | !self.mask();
        self.contains(ip) && ip != self.network && u32::from(ip) != broadcast
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The first host address, docker's and podman's gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The /24s of this subnet, in order (itself when it is /24 or smaller).
    pub fn slash24s(&self) -> impl Iterator<Item = Subnet> + '_ {
        let count = if self.prefix >= 24 {
            1
        } else {
            1u32 << (24 - self.prefix)
        };
        (0..count).map(move |i| Subnet {
            network: Ipv4Addr::from(u32::from(self.network) + (i << 8)),
            prefix: self.prefix.max(24),
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The IPv4 routes of the host (`/proc/net/route`), so a new network's subnet is not one the
/// host already reaches another way.
pub fn host_routes() -> Vec<Subnet> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let destination = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            // Hex of the kernel's own byte order; the default route (mask 0) is not a subnet.
            let network = Ipv4Addr::from(destination.to_ne_bytes());
            let prefix = u32::from_be_bytes(mask.to_ne_bytes()).leading_ones() as u8;
            (prefix > 0).then_some(Subnet { network, prefix })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_strictly() {
        let subnet = Subnet::parse("10.91.0.0/16").unwrap();
        assert!(subnet.contains("10.91.200.3".parse().unwrap()));
        assert!(!subnet.contains("10.92.0.1".parse().unwrap()));
        assert!(!subnet.is_host("10.91.255.255".parse().unwrap()));
        assert!(!subnet.is_host("10.91.0.0".parse().unwrap()));
        assert_eq!(subnet.first_host().to_string(), "10.91.0.1");
        for bad in [
            "10.91.0.0",
            "10.91.0.1/16",
            "10.0.0.0/31",
            "x/24",
            "10.0.0.0/33",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pool_splits_into_slash24s_and_overlaps_are_seen() {
        let pool = Subnet::parse("10.92.0.0/22").unwrap();
        let parts: Vec<String> = pool.slash24s().map(|s| s.to_string()).collect();
        assert_eq!(
            parts,
            [
                "10.92.0.0/24",
                "10.92.1.0/24",
                "10.92.2.0/24",
                "10.92.3.0/24"
            ]
        );
        let wide = Subnet::parse("10.0.0.0/8").unwrap();
        assert!(wide.overlaps(&pool) && pool.overlaps(&wide));
        assert!(!Subnet::parse("10.93.0.0/24").unwrap().overlaps(&pool));
    }

    #[test]
    fn host_routes_parse_procs_little_endian_table() {
        // Whatever the machine has, a parsed route holds its own network address.
        for route in host_routes() {
            assert!(route.contains(route.network), "{route}");
            assert!((1..=32).contains(&route.prefix()), "{route}");
        }
    }
}
