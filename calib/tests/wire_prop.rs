//! Property tests of the wire decoder: no input makes it panic, and nothing it accepts fails
//! a check.

use calib::validate::check_set;
use calib::wire::{self, Message, HEADER_LEN, UPDATE_LEN};
use calib::{default_rig, CalibrationSet, Projection, SensorName};
use nalgebra::{Matrix3, UnitQuaternion, Vector3};
use proptest::prelude::*;
use shared::{CalibEpoch, TimestampNs};

fn rig_strategy() -> impl Strategy<Value = CalibrationSet> {
    (
        1u64..1_000_000,
        0u64..u64::MAX / 2,
        (-180.0f64..180.0, -89.0f64..89.0, -180.0f64..180.0),
        (-180.0f64..180.0, -89.0f64..89.0, -180.0f64..180.0),
        (100.0f64..5000.0, 100.0f64..5000.0),
        (-10.0f64..10.0, -10.0f64..10.0, -10.0f64..10.0),
    )
        .prop_map(|(epoch, from, cam, lidar, (fx, fy), t)| {
            let mut s = default_rig();
            s.epoch = CalibEpoch(epoch);
            s.valid_from = TimestampNs(from);
            let q = |(r, p, y): (f64, f64, f64)| {
                UnitQuaternion::from_euler_angles(r.to_radians(), p.to_radians(), y.to_radians())
            };
            s.camera_to_vehicle_mut().rotation = q(cam);
            s.lidar_to_vehicle_mut().rotation = q(lidar);
            s.lidar_to_vehicle_mut().translation.vector = Vector3::new(t.0, t.1, t.2);
            if let Projection::Pinhole(k) = &mut s.camera_mut() {
                k.fx = fx;
                k.fy = fy;
            }
            s
        })
}

/// Everything a receiver relies on, checked independently of the decoder.
fn assert_sane(set: &CalibrationSet) {
    check_set(set).unwrap();
    for iso in [set.camera_to_vehicle(), set.lidar_to_vehicle()] {
        let m: Matrix3<f64> = iso.rotation.to_rotation_matrix().into_inner();
        assert!((m.transpose() * m - Matrix3::identity()).amax() < 1e-5);
        assert!((m.determinant() - 1.0).abs() < 1e-5);
        assert!(iso.translation.vector.iter().all(|v| v.is_finite()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_nor_pass_invalid(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        if let Ok(Message::Update(set)) = wire::decode(&bytes) {
            assert_sane(&set);
        }
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header(body in proptest::collection::vec(any::<u8>(), UPDATE_LEN - HEADER_LEN..=UPDATE_LEN - HEADER_LEN)) {
        let mut msg = wire::encode_update(&default_rig()).to_vec();
        msg[HEADER_LEN..].copy_from_slice(&body);
        if let Ok(Message::Update(set)) = wire::decode(&msg) {
            assert_sane(&set);
        }
    }

    #[test]
    fn round_trip(set in rig_strategy()) {
        let back = wire::decode_update(&wire::encode_update(&set)).unwrap();
        prop_assert_eq!(back.epoch, set.epoch);
        prop_assert_eq!(back.valid_from, set.valid_from);
        prop_assert_eq!(back.camera(), set.camera());
        prop_assert!(back.camera_to_vehicle().rotation.angle_to(&set.camera_to_vehicle().rotation) < 1e-9);
        prop_assert!(back.lidar_to_vehicle().rotation.angle_to(&set.lidar_to_vehicle().rotation) < 1e-9);
        prop_assert_eq!(back.lidar_to_vehicle().translation, set.lidar_to_vehicle().translation);
    }

    #[test]
    fn mutated_messages_never_panic_nor_pass_invalid(
        set in rig_strategy(),
        edits in proptest::collection::vec((0usize..UPDATE_LEN, any::<u8>()), 1..8),
        cut in proptest::option::of(0usize..UPDATE_LEN + 8),
    ) {
        let mut msg = wire::encode_update(&set).to_vec();
        for (i, b) in &edits {
            msg[*i] = *b;
        }
        if let Some(len) = cut {
            msg.resize(len, 0);
        }
        let header_changed = msg.len() < HEADER_LEN || msg[..HEADER_LEN] != wire::encode_update(&set)[..HEADER_LEN];
        match wire::decode(&msg) {
            Ok(Message::Update(got)) => {
                prop_assert!(!header_changed, "a damaged header was accepted");
                prop_assert_eq!(msg.len(), UPDATE_LEN);
                assert_sane(&got);
            }
            Ok(Message::Hello(_)) => prop_assert!(false, "an update turned into a hello"),
            Err(_) => {}
        }
    }

    /// A rig of N cameras round-trips, every camera in order (rotations within 1e-9: matrix
    /// → quaternion → matrix is not bit for bit the identity).
    #[test]
    fn surround_rigs_round_trip(set in rig_strategy(), n in 1usize..=8, yaw in -180.0f64..180.0) {
        let mut rig = set.clone();
        for i in 1..n {
            let mut c = set.cameras[0].clone();
            c.name = SensorName::new(&format!("cam{i}")).unwrap();
            c.to_vehicle.rotation = UnitQuaternion::from_euler_angles(0.0, 0.0, (yaw + i as f64).to_radians())
                * c.to_vehicle.rotation;
            rig.cameras.push(c);
        }
        let bytes = wire::encode_update(&rig);
        prop_assert_eq!(bytes.len(), HEADER_LEN + wire::calib_body_len(n, 1));
        let back = wire::decode_update(&bytes).unwrap();
        prop_assert_eq!(back.cameras.len(), n);
        for (a, b) in back.cameras.iter().zip(&rig.cameras) {
            prop_assert_eq!(&a.name, &b.name);
            prop_assert_eq!(a.projection, b.projection);
            prop_assert!(a.to_vehicle.rotation.angle_to(&b.to_vehicle.rotation) < 1e-9);
        }
        prop_assert!(back.lidar_to_vehicle().rotation.angle_to(&rig.lidar_to_vehicle().rotation) < 1e-9);
        prop_assert_eq!(wire::encode_update(&back).len(), bytes.len());
    }

    /// Flipping one bit of a rotation entry by a large amount is always caught.
    #[test]
    fn damaged_rotations_are_rejected(set in rig_strategy(), entry in 0usize..9, lidar in any::<bool>(), delta in 1e-3f64..10.0) {
        let mut msg = wire::encode_update(&set);
        let off = HEADER_LEN + if lidar { 24 + 240 + 32 } else { 24 + 144 } + entry * 8;
        let v = f64::from_le_bytes(msg[off..off + 8].try_into().unwrap());
        msg[off..off + 8].copy_from_slice(&(v + delta).to_le_bytes());
        let err = wire::decode(&msg).unwrap_err();
        let field = if lidar { "lidar_to_vehicle.rotation" } else { "camera_to_vehicle.rotation" };
        prop_assert!(matches!(err, wire::WireError::Invalid(ref i) if i.field == field), "{:?}", err);
    }
}
