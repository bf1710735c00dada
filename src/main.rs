//! `epochfuse`: parse the command line, run it, print one line on failure.

use clap::error::ErrorKind;
use clap::Parser;

fn main() {
    let cli = match epochfuse::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(&e),
    };
    if let Err(e) = epochfuse::run(cli) {
        eprintln!("epochfuse: error: {e}");
        std::process::exit(e.code);
    }
}

/// Help and version go out as clap writes them; a usage error is one line on stderr and
/// exit 2, like every other bad input.
fn usage_error(e: &clap::Error) -> ! {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!(
                "epochfuse: error: no command given; start with `epochfuse drive`, or see `epochfuse --help`"
            );
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("epochfuse: error: {first} (see --help)");
        }
    }
    std::process::exit(epochfuse::error::EXIT_INPUT)
}
