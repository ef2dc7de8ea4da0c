//! `own_macs`: the node's own MACs, which a probe's answer never counts as a conflict from.

use super::{iface, world};
use crate::decide::own_macs;

#[test]
fn every_interface_of_the_node_is_its_own_mac() {
    let mut s = world();
    let mut lo = iface(1, "lo", &["127.0.0.1/8"]);
    lo.mac = Some(vec![0; 6]);
    let mut tunnel = iface(5, "wg0", &[]);
    tunnel.mac = None;
    let mut infiniband = iface(6, "ib0", &[]);
    infiniband.mac = Some(vec![0x80; 20]);
    s.kernel.interfaces[0] = lo;
    s.kernel.interfaces.extend([tunnel, infiniband]);
    let mut second_port = iface(7, "eth2", &[]);
    second_port.mac = Some(vec![2, 0xfb, 0, 0, 1, 0xa]);
    s.kernel.interfaces.push(second_port);
    let got: Vec<[u8; 6]> = own_macs(&s.kernel).into_iter().collect();
    assert_eq!(
        got,
        [
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 3],
            [2, 0, 0, 0, 0, 4],
            [2, 0xfb, 0, 0, 1, 0xa],
        ],
        "eth0, eth1, kube-lb0 and the second port; not loopback's zeros, nor what is no MAC-48"
    );
}
