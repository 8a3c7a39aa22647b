use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use flood_models::sign::SigningKey;
use rand::TryRngCore;

/// Make an ed25519 key pair for signing adapters.
///
/// Writes the secret key to OUT (64 hex digits, readable by you only: keep it on the
/// workstation) and the public key to OUT.pub, which devices list in their trust file
/// (`floodrt … --trust OUT.pub`; several keys: one per line).
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the secret key; the public key goes to the same path plus `.pub`.
    #[arg(long, value_name = "KEY")]
    out: PathBuf,
    /// Replace existing key files (adapters signed with the old key stop verifying).
    #[arg(long)]
    force: bool,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let mut public_path = args.out.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    for path in [&args.out, &public_path] {
        if path.exists() && !args.force {
            anyhow::bail!("{} exists; pass --force to replace it (adapters signed with the old key stop verifying)", path.display());
        }
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut secret)
        .context("the operating system gave no randomness")?;
    let key = SigningKey::from_bytes(&secret);
    write_private(&args.out, &format!("{}\n", key.to_hex()))
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    let public = key.public();
    let text = format!(
        "# flood adapter signing key {}\n{}\n",
        public.key_id(),
        public.to_hex()
    );
    std::fs::write(&public_path, text)
        .with_context(|| format!("{}: cannot write", public_path.display()))?;
    eprintln!(
        "wrote {} (secret) and {} (public, key id {})",
        args.out.display(),
        public_path.display(),
        public.key_id()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` readable and writable by the owner only (on Unix) before any byte goes in.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
