//! The decode floor of a replay: how fast a log's frames decode with nothing else running
//! (no ring, no fusion). Not a check: run by hand on a log, e.g.
//! `DECODE_FLOOR_LOG=/tmp/kitti200 cargo test -p logs --release --test decode_floor -- --ignored --nocapture`.

use std::time::Instant;

use logs::LogSource;

#[test]
#[ignore = "a measurement: needs DECODE_FLOOR_LOG"]
fn decode_floor() {
    let Some(path) = std::env::var_os("DECODE_FLOOR_LOG") else {
        eprintln!("DECODE_FLOOR_LOG is not set: nothing to measure");
        return;
    };
    let src = LogSource::open(&path).unwrap();
    let seconds = src.duration().as_secs_f64().max(1e-9);
    for threads in [1, 2] {
        let start = Instant::now();
        let bytes: usize = src
            .frames()
            .unwrap()
            .prefetch(threads, 2, src.path())
            .unwrap()
            .map(|f| f.unwrap().payload_len())
            .sum();
        let wall = start.elapsed().as_secs_f64();
        println!(
            "{threads} decoding thread(s): {wall:.3} s for {seconds:.1} s of log ({:.0}× real time), {:.0} MB",
            seconds / wall,
            bytes as f64 / 1e6
        );
    }
}
