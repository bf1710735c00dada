//! The response-time analysis against the paper and against sets worked by hand.

mod common;

use can::frame::frame_bits;
use can::report::analyze;
use can::rta::{response_times, Task};
use common::*;
use proptest::prelude::*;

#[test]
fn transmission_time_for_every_dlc_at_500k() {
    // 11-bit: 34 + 8s + 13 + floor((33 + 8s)/4) = 55 + 10s bits (8s/4 = 2s exactly).
    let bus = rate(500_000);
    for dlc in 0..=8u8 {
        let bits = 55 + 10 * u64::from(dlc);
        assert_eq!(frame_bits(dlc, false), bits, "dlc {dlc}");
        assert_eq!(bus.frame_ns(dlc, false), bits * 2000, "dlc {dlc}");
    }
    assert_eq!(bus.frame_ns(8, false), 270_000, "8-byte standard frame: 135 bits = 270 µs");
    // 29-bit: 54 + 8s + 13 + floor((53 + 8s)/4): 80 bits empty, 160 bits with 8 bytes.
    assert_eq!(frame_bits(0, true), 80);
    assert_eq!(frame_bits(4, true), 54 + 32 + 13 + 21);
    assert_eq!(frame_bits(8, true), 160);
    assert_eq!(bus.frame_ns(8, true), 320_000);
    // 7 bytes at 125 kbit/s: 125 bits × 8 µs = 1 ms, the paper's example.
    assert_eq!(rate(125_000).frame_ns(7, false), 1_000_000);
}

#[test]
fn bitrate_outside_classic_can_is_refused() {
    assert!(can::Bitrate::new(0).is_err());
    assert!(can::Bitrate::new(9_999).is_err());
    assert!(can::Bitrate::new(2_000_000).is_err());
    assert_eq!(rate(1_000_000).tau_ns(), 1000);
}

#[test]
fn arbitration_compares_the_base_id_first_and_standard_wins_a_tie() {
    let key = |id: can::CanId| id.priority_key();
    // Same base 0x100: the standard frame's dominant RTR beats the extended frame's SRR.
    assert!(key(std_id(0x100)) < key(ext_id(0x100 << 18)));
    assert!(key(std_id(0x100)) < key(ext_id((0x100 << 18) | 0x3_ffff)));
    // A lower base wins whatever follows: extended 0x0ff_xxxxx beats standard 0x100.
    assert!(key(ext_id((0x0ff << 18) | 0x3_ffff)) < key(std_id(0x100)));
    // A higher base loses even to the largest extension of a lower one.
    assert!(key(std_id(0x101)) > key(ext_id((0x100 << 18) | 0x3_ffff)));
    // Within a kind, the numerically lower identifier wins.
    assert!(key(std_id(0x0a0)) < key(std_id(0x1a0)));
    assert!(key(ext_id(0x18fe_f100)) < key(ext_id(0x18ff_0a21)));
}

proptest! {
    #[test]
    fn priority_key_is_the_wire_order(a in 0u32..0x2000_0000, b in 0u32..0x2000_0000, sa: bool, sb: bool) {
        let id = |v: u32, std: bool| if std { std_id(v & 0x7ff) } else { ext_id(v) };
        let (x, y) = (id(a, sa), id(b, sb));
        // The arbitration bits as sent: base(11) RTR/SRR IDE [ext(18)], dominant 0.
        let wire = |c: can::CanId| -> Vec<u32> {
            if c.extended {
                let mut v: Vec<u32> = (0..11).rev().map(|i| (c.id >> (18 + i)) & 1).collect();
                v.extend([1, 1]);
                v.extend((0..18).rev().map(|i| (c.id >> i) & 1));
                v
            } else {
                let mut v: Vec<u32> = (0..11).rev().map(|i| (c.id >> i) & 1).collect();
                v.extend([0, 0]);
                v
            }
        };
        if x != y {
            // Lexicographic on the common prefix; they differ within it (a standard frame
            // ends at IDE = 0 where an extended one sends IDE = 1).
            prop_assert_eq!(x.priority_key() < y.priority_key(), wire(x) < wire(y));
        }
    }
}

