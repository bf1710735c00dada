//! DBC input: timing attributes, the project's DBC files, and one-line errors with positions.

mod common;

use can::dbc::{load, parse, Position, MAX_DBC_BYTES};
use can::report::analyze;
use common::*;

const HEADER: &str = "VERSION \"\"\n\nNS_ :\n\nBS_:\n\nBU_: ECU\n\n";

fn text(body: &str) -> String {
    format!("{HEADER}{body}")
}

#[test]
fn periods_deadlines_and_jitter_come_from_attributes_or_defaults() {
    let dbc = text(
        "BO_ 416 Wheels: 8 ECU\n SG_ S : 0|16@1+ (0.01,0) [0|655.35] \"km/h\" ECU\n\n\
         BO_ 2566844672 Cruise: 6 ECU\n\n\
         BO_ 3221225472 VECTOR__INDEPENDENT_SIG_MSG: 0 Vector__XXX\n\n\
         BA_DEF_ BO_ \"GenMsgCycleTime\" INT 0 10000;\n\
         BA_DEF_ BO_ \"GenMsgDeadline\" FLOAT 0 10000;\n\
         BA_DEF_ BO_ \"GenMsgJitter\" FLOAT 0 10000;\n\
         BA_DEF_DEF_ \"GenMsgCycleTime\" 100;\n\
         BA_ \"GenMsgCycleTime\" BO_ 416 10;\n\
         BA_ \"GenMsgDeadline\" BO_ 416 7.5;\n\
         BA_ \"GenMsgJitter\" BO_ 2566844672 0.25;\n",
    );
    let ms = parse(&dbc, "t.dbc").unwrap();
    assert_eq!(ms.len(), 2, "the independent-signals pseudo-message is not a frame");
    assert_eq!((ms[0].id, ms[0].name.as_str(), ms[0].dlc), (std_id(0x1a0), "Wheels", 8));
    assert_eq!((ms[0].period_ns, ms[0].deadline_ns, ms[0].jitter_ns), (10_000_000, 7_500_000, 0));
    assert_eq!(ms[0].sender, "ECU");
    assert_eq!(ms[1].id, ext_id(0x18fe_f100));
    assert_eq!((ms[1].period_ns, ms[1].deadline_ns, ms[1].jitter_ns), (100_000_000, 100_000_000, 250_000));
}

fn err(body: &str) -> String {
    parse(&text(body), "bad.dbc").unwrap_err().to_string()
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let e = parse(&text("BO_ 416 Wheels: 8 ECU\n SG_ S : 0|16@1+ (0.01,0 [0|1] \"\" ECU\n"), "bad.dbc")
        .unwrap_err();
    assert_eq!(e.position.map(|p| p.line), Some(10), "{e}");
    let line = e.to_string();
    assert!(line.starts_with("bad.dbc:10:"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn a_message_without_period_is_an_error_at_its_line() {
    let e = parse(
        &text("BO_ 416 Wheels: 8 ECU\n\nBO_ 417 Event: 1 ECU\n\nBA_ \"GenMsgCycleTime\" BO_ 416 10;\n"),
        "x.dbc",
    )
    .unwrap_err();
    assert_eq!(e.position, Some(Position { line: 11, column: 1 }), "{e}");
    assert!(e.message.contains("Event") && e.message.contains("GenMsgCycleTime"), "{e}");
}

#[test]
fn bad_timing_values_and_frames_are_errors() {
    let period = "BA_DEF_DEF_ \"GenMsgCycleTime\" 10;\n";
    let e = err(&format!("BO_ 416 W: 8 ECU\n\n{period}BA_ \"GenMsgJitter\" BO_ 416 \"soon\";\n"));
    assert!(e.starts_with("bad.dbc:12:1: attribute GenMsgJitter"), "{e}");
    let e = err(&format!("BO_ 416 W: 8 ECU\n\n{period}BA_ \"GenMsgCycleTime\" BO_ 416 -5;\n"));
    assert!(e.starts_with("bad.dbc:12:1: attribute GenMsgCycleTime: -5"), "{e}");
    let e = err(&format!("BO_ 416 W: 12 ECU\n\n{period}"));
    assert_eq!(e, "bad.dbc:9:1: message W: DLC 12 > 8 (classic CAN)");
    let e = err(&format!("BO_ 416 W: 8 ECU\n\nBO_ 416 V: 8 ECU\n\n{period}"));
    assert!(e.contains("0x1a0 defined twice"), "{e}");
    let e = err(&format!("BO_ 4000 W: 8 ECU\n\n{period}"));
    assert!(e.starts_with("bad.dbc:9:1: message W: identifier 4000 out of range"), "{e}");
}

#[test]
fn files_must_be_regular_and_bounded() {
    let dir = std::env::temp_dir().join(format!("can-dbc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = load(&dir).unwrap_err().to_string();
    assert!(e.ends_with(": not a regular file"), "{e}");
    let big = dir.join("big.dbc");
    std::fs::write(&big, vec![b' '; usize::try_from(MAX_DBC_BYTES).unwrap() + 1]).unwrap();
    let e = load(&big).unwrap_err().to_string();
    assert!(e.contains("larger than"), "{e}");
    let missing = load(&dir.join("missing.dbc")).unwrap_err().to_string();
    assert!(missing.starts_with(&dir.join("missing.dbc").display().to_string()), "{missing}");
    let latin1 = dir.join("latin1.dbc");
    let mut bytes = text("BO_ 416 W: 8 ECU\n\nBA_DEF_DEF_ \"GenMsgCycleTime\" 10;\n").into_bytes();
    bytes.extend(b"CM_ \"Gr\xfc\xdfe\";\n");
    std::fs::write(&latin1, bytes).unwrap();
    assert_eq!(load(&latin1).unwrap().len(), 1, "Windows-1252 comments are read");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_vehicle_bus_is_schedulable_at_a_realistic_load() {
    let ms = load(&config("vehicle.dbc")).unwrap();
    let report = analyze(&ms, rate(500_000));
    assert!((0.30..=0.50).contains(&report.utilization), "{}", report.utilization);
    assert!(report.schedulable(), "{}", report.table());
    let names: Vec<&str> = report.messages.iter().map(|m| m.name.as_str()).collect();
    for ego in ["WheelSpeeds", "YawRate", "SteeringAngle", "BrakeStatus", "GearStatus"] {
        assert!(names.contains(&ego), "{ego} missing");
    }
    assert!(report.messages.iter().any(|m| m.extended), "background traffic includes 29-bit frames");
    let wheels = report.messages.iter().find(|m| m.name == "WheelSpeeds").unwrap();
    assert_eq!((wheels.id, wheels.period_ms, wheels.jitter_ms), (0x1a0, 10.0, 0.5));
}

#[test]
fn the_project_counter_example_and_overloaded_files_are_unschedulable() {
    let davis = analyze(&load(&config("davis2007.dbc")).unwrap(), rate(125_000));
    assert_eq!(davis, analyze(&davis_counter_example(), rate(125_000)));
    let over = analyze(&load(&config("overloaded.dbc")).unwrap(), rate(500_000));
    assert!(!over.schedulable());
    assert_eq!(over.misses().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["FastC", "Slow"]);
}
