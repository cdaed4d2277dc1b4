//! This host's own addresses, from the kernel's interface list
//! (getifaddrs). "On this host" is decided here, never by trying a bind,
//! which a sysctl (net.ipv4.ip_nonlocal_bind) can make succeed for any
//! address at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address of every interface of this host, and loopback.
pub fn addresses() -> Vec<IpAddr> {
    let mut found = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a non-null entry of the list getifaddrs returned.
        let current = unsafe { &*entry };
        if !current.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family says its type.
            let family = unsafe { (*current.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET sockaddr is a sockaddr_in.
                let v4 = unsafe { &*(current.ifa_addr as *const libc::sockaddr_in) };
                found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 sockaddr is a sockaddr_in6.
                let v6 = unsafe { &*(current.ifa_addr as *const libc::sockaddr_in6) };
                found.push(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)));
            }
        }
        entry = current.ifa_next;
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Whether an address belongs to this host: any loopback address (the whole
/// 127.0.0.0/8 answers on lo), or an address of one of its interfaces.
pub fn is_own(ip: IpAddr, addresses: &[IpAddr]) -> bool {
    ip.is_loopback() || addresses.contains(&ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_come_from_the_interfaces() {
        let own = addresses();
        assert!(is_own("127.0.0.1".parse().expect("ip"), &own));
        assert!(is_own("127.3.2.1".parse().expect("ip"), &own));
        // TEST-NET-1 (RFC 5737) is never a real host's; nothing is sent.
        assert!(!is_own("192.0.2.1".parse().expect("ip"), &own));
        assert!(!is_own("169.254.169.254".parse().expect("ip"), &own));
    }
}
