//! The ego car's signals on the bus: what its ECUs send, computed from the car's motion, and
//! what fusion reads back (speed and yaw rate, for deskewing lidar sweeps).
//!
//! # Contract (signal names of `configs/can/vehicle.dbc`)
//! - Sent from the motion: `WheelSpeedFL/FR/RL/RR` (km/h; left wheels `v − ω·track/2`,
//!   right wheels `v + ω·track/2`), `YawRate` and `ImuYawRate` (deg/s), `LateralAccel`
//!   (`v·ω`, m/s²), `SteeringWheelAngle` (deg, kinematic bicycle model × steering ratio),
//!   `SteeringRatio`, `BrakePressure` (bar), `BrakePedalPressed`, `GearSelected` and
//!   `GearEngaged` (3 = D), `DisplayedSpeed` (km/h), `EngineRunning`. Every signal whose
//!   name ends in `Counter` carries the message's rolling counter; the rest is background
//!   traffic and sends zeros.
//! - Read back: speed = mean of `WheelSpeedRL` and `WheelSpeedRR` (the rear axle's centre,
//!   the vehicle frame's origin), yaw rate = `YawRate`.

use crate::dbc::Message;
use crate::frame::CanId;
use crate::signal::Signal;

/// Distance between the left and right wheels, m.
pub const TRACK_M: f64 = 1.6;
/// Distance between the axles, m.
pub const WHEELBASE_M: f64 = 2.8;
/// Steering wheel angle per road-wheel angle.
pub const STEERING_RATIO: f64 = 15.0;
/// `GearSelected` value of drive.
pub const GEAR_DRIVE: u8 = 3;

/// The car's state at one instant, as its sensors see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EgoState {
    /// Speed of the rear axle's centre, m/s.
    pub speed_mps: f64,
    /// Yaw rate, rad/s, counter-clockwise positive.
    pub yaw_rate_rps: f64,
    /// Steering wheel angle, degrees, left positive.
    pub steering_wheel_deg: f64,
    /// Brake pressure, bar.
    pub brake_bar: f64,
    /// Gear (`GearSelected`).
    pub gear: u8,
}

impl EgoState {
    /// A car driving at `speed_mps` and turning at `yaw_rate_rps`, in drive, not braking;
    /// the steering angle from the kinematic bicycle model.
    #[must_use]
    pub fn driving(speed_mps: f64, yaw_rate_rps: f64) -> Self {
        let road_wheel =
            if speed_mps.abs() > 0.1 { (WHEELBASE_M * yaw_rate_rps / speed_mps).atan() } else { 0.0 };
        Self {
            speed_mps,
            yaw_rate_rps,
            steering_wheel_deg: road_wheel.to_degrees() * STEERING_RATIO,
            brake_bar: 0.0,
            gear: GEAR_DRIVE,
        }
    }

    /// The physical value of the signal `name`, if it is one the motion decides.
    fn value(&self, name: &str) -> Option<f64> {
        let kmh = 3.6;
        let half = self.yaw_rate_rps * TRACK_M / 2.0;
        Some(match name {
            "WheelSpeedFL" | "WheelSpeedRL" => (self.speed_mps - half) * kmh,
            "WheelSpeedFR" | "WheelSpeedRR" => (self.speed_mps + half) * kmh,
            "DisplayedSpeed" => self.speed_mps * kmh,
            "YawRate" | "ImuYawRate" => self.yaw_rate_rps.to_degrees(),
            "LateralAccel" => self.speed_mps * self.yaw_rate_rps,
            "SteeringWheelAngle" => self.steering_wheel_deg,
            "SteeringRatio" => STEERING_RATIO,
            "BrakePressure" => self.brake_bar,
            "BrakePedalPressed" => f64::from(u8::from(self.brake_bar > 0.0)),
            "GearSelected" | "GearEngaged" => f64::from(self.gear),
            "EngineRunning" => 1.0,
            _ => return None,
        })
    }
}

/// The data of `message`'s instance number `counter`, sent while the car is in `ego`.
#[must_use]
pub fn encode(message: &Message, ego: &EgoState, counter: u64) -> [u8; 8] {
    let mut data = [0u8; 8];
    for s in &message.signals {
        let value = match ego.value(&s.name) {
            Some(v) => v,
            None if s.name.ends_with("Counter") => (counter % 16) as f64,
            None => continue,
        };
        s.encode(&mut data, value);
    }
    data
}

/// One ego-motion reading from a delivered frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EgoReading {
    /// Speed, m/s.
    Speed(f64),
    /// Yaw rate, rad/s.
    YawRate(f64),
}

/// Reads ego-motion out of delivered frames (see the module's contract).
#[derive(Clone, Debug, Default)]
pub struct EgoDecoder {
    wheels: Option<(CanId, Signal, Signal)>,
    yaw: Option<(CanId, Signal)>,
}

impl EgoDecoder {
    /// A decoder for the bus of `messages`; it reads nothing the bus does not carry.
    #[must_use]
    pub fn new(messages: &[Message]) -> Self {
        let find = |name: &str| messages.iter().find_map(|m| m.signal(name).map(|s| (m.id, s.clone())));
        let wheels = match (find("WheelSpeedRL"), find("WheelSpeedRR")) {
            (Some((id, l)), Some((id2, r))) if id == id2 => Some((id, l, r)),
            _ => None,
        };
        Self { wheels, yaw: find("YawRate") }
    }

    /// Whether the bus carries both speed and yaw rate.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.wheels.is_some() && self.yaw.is_some()
    }

    /// The reading in frame `id` with `data`, if it carries one.
    #[must_use]
    pub fn decode(&self, id: CanId, data: &[u8; 8]) -> Option<EgoReading> {
        if let Some((wid, l, r)) = &self.wheels {
            if *wid == id {
                return Some(EgoReading::Speed((l.decode(data) + r.decode(data)) / 2.0 / 3.6));
            }
        }
        match &self.yaw {
            Some((yid, s)) if *yid == id => Some(EgoReading::YawRate(s.decode(data).to_radians())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_and_yaw_rate_survive_the_bus_encoding() {
        let messages = crate::dbc::load(std::path::Path::new("../configs/can/vehicle.dbc")).unwrap();
        let dec = EgoDecoder::new(&messages);
        assert!(dec.complete());
        let ego = EgoState::driving(27.3, 0.19);
        let mut got = Vec::new();
        for m in &messages {
            if let Some(r) = dec.decode(m.id, &encode(m, &ego, 5)) {
                got.push(r);
            }
        }
        let [EgoReading::Speed(v), EgoReading::YawRate(w)] = got[..] else { panic!("{got:?}") };
        assert!((v - 27.3).abs() < 0.01, "{v}");
        assert!((w - 0.19).abs() < 0.001, "{w}");
        let brake = messages.iter().find(|m| m.name == "BrakeStatus").unwrap();
        assert_eq!(brake.signal("BrakeStatusCounter").unwrap().decode(&encode(brake, &ego, 21)), 5.0);
    }
}