/// The 1994 analysis (Tindell, Burns): only the first instance, q = 0.
fn original_1994(tasks: &[Task], m: usize, tau: u64) -> u64 {
    let b = tasks.iter().filter(|k| k.key > tasks[m].key).map(|k| k.c).max().unwrap_or(0);
    let hp: Vec<&Task> = tasks.iter().filter(|k| k.key < tasks[m].key).collect();
    let mut w = b;
    loop {
        let next = b + hp.iter().map(|k| (w + k.j + tau).div_ceil(k.t) * k.c).sum::<u64>();
        if next == w {
            return tasks[m].j + w + tasks[m].c;
        }
        w = next;
    }
}

#[test]
fn davis_counter_example_message_c_misses_its_deadline() {
    let bus = rate(125_000);
    let report = analyze(&davis_counter_example(), bus);
    let r: Vec<_> = report.messages.iter().map(|m| (m.name.as_str(), m.blocking_us, m.wcrt_us)).collect();
    // A: B = 1 (C's frame... any lower), busy period 2 ms, one instance: R = 1 + 1 = 2 ms.
    // B: B = 1; busy period t = 1 + ⌈t/2.5⌉ + ⌈t/3.5⌉ → 3, 4, 5, 5: Q = 2.
    //    q=0: w = 1 + ⌈(w+τ)/2.5⌉ = 2, R = 2 + 1 = 3 ms.
    //    q=1: w = 1 + 1 + ⌈(w+τ)/2.5⌉ → 3, 4, 4; R = 4 − 3.5 + 1 = 1.5 ms. So R_B = 3 ms.
    // C: B = 0; busy period t = ⌈t/2.5⌉ + 2⌈t/3.5⌉ → 1, 3, 4, 6, 7, 7 ms: Q = ⌈7/3.5⌉ = 2.
    //    q=0: w = ⌈(w+τ)/2.5⌉ + ⌈(w+τ)/3.5⌉ → 2; R = 2 + 1 = 3 ms ≤ 3.25 (the 1994 result).
    //    q=1: w = 1 + ⌈(w+τ)/2.5⌉ + ⌈(w+τ)/3.5⌉ → 3, 4, 5, 6, 6; R = 6 − 3.5 + 1 = 3.5 ms > 3.25.
    assert_eq!(r, vec![("A", 1000.0, Some(2000.0)), ("B", 1000.0, Some(3000.0)), ("C", 0.0, Some(3500.0))]);
    assert_eq!(report.messages.iter().map(|m| m.schedulable).collect::<Vec<_>>(), [true, true, false]);
    assert!(!report.schedulable());
    assert!((report.utilization - (1.0 / 2.5 + 2.0 / 3.5)).abs() < 1e-12);
    // The refuted analysis calls C schedulable: 3 ms.
    let tasks: Vec<Task> = davis_counter_example().iter().map(|m| can::report::task(m, bus)).collect();
    assert_eq!(original_1994(&tasks, 2, bus.tau_ns()), 3_000_000);
}

#[test]
fn hand_worked_set_with_extended_identifiers() {
    // 500 kbit/s, τ = 2 µs. Priority order by base id: Z (ext, base 0x0ff) > X (std 0x100) >
    // Y (ext, base 0x100: loses the tie to the standard frame).
    // C: X 8 bytes std 270 µs; Y 8 bytes ext 320 µs; Z 4 bytes ext 120 bits = 240 µs.
    let set = vec![
        msg(std_id(0x100), "X", 8, 1000, 1000, 0),
        msg(ext_id(0x100 << 18), "Y", 8, 2000, 2000, 0),
        msg(ext_id((0x0ff << 18) | 0x3_ffff), "Z", 4, 1500, 1500, 0),
    ];
    let report = analyze(&set, rate(500_000));
    let r: Vec<_> =
        report.messages.iter().map(|m| (m.name.as_str(), m.c_us, m.blocking_us, m.wcrt_us)).collect();
    // Z: B = max(270, 320) = 320; busy 560 < 1500 so Q = 1; w = 320; R = 320 + 240 = 560.
    // X: B = 320; busy t = 320 + 240⌈t/1.5ms⌉ + 270⌈t/1ms⌉ = 830, Q = 1;
    //    w = 320 + 240 = 560; R = 560 + 270 = 830.
    // Y: B = 0; busy = 240 + 270 + 320 = 830, Q = 1; w = 240 + 270 = 510; R = 510 + 320 = 830.
    assert_eq!(
        r,
        vec![
            ("Z", 240.0, 320.0, Some(560.0)),
            ("X", 270.0, 320.0, Some(830.0)),
            ("Y", 320.0, 0.0, Some(830.0)),
        ]
    );
    assert!(report.schedulable());
    assert!((report.utilization - 0.59).abs() < 1e-12, "0.16 + 0.27 + 0.16");
}

