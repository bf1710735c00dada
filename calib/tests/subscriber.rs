//! The subscriber against a hostile "service": every malformed, truncated, invalid or
//! out-of-order message is rejected and counted; the good ones get through.

mod common;

use std::time::Duration;

use calib::wire::{self, Message, HEADER_LEN};
use calib::{CalibStore, CalibSubscriber, RecvError};
use common::rig;
use rustix::net::{
    accept, bind, listen, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use shared::CalibEpoch;
use shared::Role;

#[test]
fn hostile_messages_are_rejected_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener =
        socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
    bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    listen(&listener, 4).unwrap();

    let server = std::thread::spawn(move || {
        let conn = accept(&listener).unwrap();
        let mut buf = [0u8; 256];
        let (n, _) = recv(&conn, &mut buf[..], RecvFlags::empty()).unwrap();
        assert_eq!(wire::decode(&buf[..n]).unwrap(), Message::Hello(Role::Fusion));

        let good2 = wire::encode_update(&rig(2, 100));
        let mut nan = rig(4, 200);
        if let calib::Projection::Pinhole(k) = &mut nan.camera_mut() {
            k.fx = f64::NAN;
        }
        let mut sheared = wire::encode_update(&rig(5, 300));
        sheared[HEADER_LEN + 24 + 144 + 8..HEADER_LEN + 24 + 144 + 16].copy_from_slice(&0.2f64.to_le_bytes());
        let mut version = wire::encode_update(&rig(6, 300));
        version[4] = 99;
        let mut unknown_sensor = wire::encode_update(&rig(7, 300));
        unknown_sensor[HEADER_LEN + 16] = 0b111;
        let bad: Vec<Vec<u8>> = vec![
            good2[..100].to_vec(),                      // truncated
            b"certainly not a calibration".to_vec(),    // garbage
            wire::encode_update(&rig(1, 0)).to_vec(),   // epoch going backwards
            wire::encode_update(&rig(2, 100)).to_vec(), // epoch repeated
            wire::encode_update(&nan).to_vec(),         // NaN focal length
            sheared.to_vec(),                           // non-orthonormal rotation
            vec![0xAB; 5000],                           // oversize
            wire::encode_hello(Role::Camera).to_vec(),  // a hello from the "service"
            version.to_vec(),                           // unknown version
            unknown_sensor.to_vec(),                    // unknown sensor
        ];
        send(&conn, &good2, SendFlags::empty()).unwrap();
        for m in &bad {
            send(&conn, m, SendFlags::empty()).unwrap();
        }
        send(&conn, &wire::encode_update(&rig(3, 200)), SendFlags::empty()).unwrap();
        bad.len() as u64
        // `conn` closes here.
    });

    let mut sub = CalibSubscriber::connect(&path, Role::Fusion).unwrap();
    let mut store = CalibStore::new();
    let mut got = Vec::new();
    loop {
        match sub.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(set)) => {
                got.push(set.epoch.0);
                store.insert(set);
            }
            Ok(None) => panic!("timed out"),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let n_bad = server.join().unwrap();
    assert_eq!(got, [2, 3]);
    assert_eq!(sub.updates_received(), 2);
    assert_eq!(sub.rejected_messages(), n_bad);
    assert_eq!(sub.stats().last_epoch, 3);
    assert_eq!(store.epochs(), [CalibEpoch(2), CalibEpoch(3)]);
    // Once disconnected, it stays so.
    assert!(matches!(sub.try_recv(), Err(RecvError::Disconnected)));
}

#[test]
fn try_recv_does_not_block_and_the_fd_can_be_polled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.sock");
    let listener =
        socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
    bind(&listener, &SocketAddrUnix::new(&path).unwrap()).unwrap();
    listen(&listener, 4).unwrap();
    let mut sub = CalibSubscriber::connect(&path, Role::Lidar).unwrap();
    let conn = accept(&listener).unwrap();
    let t = std::time::Instant::now();
    assert!(sub.try_recv().unwrap().is_none());
    assert!(sub.recv_timeout(Duration::from_millis(50)).unwrap().is_none());
    assert!(t.elapsed() >= Duration::from_millis(50) && t.elapsed() < Duration::from_secs(5));
    send(&conn, &wire::encode_update(&rig(1, 0)), SendFlags::empty()).unwrap();
    let mut fds = [rustix::event::PollFd::new(&sub, rustix::event::PollFlags::IN)];
    rustix::event::poll(&mut fds, None).unwrap();
    assert!(fds[0].revents().contains(rustix::event::PollFlags::IN));
    assert_eq!(sub.try_recv().unwrap().unwrap().epoch, CalibEpoch(1));
}
