//! How group packets travel on the pool's Ethernet, shared by the nucleus
//! and the host: frames of their own ethertype carrying `to: u64` (0 for the
//! whole group), `from: u64`, then the [`crate::wire`] packet. A member's
//! address is its station's MAC (48 bits) followed by a 16-bit handle, so
//! the MAC to send a unicast packet to is in the address itself.
//!
//! The same holds the other way: a frame is taken only if its `from` address
//! lives on the frame's source MAC. The switch drops frames whose source MAC is
//! not their port's (it is the F-box), so a station can speak only for member
//! addresses on its own MAC. Without this, a station that holds the group key
//! (any member, even one without the send right) could tag packets under the
//! sequencer's address from its own port, and the other members would take its
//! entries as the sequencer's.

use alloc::vec::Vec;

/// Ethertype of group frames.
pub const ETHERTYPE_GROUP: u16 = 0x88B7;
/// Ethernet header plus `to` and `from`.
pub const FRAME_HEADER_LEN: usize = 14 + 16;
const BROADCAST: [u8; 6] = [0xff; 6];

/// The member address of `handle` on the station with `mac`.
pub fn member_address(mac: [u8; 6], handle: u16) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..6].copy_from_slice(&mac);
    u64::from_be_bytes(bytes) | handle as u64
}

/// The MAC of the station a member address lives on.
pub fn station_of(address: u64) -> [u8; 6] {
    let b = address.to_be_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

/// The frame that carries `packet` from member `from` (on station
/// `source_mac`) to `dest`.
pub fn encode_frame(source_mac: [u8; 6], from: u64, dest: crate::Dest, packet: &[u8]) -> Vec<u8> {
    let (mac, to) = match dest {
        crate::Dest::Group => (BROADCAST, 0),
        crate::Dest::Member(address) => (station_of(address), address),
    };
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + packet.len());
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&source_mac);
    frame.extend_from_slice(&ETHERTYPE_GROUP.to_be_bytes());
    frame.extend_from_slice(&to.to_be_bytes());
    frame.extend_from_slice(&from.to_be_bytes());
    frame.extend_from_slice(packet);
    frame
}

/// A received group frame: `(to, from, packet)`; `None` if it is not one, or
/// if its `from` address is not on the frame's source MAC.
pub fn parse_frame(frame: &[u8]) -> Option<(u64, u64, &[u8])> {
    if frame.len() < FRAME_HEADER_LEN || frame[12..14] != ETHERTYPE_GROUP.to_be_bytes() {
        return None;
    }
    let to = u64::from_be_bytes(frame[14..22].try_into().ok()?);
    let from = u64::from_be_bytes(frame[22..30].try_into().ok()?);
    if station_of(from) != frame[6..12] {
        return None;
    }
    Some((to, from, &frame[FRAME_HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dest;

    #[test]
    fn frames_round_trip_and_name_their_station() {
        let mac = [0x52, 0x54, 0, 0xa0, 0, 3];
        let me = member_address(mac, 7);
        assert_eq!(station_of(me), mac);
        let other = member_address([2, 0, 0, 0, 0, 9], 1);
        let frame = encode_frame(mac, me, Dest::Member(other), b"packet");
        assert_eq!(&frame[..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(parse_frame(&frame), Some((other, me, &b"packet"[..])));
        let broadcast = encode_frame(mac, me, Dest::Group, b"");
        assert_eq!(&broadcast[..6], &[0xff; 6]);
        assert_eq!(parse_frame(&broadcast), Some((0, me, &b""[..])));
        assert_eq!(parse_frame(&frame[..20]), None);
        // A `from` on another station than the frame's source: not taken.
        let spoofed = encode_frame([2, 0, 0, 0, 0, 9], me, Dest::Group, b"packet");
        assert_eq!(parse_frame(&spoofed), None);
        assert_eq!(parse_frame(&[0u8; 40]), None);
    }
}
