//! Rate limits on what clients send: token buckets per connection and per
//! source address, in messages and in bytes per second.
//!
//! A client over its limit is closed with 1008 ("rate limit exceeded"):
//! the hub does not spend more on one client than the limits allow, and a
//! client that knows it was cut off can slow down and reconnect, where
//! silently dropped messages would look like loss.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A rate: so many units per second, with a burst of one second's worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    /// Messages per second; 0 is no limit.
    pub messages: u32,
    /// Bytes per second; 0 is no limit.
    pub bytes: u64,
}

impl Rate {
    /// No limit at all.
    pub const UNLIMITED: Rate = Rate {
        messages: 0,
        bytes: 0,
    };

    pub(crate) fn is_unlimited(&self) -> bool {
        self.messages == 0 && self.bytes == 0
    }
}

/// One token bucket: holds at most `burst` tokens, refilled at `rate` a
/// second.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn take(&mut self, amount: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
        if self.tokens < amount {
            return false;
        }
        self.tokens -= amount;
        true
    }
}

/// The buckets of one limit (a connection's, or an address's).
#[derive(Debug)]
pub(crate) struct Limiter {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
}

impl Limiter {
    pub fn new(rate: Rate, now: Instant) -> Limiter {
        Limiter {
            messages: (rate.messages > 0).then(|| Bucket::new(f64::from(rate.messages), now)),
            bytes: (rate.bytes > 0).then(|| Bucket::new(rate.bytes as f64, now)),
        }
    }

    /// Takes one message of `len` bytes; false if over the rate. A message
    /// refused takes nothing from either bucket.
    pub fn allow(&mut self, len: usize, now: Instant) -> bool {
        let messages_ok = self.messages.as_mut().is_none_or(|b| b.take(1.0, now));
        if !messages_ok {
            return false;
        }
        let bytes_ok = self.bytes.as_mut().is_none_or(|b| b.take(len as f64, now));
        if !bytes_ok {
            // Give the message token back: it was not used.
            if let Some(messages) = &mut self.messages {
                messages.tokens += 1.0;
            }
        }
        bytes_ok
    }
}

/// The address that limits per address count under: IPv4 addresses as
/// they are, IPv6 by their /64 (one host usually holds a whole /64, and
/// would otherwise have 2^64 addresses to spread over).
pub fn address_group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// The limiters shared by the connections from one address, each removed
/// when the last of its connections leaves.
#[derive(Default)]
pub(crate) struct AddressLimiters {
    limiters: Mutex<HashMap<IpAddr, Arc<Mutex<Limiter>>>>,
}

impl AddressLimiters {
    /// The limiter of `address`, made if it is the first connection.
    pub fn get(&self, address: IpAddr, rate: Rate) -> Arc<Mutex<Limiter>> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        limiters
            .entry(address)
            .or_insert_with(|| Arc::new(Mutex::new(Limiter::new(rate, Instant::now()))))
            .clone()
    }

    /// Gives back a connection's share; the last one removes the limiter.
    pub fn release(&self, address: IpAddr, limiter: Arc<Mutex<Limiter>>) {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        // The map holds one reference and `limiter` another.
        if Arc::strong_count(&limiter) == 2 {
            limiters.remove(&address);
        }
    }
}

/// What one connection is limited by: its own rate and its address's
/// (`HubConfig::rate` and `rate_per_address`). Made by
/// [`Hub::rate_limits`](crate::Hub::rate_limits) for connections the
/// application serves itself; the hub's own connections have theirs.
pub struct ConnectionLimits<'a> {
    own: Option<Limiter>,
    shared: Option<(IpAddr, Arc<Mutex<Limiter>>)>,
    addresses: &'a AddressLimiters,
}

impl<'a> ConnectionLimits<'a> {
    pub(crate) fn new(
        own: Rate,
        per_address: Rate,
        address: Option<IpAddr>,
        addresses: &'a AddressLimiters,
    ) -> Self {
        let now = Instant::now();
        let shared = match address {
            Some(address) if !per_address.is_unlimited() => {
                let address = address_group(address);
                Some((address, addresses.get(address, per_address)))
            }
            _ => None,
        };
        ConnectionLimits {
            own: (!own.is_unlimited()).then(|| Limiter::new(own, now)),
            shared,
            addresses,
        }
    }

    /// Whether one more message of `len` bytes is within the limits.
    pub fn allow(&mut self, len: usize) -> bool {
        if self.own.is_none() && self.shared.is_none() {
            return true;
        }
        let now = Instant::now();
        let own_ok = self.own.as_mut().is_none_or(|own| own.allow(len, now));
        own_ok
            && self.shared.as_ref().is_none_or(|(_, shared)| {
                shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .allow(len, now)
            })
    }
}

impl Drop for ConnectionLimits<'_> {
    fn drop(&mut self) {
        if let Some((address, limiter)) = self.shared.take() {
            self.addresses.release(address, limiter);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let start = Instant::now();
        let mut limiter = Limiter::new(
            Rate {
                messages: 10,
                bytes: 0,
            },
            start,
        );
        assert!((0..10).all(|_| limiter.allow(1, start)));
        assert!(!limiter.allow(1, start));
        let later = start + Duration::from_millis(500);
        assert!((0..5).all(|_| limiter.allow(1, later)));
        assert!(!limiter.allow(1, later));
    }

    #[test]
    fn bytes_are_limited_and_a_refused_message_costs_nothing() {
        let start = Instant::now();
        let mut limiter = Limiter::new(
            Rate {
                messages: 2,
                bytes: 100,
            },
            start,
        );
        assert!(!limiter.allow(101, start), "larger than a second's bytes");
        assert!(limiter.allow(60, start));
        assert!(!limiter.allow(60, start));
        assert!(
            limiter.allow(40, start),
            "the refused message took no token"
        );
        assert!(!limiter.allow(0, start), "two messages a second");
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_group(a), address_group(b));
        assert_ne!(address_group(a), address_group(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_group(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn an_address_limiter_is_shared_and_removed_with_its_last_connection() {
        let addresses = AddressLimiters::default();
        let rate = Rate {
            messages: 3,
            bytes: 0,
        };
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let mut a = ConnectionLimits::new(Rate::UNLIMITED, rate, Some(ip), &addresses);
        let mut b = ConnectionLimits::new(Rate::UNLIMITED, rate, Some(ip), &addresses);
        assert!(a.allow(1) && b.allow(1) && a.allow(1));
        assert!(!b.allow(1), "three a second from the address, together");
        drop(a);
        assert_eq!(addresses.limiters.lock().unwrap().len(), 1);
        drop(b);
        assert!(addresses.limiters.lock().unwrap().is_empty());
    }
}