#[test]
fn hand_worked_set_with_jitter() {
    // 500 kbit/s, τ = 2 µs. P: 0x10, 8 bytes (270), T 1000, J 600, D 1200.
    // Q: 0x20, 8 bytes (270), T 1000, J 0, D 1000. S: 0x30, 2 bytes (75 bits = 150), T 5000.
    let set = vec![
        msg(std_id(0x10), "P", 8, 1000, 1200, 600),
        msg(std_id(0x20), "Q", 8, 1000, 1000, 0),
        msg(std_id(0x30), "S", 2, 5000, 5000, 0),
    ];
    let report = analyze(&set, rate(500_000));
    let r: Vec<_> = report.messages.iter().map(|m| (m.name.as_str(), m.blocking_us, m.wcrt_us)).collect();
    // P: B = 270; busy t = 270 + 270⌈(t+600)/1000⌉ → 540, 810, 810; Q = ⌈(810+600)/1000⌉ = 2.
    //    q=0: w = 270, R = 600 + 270 + 270 = 1140. q=1: w = 540, R = 600 + 540 − 1000 + 270 = 410.
    //    R_P = 1140 µs: above the period, within the 1.2 ms deadline.
    // Q: B = 150; busy t = 150 + 270⌈(t+600)/1000⌉ + 270⌈t/1000⌉ → 420, 960, 960; Q = 1.
    //    w = 150 + 270⌈(w+602)/1000⌉ → 420, 690, 690 (P's jitter lets two P frames in).
    //    R_Q = 690 + 270 = 960 µs.
    // S: B = 0; busy → 150, 690, 960, 960; Q = 1.
    //    w = 270⌈(w+602)/1000⌉ + 270⌈(w+2)/1000⌉ → 540, 810, 810; R_S = 810 + 150 = 960 µs.
    assert_eq!(r, vec![("P", 270.0, Some(1140.0)), ("Q", 150.0, Some(960.0)), ("S", 0.0, Some(960.0))]);
    assert!(report.schedulable());
    assert_eq!(report.messages[0].jitter_ms, 0.6);
}

#[test]
fn an_overloaded_bus_has_no_bound() {
    // Four 8-byte frames every 1 ms: 108 % of the bus.
    let set: Vec<_> = (0..4).map(|i| msg(std_id(0x100 + i), "F", 8, 1000, 1000, 0)).collect();
    let report = analyze(&set, rate(500_000));
    assert!(report.utilization > 1.0);
    let r: Vec<_> = report.messages.iter().map(|m| m.wcrt_us).collect();
    // The three highest use 81 %: bounded. The lowest cannot be.
    assert!(r[..3].iter().all(Option::is_some));
    assert_eq!(r[3], None);
    assert!(!report.messages[3].schedulable);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["messages"][3]["wcrt_us"].is_null());
}

#[test]
fn report_json_has_exactly_the_contract_keys() {
    let report = analyze(&davis_counter_example(), rate(125_000));
    let json = serde_json::to_value(&report).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&json), ["bitrate_bps", "messages", "utilization"]);
    let mut want = vec![
        "id",
        "extended",
        "name",
        "dlc",
        "period_ms",
        "deadline_ms",
        "jitter_ms",
        "c_us",
        "blocking_us",
        "wcrt_us",
        "schedulable",
    ];
    want.sort_unstable();
    assert_eq!(keys(&json["messages"][0]), want);
    assert_eq!(json["messages"][2]["id"], 3);
    assert_eq!(json["messages"][2]["wcrt_us"], 3500.0);
    assert_eq!(json["bitrate_bps"], 125_000);
    let table = report.table();
    assert!(table.lines().any(|l| l.contains(" C ") && l.contains("3500.0") && l.ends_with("NO")), "{table}");
}

