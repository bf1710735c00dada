//! Signal values in frame data, by the DBC's layout and scaling.

mod common;

use can::dbc::{load, parse};
use can::signal::Signal;
use common::*;

fn sig(start_bit: u32, size: u32, little_endian: bool, signed: bool, factor: f64) -> Signal {
    Signal {
        name: "S".into(),
        start_bit,
        size,
        little_endian,
        signed,
        factor,
        offset: 0.0,
        unit: String::new(),
    }
}

#[test]
fn intel_and_motorola_layouts() {
    let mut d = [0u8; 8];
    sig(0, 16, true, false, 1.0).encode(&mut d, f64::from(0x1234));
    assert_eq!(d[..2], [0x34, 0x12], "@1: least significant byte first");
    let mut d = [0u8; 8];
    sig(7, 16, false, false, 1.0).encode(&mut d, f64::from(0x1234));
    assert_eq!(d[..2], [0x12, 0x34], "@0 from bit 7: most significant byte first");
    assert_eq!(sig(7, 16, false, false, 1.0).decode(&d), f64::from(0x1234));
    // A 4-bit Intel field at bit 12 leaves its neighbours alone.
    let mut d = [0xff; 8];
    sig(12, 4, true, false, 1.0).encode(&mut d, 5.0);
    assert_eq!(d[1], 0x5f);
}

#[test]
fn scaling_sign_and_saturation() {
    let s = sig(16, 16, true, true, 0.01);
    let mut d = [0u8; 8];
    s.encode(&mut d, -1.0);
    assert_eq!(d[2..4], [0x9c, 0xff], "-100 in two's complement");
    assert_eq!(s.decode(&d), -1.0);
    s.encode(&mut d, 1e9);
    assert_eq!(s.decode(&d), 327.67, "saturates at the largest raw value");
    s.encode(&mut d, f64::NAN);
    assert_eq!(s.decode(&d), 0.0);
    let u = sig(0, 8, true, false, 1.0);
    u.encode(&mut d, -3.0);
    assert_eq!(u.decode(&d), 0.0, "unsigned saturates at 0");
}

#[test]
fn vehicle_signals_round_trip() {
    let ms = load(&config("vehicle.dbc")).unwrap();
    let find = |name: &str| ms.iter().find(|m| m.name == name).unwrap();
    let wheels = find("WheelSpeeds");
    let mut d = [0u8; 8];
    for (i, name) in ["WheelSpeedFL", "WheelSpeedFR", "WheelSpeedRL", "WheelSpeedRR"].iter().enumerate() {
        wheels.signal(name).unwrap().encode(&mut d, 90.0 + i as f64);
    }
    for (i, name) in ["WheelSpeedFL", "WheelSpeedFR", "WheelSpeedRL", "WheelSpeedRR"].iter().enumerate() {
        let s = wheels.signal(name).unwrap();
        assert_eq!(s.unit, "km/h");
        assert!((s.decode(&d) - (90.0 + i as f64)).abs() <= 0.005, "{name}");
    }
    let yaw = find("YawRate").signal("YawRate").unwrap();
    let mut d = [0u8; 8];
    yaw.encode(&mut d, -12.34);
    assert!((yaw.decode(&d) + 12.34).abs() < 1e-9);
    assert_eq!(yaw.unit, "deg/s");
    let temp = find("EngineTemps").signal("CoolantTemp").unwrap();
    temp.encode(&mut d, 90.0);
    assert_eq!((d[0], temp.decode(&d)), (130, 90.0), "offset -40");
}

#[test]
fn a_signal_outside_the_data_is_an_error_at_its_line() {
    let text = "VERSION \"\"\n\nBU_: A\n\nBO_ 416 M: 2 A\n SG_ Ok : 0|8@1+ (1,0) [0|255] \"\" A\n \
                SG_ Far : 12|8@1+ (1,0) [0|255] \"\" A\n\nBA_DEF_DEF_ \"GenMsgCycleTime\" 10;\n";
    let e = parse(text, "s.dbc").unwrap_err().to_string();
    assert_eq!(e, "s.dbc:7:2: message M: signal Far: bits past the 2 data bytes");
    let zero = text.replace("12|8@1+ (1,0)", "8|8@1+ (0,0)");
    let e = parse(&zero, "s.dbc").unwrap_err().to_string();
    assert!(e.starts_with("s.dbc:7:2: message M: signal Far: factor 0"), "{e}");
    assert_eq!(parse(&text.replace("12|8", "8|8"), "s.dbc").unwrap()[0].signals.len(), 2);
}
