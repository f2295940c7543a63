//! Property tests for the wire format: every packet round-trips, and no byte
//! string makes the decoder panic.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use sequencer::wire::{
    Ballot, Body, DATA_OVERHEAD, Entry, EntryBody, FLAG_NEED_ACK, FLAG_RETRANS, FLAG_SYNC, GroupParams,
    Header, Item, PORT_MASK, Packet, View, ViewMember, WelcomeMember,
};

fn ballot() -> impl Strategy<Value = Ballot> {
    (any::<u32>(), any::<u32>()).prop_map(|(round, id)| Ballot { round, id })
}

fn flags() -> impl Strategy<Value = u8> {
    (0u8..8).prop_map(|f| f & (FLAG_NEED_ACK | FLAG_RETRANS | FLAG_SYNC))
}

fn pairs() -> impl Strategy<Value = Vec<(u32, u64)>> {
    vec((any::<u32>(), any::<u64>()), 0..5)
}

fn entry() -> impl Strategy<Value = Entry> {
    let body = prop_oneof![
        vec(any::<u8>(), 0..64).prop_map(EntryBody::App),
        any::<u64>().prop_map(|addr| EntryBody::Join { addr }),
        any::<u32>().prop_map(|successor| EntryBody::Leave { successor }),
        any::<u32>().prop_map(|member| EntryBody::Remove { member }),
        (any::<u32>(), pairs()).prop_map(|(new_inc, removed)| EntryBody::Reset { new_inc, removed }),
    ];
    (any::<u32>(), any::<u32>(), body).prop_map(|(sender, msg_id, body)| Entry { sender, msg_id, body })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        entry().prop_map(Item::Entry),
        (any::<u32>(), any::<u32>()).prop_map(|(sender, msg_id)| Item::Bb { sender, msg_id }),
    ]
}

fn view() -> impl Strategy<Value = View> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        0u64..1000,
        0u64..1000,
        0u64..1000,
        vec(
            (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(id, addr, ack)| ViewMember {
                id,
                addr,
                ack,
            }),
            0..5,
        ),
        pairs(),
    )
        .prop_map(|(old_inc, new_inc, sequencer, a, b, c, members, removed)| {
            let mut v = [a, b, c];
            v.sort();
            View { old_inc, new_inc, sequencer, min_d: v[0], floor: v[1], base: v[2], members, removed }
        })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (any::<u32>(), any::<u64>(), any::<bool>(), vec(any::<u8>(), 0..64))
            .prop_map(|(msg_id, ack, leave, payload)| Body::Send { msg_id, ack, leave, payload }),
        (any::<u32>(), any::<u64>(), vec(any::<u8>(), 0..64))
            .prop_map(|(msg_id, ack, payload)| { Body::BbData { msg_id, ack, payload } }),
        (0..u64::MAX / 2, any::<u64>(), any::<u64>(), flags(), vec(item(), 1..5)).prop_map(
            |(seq, accepted, stable, flags, items)| Body::Data { seq, accepted, stable, flags, items }
        ),
        (any::<u64>(), any::<u64>(), any::<u64>(), flags()).prop_map(
            |(next_seq, accepted, stable, flags)| Body::Status { next_seq, accepted, stable, flags }
        ),
        (any::<u64>(), any::<u64>(), flags()).prop_map(|(ack, stable, flags)| Body::Ack {
            ack,
            stable,
            flags
        }),
        (0u64..1000, 0u64..1000, any::<bool>()).prop_map(|(a, b, any)| Body::Retrans {
            from: a.min(b),
            to: a.max(b),
            any
        }),
        any::<[u8; 10]>().prop_map(|credential| Body::JoinReq { credential }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            (any::<u16>(), any::<u16>(), 1u32.., any::<u32>(), any::<u32>(), any::<u16>()),
            vec(
                (any::<u32>(), any::<u64>(), any::<u32>())
                    .prop_map(|(id, addr, last_msg_id)| { WelcomeMember { id, addr, last_msg_id } }),
                0..5
            ),
            any::<[u8; 6]>(),
        )
            .prop_map(|(member_id, join_seq, sequencer, accepted, stable, p, members, secret)| {
                Body::Welcome {
                    member_id,
                    join_seq,
                    sequencer,
                    accepted,
                    stable,
                    params: GroupParams {
                        resilience: p.0,
                        max_members: p.1,
                        history_size: p.2,
                        max_message_size: p.3,
                        bb_threshold: p.4,
                        min_reset_members: p.5,
                    },
                    members,
                    secret,
                }
            }),
        Just(Body::JoinDenied),
        Just(Body::NotMember),
        any::<u64>().prop_map(|recv_upto| Body::ResetStatus { recv_upto }),
        ballot().prop_map(|ballot| Body::Prepare { ballot }),
        (
            ballot(),
            (any::<u64>(), any::<u64>()),
            any::<u64>(),
            vec((0u64..100, 0u64..100).prop_map(|(a, b)| (a.min(b), a.max(b))), 0..4),
            option::of((ballot(), view())),
            option::of(any::<u64>())
        )
            .prop_map(|(ballot, (delivered, joined), recv_upto, held, accepted, seq_accepted)| {
                Body::Promise { ballot, delivered, joined, recv_upto, held, accepted, seq_accepted }
            }),
        ballot().prop_map(|ballot| Body::Nack { ballot }),
        (ballot(), view()).prop_map(|(ballot, view)| Body::Accept { ballot, view }),
        ballot().prop_map(|ballot| Body::Accepted { ballot }),
        view().prop_map(|view| Body::Decided { view }),
    ]
}

