//! `epochfuse can ...`: the vehicle bus. `can analyze FILE.dbc [--bitrate BPS] [--json]`
//! prints worst-case response times (Davis et al. 2007) as a table or JSON; exit 1 when a
//! message can miss its deadline, 2 (one line, `file:line:column`) for bad input.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::{self, CliError};

/// `epochfuse can ...`.
#[derive(Debug, Subcommand)]
pub enum CanCommand {
    /// Worst-case response time of every message of a DBC file (Davis, Burns, Bril,
    /// Lukkien 2007), with worst-case bit stuffing; exit 1 if one can miss its deadline.
    Analyze(CanAnalyzeArgs),
}

/// `epochfuse can analyze`.
#[derive(Debug, Args)]
pub struct CanAnalyzeArgs {
    /// The bus description: periods from GenMsgCycleTime, optional GenMsgDeadline and
    /// GenMsgJitter (ms), e.g. configs/can/vehicle.dbc.
    #[arg(value_name = "FILE.dbc")]
    pub file: PathBuf,
    /// Bus speed, bit/s (10000..=1000000).
    #[arg(long, value_name = "BPS", default_value_t = 500_000)]
    pub bitrate: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `can` subcommand.
///
/// # Errors
/// As [`analyze`].
pub fn run(command: &CanCommand) -> Result<(), CliError> {
    match command {
        CanCommand::Analyze(a) => analyze(a),
    }
}

/// Prints the analysis of `args.file`.
///
/// # Errors
/// Exit 2 for a bad file or bit rate; exit 1, after printing the report, when a message can
/// miss its deadline.
pub fn analyze(args: &CanAnalyzeArgs) -> Result<(), CliError> {
    let (text, verdict) = render(args)?;
    error::out(&text);
    verdict
}

/// The report text and the verdict, without printing.
fn render(args: &CanAnalyzeArgs) -> Result<(String, Result<(), CliError>), CliError> {
    let bitrate = can::Bitrate::new(args.bitrate).map_err(|e| CliError::input(format!("--bitrate: {e}")))?;
    let messages = can::dbc::load(&args.file).map_err(|e| CliError::input(e.to_string()))?;
    if messages.is_empty() {
        // It would "analyse" as 0 % utilised and schedulable.
        return Err(CliError::input(format!(
            "{}: no messages (BO_ lines) to analyse: a DBC without frames describes no bus",
            args.file.display()
        )));
    }
    let report = can::report::analyze(&messages, bitrate);
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&report).map_err(|e| CliError::internal(e.to_string()))?;
        s.push('\n');
        s
    } else {
        report.table()
    };
    let misses: Vec<String> = report
        .misses()
        .map(|m| match m.wcrt_us {
            Some(r) => format!("{} ({:#x}) {r:.1} µs > {:.3} ms", m.name, m.id, m.deadline_ms),
            None => format!("{} ({:#x}) unbounded", m.name, m.id),
        })
        .collect();
    let verdict = if misses.is_empty() {
        Ok(())
    } else {
        Err(CliError::invariant(format!(
            "{}: {} of {} messages can miss their deadline: {}",
            args.file.display(),
            misses.len(),
            report.messages.len(),
            misses.join(", ")
        )))
    };
    Ok((text, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{EXIT_INPUT, EXIT_INVARIANT};

    fn args(file: &str, bitrate: u32, json: bool) -> CanAnalyzeArgs {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/can").join(file);
        CanAnalyzeArgs { file, bitrate, json }
    }

    #[test]
    fn the_vehicle_bus_passes_with_a_table() {
        let (text, verdict) = render(&args("vehicle.dbc", 500_000, false)).unwrap();
        assert!(verdict.is_ok());
        assert!(text.starts_with("bus 500000 bit/s, utilisation "), "{text}");
        assert!(
            text.lines().any(|l| l.contains("0x1a0") && l.contains("WheelSpeeds") && l.ends_with("yes")),
            "{text}"
        );
    }

    #[test]
    fn the_counter_example_fails_with_exit_1_and_json() {
        let (text, verdict) = render(&args("davis2007.dbc", 125_000, true)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["messages"][2]["name"], "C");
        assert_eq!(json["messages"][2]["wcrt_us"], 3500.0);
        assert_eq!(json["messages"][2]["schedulable"], false);
        let e = verdict.unwrap_err();
        assert_eq!(e.code, EXIT_INVARIANT);
        assert!(
            e.message.ends_with("1 of 3 messages can miss their deadline: C (0x3) 3500.0 µs > 3.250 ms"),
            "{e}"
        );
    }

    #[test]
    fn an_overloaded_bus_fails_and_at_default_rate_so_does_nothing_else() {
        let (_, verdict) = render(&args("overloaded.dbc", 500_000, false)).unwrap();
        assert_eq!(verdict.unwrap_err().code, EXIT_INVARIANT);
        // The counter-example at 500 kbit/s: frames take a quarter of the time; all pass.
        assert!(render(&args("davis2007.dbc", 500_000, false)).unwrap().1.is_ok());
    }

    #[test]
    fn bad_input_is_exit_2_with_one_line() {
        let e = render(&args("vehicle.dbc", 5_000_000, false)).unwrap_err();
        assert_eq!(e.code, EXIT_INPUT);
        assert!(e.message.starts_with("--bitrate: bit rate 5000000"), "{e}");
        let e = render(&args("missing.dbc", 500_000, false)).unwrap_err();
        assert_eq!(e.code, EXIT_INPUT);
        let dir = std::env::temp_dir().join(format!("epochfuse-can-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.dbc");
        std::fs::write(&bad, "VERSION \"\"\n\nBU_: A\n\nBO_ 1 M: 8 A\n SG_ S : 0|8@1+ (1,0 [0|1] \"\" A\n")
            .unwrap();
        let e = render(&CanAnalyzeArgs { file: bad.clone(), bitrate: 500_000, json: false }).unwrap_err();
        assert_eq!(e.code, EXIT_INPUT);
        assert!(e.message.starts_with(&format!("{}:6:", bad.display())), "{e}");
        assert!(!e.message.contains('\n'));
        // An empty file, or only the independent-signals pseudo-message: no bus to analyse.
        for text in ["", "VERSION \"\"\n\nBO_ 3221225472 VECTOR__INDEPENDENT_SIG_MSG: 0 Vector__XXX\n"] {
            std::fs::write(&bad, text).unwrap();
            let e = render(&CanAnalyzeArgs { file: bad.clone(), bitrate: 500_000, json: false }).unwrap_err();
            assert_eq!(e.code, EXIT_INPUT);
            assert!(e.message.contains("no messages"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