fn arb_task() -> impl Strategy<Value = (u8, bool, u64, u64)> {
    // dlc, extended, period in units of 100 µs (1..=100 ms), jitter in µs
    (0u8..=8, any::<bool>(), 10u64..=1000, 0u64..=2000)
}

fn tasks_from(spec: &[(u8, bool, u64, u64)]) -> Vec<Task> {
    let bus = rate(500_000);
    spec.iter()
        .enumerate()
        .map(|(i, &(dlc, ext, t, j))| Task {
            key: (i as u32) << 20,
            c: bus.frame_ns(dlc, ext),
            t: t * 100_000,
            j: j * 1000,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// R ≥ J + B + C: a frame can always be queued just after the longest lower-priority
    /// frame started, and then takes its own length.
    #[test]
    fn response_covers_jitter_blocking_and_own_frame(spec in prop::collection::vec(arb_task(), 1..8)) {
        let tasks = tasks_from(&spec);
        for (t, b) in tasks.iter().zip(response_times(&tasks, 2000)) {
            if let Some(r) = b.wcrt_ns {
                prop_assert!(r >= t.j + b.blocking_ns + t.c, "{r} < {} + {} + {}", t.j, b.blocking_ns, t.c);
            }
        }
    }

    /// Adding a message of lowest priority never lowers anyone's blocking or response time,
    /// and never turns a missing bound into one.
    #[test]
    fn a_new_lowest_priority_message_never_helps(spec in prop::collection::vec(arb_task(), 1..7), extra in arb_task()) {
        let before = tasks_from(&spec);
        let mut with = spec.clone();
        with.push(extra);
        let after = tasks_from(&with);
        let (b0, b1) = (response_times(&before, 2000), response_times(&after, 2000));
        for (x, y) in b0.iter().zip(&b1) {
            prop_assert!(y.blocking_ns >= x.blocking_ns);
            match (x.wcrt_ns, y.wcrt_ns) {
                (Some(r0), Some(r1)) => prop_assert!(r1 >= r0, "{r1} < {r0}"),
                (None, Some(_)) => prop_assert!(false, "a bound appeared"),
                _ => {}
            }
        }
    }

    /// Revised ≥ original: looking at every instance can only raise the bound.
    #[test]
    fn revised_bound_is_at_least_the_first_instance(spec in prop::collection::vec(arb_task(), 1..7)) {
        let tasks = tasks_from(&spec);
        for (m, b) in response_times(&tasks, 2000).iter().enumerate() {
            if let Some(r) = b.wcrt_ns {
                prop_assert!(r >= original_1994(&tasks, m, 2000));
            }
        }
    }
}

#[test]
fn exact_stuffing_of_an_all_zero_frame() {
    // Standard id 0, DLC 0: SOF, 11 id bits, RTR, IDE, r0, 4 DLC bits are 19 zeros and the
    // CRC of zeros is 0: 34 zeros, a stuff bit after every fifth (6), plus 13: 53 bits,
    // two below the worst case of 55.
    assert_eq!(can::frame::exact_frame_bits(std_id(0), &[]), 53);
    assert_eq!(frame_bits(0, false), 55);
}

proptest! {
    #[test]
    fn exact_stuffing_lies_between_none_and_the_worst_case(
        raw in 0u32..0x2000_0000, extended: bool, data in prop::collection::vec(any::<u8>(), 0..=8),
    ) {
        let id = if extended { ext_id(raw) } else { std_id(raw & 0x7ff) };
        let dlc = data.len() as u8;
        let g = if extended { 54 } else { 34 };
        let bits = can::frame::exact_frame_bits(id, &data);
        prop_assert!(bits <= frame_bits(dlc, extended), "{bits} > worst case");
        prop_assert!(bits >= g + 8 * u64::from(dlc) + 13);
    }
}
