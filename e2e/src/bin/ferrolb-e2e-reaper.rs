//! `ferrolb-e2e-reaper <topology prefix>`: waits for the test process that claimed the topology
//! to end, then removes what it left: processes (containers of real nodes included), mounts,
//! namespaces, links and files. A test binary starts it, detached, beside a world shared by its
//! tests, which lives in a static and is never dropped.

fn main() {
    let Some(prefix) = std::env::args().nth(1) else {
        eprintln!("usage: ferrolb-e2e-reaper <topology prefix>");
        std::process::exit(2);
    };
    match ferrolb_e2e::topology::reap_after_owner(&prefix) {
        Ok(removed) => eprintln!("ferrolb-e2e-reaper: {prefix}: removed {removed:?}"),
        Err(e) => {
            eprintln!("ferrolb-e2e-reaper: {prefix}: {e}");
            std::process::exit(1);
        }
    }
    ferrolb_e2e::controlplane::cleanup_leftovers();
}
