//! What the model found, and the duplicate, as fixed sequences.

use super::*;

/// The steps behind the duplicate: `gb`'s range, with its holder's address, moves to
/// `ga`, whose own address is taken; the next Service of `ga` must not get the held one.
#[test]
fn model_replays_a_range_moved_under_a_holder() {
    run(&[
        Op::SetGroup(1, pools(&[(0, 0)], &[], false)),
        Op::SetGroup(2, pools(&[(4, 5)], &[], false)),
        Op::SetSvc(0, user_svc(Some(2), 0, None, 0)),
        Op::SetSvc(2, user_svc(Some(1), 0, None, 0)),
        Op::MoveRange {
            from: 2,
            to: 1,
            v6: false,
        },
        Op::SetSvc(1, user_svc(Some(1), 0, None, 0)),
        Op::Restart,
    ]);
}

fn user_svc(group: Option<usize>, policy: u8, key: Option<u8>, port: u8) -> SvcSpec {
    SvcSpec {
        group,
        policy,
        v6_first: false,
        request_v4: None,
        request_v6: None,
        key,
        port,
        load_balancer: true,
    }
}

fn pools(v4: &[(u8, u8)], v6: &[(u8, u8)], virtual_: bool) -> GroupSpec {
    GroupSpec {
        v4: v4.to_vec(),
        v6: v6.to_vec(),
        virtual_,
    }
}

/// The OutOfPoolAllocations message listed users in book order, which differs between a pass
/// where a Service joins a shared address and the next one.
#[test]
fn users_of_an_out_of_pool_shared_address_in_a_stable_order() {
    run(&[
        Op::SetGroup(2, pools(&[], &[(0, 0)], false)),
        Op::SetSvc(1, user_svc(Some(2), 2, Some(1), 1)),
        Op::SetSvc(0, user_svc(Some(2), 1, Some(1), 0)),
        Op::SetGroup(2, pools(&[(0, 1)], &[(0, 0)], true)),
    ]);
}

/// The older of two sharers dropped its key and the younger, unedited, moved.
#[test]
fn a_sharer_dropping_its_key_moves_not_its_partner() {
    run(&[
        Op::SetSvc(2, user_svc(Some(1), 0, Some(0), 0)),
        Op::SetSvc(0, user_svc(Some(1), 1, Some(0), 1)),
        Op::SetGroup(0, pools(&[], &[], false)),
        Op::SetGroup(1, pools(&[(0, 1)], &[], false)),
        Op::SetSvc(2, user_svc(Some(1), 0, None, 0)),
    ]);
}

/// Exhausted named the family a dual-stack attempt happened to try first; a pool that is all
/// block edges (capacity 0) did not count as full.
#[test]
fn exhausted_by_the_state_not_by_the_order_families_were_tried() {
    let v6_first = |policy| SvcSpec {
        v6_first: true,
        ..user_svc(Some(2), policy, None, 0)
    };
    run(&[
        Op::SetSvc(0, v6_first(1)),
        Op::SetSvc(1, v6_first(0)),
        Op::SetGroup(2, pools(&[(7, 7)], &[(13, 13)], true)),
    ]);
}

/// A family kept only because the Service held it was still offered for a new address after
/// the Service gave that address up ("no pool" in Exhausted, for one pass).
#[test]
fn a_family_given_up_is_not_offered_again_without_a_pool() {
    run(&[
        Op::SetSvc(0, user_svc(Some(1), 1, Some(1), 2)),
        Op::SetGroup(1, pools(&[(0, 1)], &[(0, 1)], false)),
        Op::SetSvc(3, user_svc(Some(1), 0, Some(1), 0)),
        Op::SetGroup(1, pools(&[], &[], false)),
        Op::SetSvc(3, user_svc(Some(1), 0, None, 0)),
    ]);
}

#[test]
fn a_group_that_gives_out_nothing_blocks_nobody_and_what_it_holds_stays_held() {
    run(&[
        Op::SetGroup(0, pools(&[(0, 3)], &[], false)),
        Op::SetSvc(0, user_svc(None, 0, None, 0)),
        Op::Reverse(0, false),
        Op::SetGroup(1, pools(&[(0, 5)], &[], false)),
        Op::SetSvc(1, user_svc(Some(1), 0, None, 0)),
        Op::Restart,
        Op::Reverse(0, false),
        Op::SetSvc(2, user_svc(None, 0, None, 0)),
        Op::SetSvc(3, user_svc(Some(1), 0, None, 0)),
    ]);
}

/// A Service leaves a shared address of an overlapped group for auto-assign in the older,
/// overlapping group.
#[test]
fn a_sharer_leaving_for_the_group_that_overlaps_its_own() {
    run(&[
        Op::SetGroup(0, pools(&[], &[], false)),
        Op::SetSvc(1, user_svc(Some(2), 1, Some(1), 0)),
        Op::SetGroup(2, pools(&[], &[(0, 0)], false)),
        Op::SetSvc(0, user_svc(Some(2), 1, Some(1), 1)),
        Op::SetGroup(0, pools(&[], &[(0, 0), (5, 8)], false)),
        Op::SetSvc(
            0,
            SvcSpec {
                v6_first: true,
                ..user_svc(None, 0, None, 0)
            },
        ),
    ]);
}
