//! `cargo xtask bench`: measures the relay over real WebSockets (filled in by the engine work).

pub fn run(_round_trips: u32, _idle_labs: u32) -> anyhow::Result<()> {
    anyhow::bail!("the benchmark needs the socket engine, which is not built yet")
}