fn packet() -> impl Strategy<Value = Packet> {
    (0..=PORT_MASK, any::<u32>(), any::<u32>(), body())
        .prop_map(|(port, inc, src, body)| Packet { header: Header { port, inc, src }, body })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn round_trip(p in packet()) {
        let bytes = p.encode();
        prop_assert_eq!(Packet::decode(&bytes), Ok(p));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = Packet::decode(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(p in packet(), pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let mut bytes = p.encode();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let _ = Packet::decode(&bytes);
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(q) = Packet::decode(&bytes) {
            // Whatever decodes must encode back to the same bytes (canonical form).
            prop_assert_eq!(q.encode(), bytes);
        }
    }

    #[test]
    fn truncation_is_an_error(p in packet(), cut in any::<usize>()) {
        let bytes = p.encode();
        let n = cut % bytes.len();
        prop_assert!(Packet::decode(&bytes[..n]).is_err());
    }

    #[test]
    fn item_lengths_are_exact(items in vec(item(), 1..5)) {
        let p = Packet {
            header: Header { port: 1, inc: 0, src: 0 },
            body: Body::Data { seq: 0, accepted: 0, stable: 0, flags: 0, items: items.clone() },
        };
        let expected: usize = DATA_OVERHEAD + items.iter().map(Item::encoded_len).sum::<usize>();
        prop_assert_eq!(p.encode().len(), expected);
    }

    #[test]
    fn member_survives_garbage(bytes in vec(any::<u8>(), 0..200)) {
        let mut m = sequencer::GroupMember::create_group(Default::default(), 7, amoeba_abi::Check([7; 6]), 1, 0);
        let _ = m.handle_packet(10, 2, &bytes);
        while m.poll_transmit().is_some() {}
    }
}

#[test]
fn data_needs_an_item_and_seq_room() {
    let data = |seq, items: Vec<Item>| Packet {
        header: Header { port: 1, inc: 0, src: 0 },
        body: Body::Data { seq, accepted: 0, stable: 0, flags: 0, items },
    };
    assert!(Packet::decode(&data(0, vec![]).encode()).is_err());
    let bb = || Item::Bb { sender: 1, msg_id: 2 };
    assert!(Packet::decode(&data(u64::MAX, vec![bb()]).encode()).is_err());
    assert!(Packet::decode(&data(u64::MAX - 1, vec![bb()]).encode()).is_ok());
}

#[test]
fn version_1_packets_are_refused() {
    let mut bytes = Packet { header: Header { port: 1, inc: 0, src: 0 }, body: Body::JoinDenied }.encode();
    bytes[2] = 1;
    assert_eq!(Packet::decode(&bytes), Err(sequencer::DecodeError::BadVersion(1)));
}
