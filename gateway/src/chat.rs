//! `garou chat`: a terminal client (placeholder, being written).

/// Arguments of `garou chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {}

/// Run the terminal chat until EOF or /quit.
pub async fn run(_args: ChatArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
