//! Places for connections, counted globally and per source address: the
//! handshakes in progress (each holds a socket until its head arrives or
//! times out) and, optionally, the connections from one address.
//!
//! A slot is taken before any work is done for a new TCP connection and
//! given back when it is dropped, so that clients that open connections
//! and trickle their requests can hold no more than their share of the
//! server's file descriptors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use switchboard_hub::address_group;

/// Counts of places taken, with their limits (0 is no limit).
pub struct Slots {
    max_total: usize,
    max_per_address: usize,
    taken: Mutex<Taken>,
}

#[derive(Default)]
struct Taken {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why a slot was not given.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    Total(usize),
    Address(usize),
}

impl Slots {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max_total,
            max_per_address,
            taken: Mutex::new(Taken::default()),
        })
    }

    /// Takes a place for a connection from `address`, if one is free.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Full> {
        let address = address_group(address);
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if self.max_total > 0 && taken.total >= self.max_total {
            return Err(Full::Total(self.max_total));
        }
        let from_address = taken.per_address.entry(address).or_default();
        if self.max_per_address > 0 && *from_address >= self.max_per_address {
            return Err(Full::Address(self.max_per_address));
        }
        *from_address += 1;
        taken.total += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            address,
        })
    }

    /// How many places are taken.
    pub fn taken(&self) -> usize {
        self.taken.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// A place taken; given back on drop.
pub struct Slot {
    slots: Arc<Slots>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.total -= 1;
        if let Some(count) = taken.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                taken.per_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_total_and_per_address() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert_eq!(slots.take(a).err(), Some(Full::Address(2)));
        let _third = slots.take(b).unwrap();
        assert_eq!(slots.take(b).err(), Some(Full::Total(3)));
        drop(first);
        assert_eq!(slots.taken(), 2);
        assert!(slots.take(a).is_ok(), "a place given back is free again");
    }

    #[test]
    fn zero_is_no_limit() {
        let slots = Slots::new(0, 0);
        let ip: IpAddr = "::1".parse().unwrap();
        let held: Vec<Slot> = (0..100).map(|_| slots.take(ip).unwrap()).collect();
        assert_eq!(slots.taken(), 100);
        drop(held);
        assert_eq!(slots.taken(), 0);
        assert!(slots.taken.lock().unwrap().per_address.is_empty());
    }
}
