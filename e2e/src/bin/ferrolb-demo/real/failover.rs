//! The failover step: the holder's agent pod is deleted while the client keeps requesting the
//! address; the measured gap and every change of holder are printed.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::bail;

use super::probe::{NodeLan, Probe, summarize};
use super::{Demo, url};

impl Demo {
    pub(super) async fn failover(&self, addr: IpAddr, client: &str) -> anyhow::Result<()> {
        let topo = self.c.topo();
        let holder = self
            .wait(
                "one holder of the local address",
                Duration::from_secs(60),
                || match self.holders(addr).as_slice() {
                    [one] => Ok(*one),
                    other => Err(format!("{addr} held by nodes {other:?}")),
                },
            )
            .await?;
        let holder_name = topo.node(holder).ns_name().to_string();
        let (pod, _) = self.agent_pod(&holder_name)?;
        let target = url(addr);
        println!(
            "{addr} is on {holder_name}. While its agent pod {pod} is deleted and the DaemonSet\n\
             makes a new one, the client requests\n  {target}\n\
             every 100 ms (curl -m 1), and the demo samples which nodes hold the address (ip addr\n\
             in each node namespace)."
        );
        let nodes = topo
            .nodes()
            .iter()
            .map(|n| NodeLan {
                ns: n.ns_name().to_string(),
                dev: n.lan_ifname().to_string(),
            })
            .collect();
        let probe = Probe::start(client, &target, &addr.to_string(), nodes);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let deleted_at = probe.elapsed();
        let deleted = self.kubectl(&["delete", "pod", "-n", "ferrolb-system", &pod]);
        let ready = self
            .wait(
                &format!("a new agent pod Ready on {holder_name}"),
                Duration::from_secs(240),
                || self.new_agent_ready(&holder_name, &pod),
            )
            .await;
        let ready_at = probe.elapsed();
        // Long enough for the new agent to take part in the election again.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let samples = probe.finish();
        deleted?;
        ready?;
        let s = summarize(&samples);
        let rel = |t: Duration| t.as_secs_f64() - deleted_at.as_secs_f64();
        println!(
            "\nmeasured (seconds since the delete; the new agent pod was Ready at {:.1} s):",
            rel(ready_at)
        );
        for (at, holders) in &s.holder_changes {
            let who = if holders.is_empty() {
                "no node".to_string()
            } else {
                holders.join(" and ")
            };
            println!("  {:>6.1} s  {addr} on {who}", rel(*at));
        }
        let end = samples.last().map_or(Duration::ZERO, |x| x.at);
        match (s.longest_gap, s.gap_length(end)) {
            (Some((from, to)), Some(len)) => println!(
                "{} of {} requests failed; the longest time between two answered requests: {:.1} s (from {:.1} s to {})",
                s.failed,
                s.sent,
                len.as_secs_f64(),
                rel(from),
                to.map_or("the end, never answered again".into(), |t| format!(
                    "{:.1} s",
                    rel(t)
                ))
            ),
            _ => println!(
                "{} requests, every one answered; the longest time between two answers: {:.1} s",
                s.sent,
                s.longest_between_answers.as_secs_f64()
            ),
        }
        println!(
            "{}",
            if s.two_holders {
                "two nodes held the address at once in some sample"
            } else {
                "never two nodes holding the address at once"
            }
        );
        self.kubectl(&["get", "pods", "-n", "ferrolb-system", "-o", "wide"])?;
        self.settled("web", None).await;
        self.ferrolb(&["where", "web"]);
        let script = format!("for i in 1 2 3; do curl -s -m 3 {target}; done");
        self.in_ns(&["ip", "netns", "exec", client, "sh", "-c", &script], "web");
        if matches!(s.longest_gap, Some((_, None))) {
            bail!("{addr} was not answered again after the failover");
        }
        Ok(())
    }
}
