//! Worst-case response times on CAN: Davis, Burns, Bril and Lukkien (2007), §5 (eqs. 3–9).
//!
//! For message m with transmission time C_m, period T_m, release jitter J_m, and τ the bit time:
//! - blocking B_m = max C_k over lower-priority k: a frame, once started, is never preempted;
//! - the level-m busy period t_m = B_m + Σ_{k ∈ hep(m)} ⌈(t_m + J_k) / T_k⌉ C_k
//!   (hep: higher or equal priority, m included);
//! - Q_m = ⌈(t_m + J_m) / T_m⌉ instances of m fall in it, and for each q in 0..Q_m the
//!   queuing delay w_m(q) = B_m + q C_m + Σ_{k ∈ hp(m)} ⌈(w_m(q) + J_k + τ) / T_k⌉ C_k
//!   gives R_m(q) = J_m + w_m(q) − q T_m + C_m;
//! - R_m = max_q R_m(q). The 1994 analysis looked at q = 0 only and so missed that a later
//!   instance in the same busy period can be later still (the paper's counter-example).
//!
//! When the utilisation of hep(m) is ≥ 1, or the busy period or a queuing delay grows past
//! [`BUSY_PERIOD_LIMIT_NS`], the bound does not exist: `None`, unschedulable.

/// Longest busy period searched, ns: 10 s is 1000 periods of the slowest usual message; a
/// busy period that long means the bus is, in practice, overloaded.
pub const BUSY_PERIOD_LIMIT_NS: u64 = 10_000_000_000;

/// One message as the analysis sees it, times in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    /// Arbitration key ([`crate::CanId::priority_key`]): lower wins. Keys should be unique;
    /// an equal key counts as higher priority (safe).
    pub key: u32,
    /// Worst-case transmission time C.
    pub c: u64,
    /// Period T (> 0).
    pub t: u64,
    /// Release jitter J.
    pub j: u64,
}

/// The analysis result of one message, ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// B_m: the longest lower-priority frame.
    pub blocking_ns: u64,
    /// R_m, or `None` where the busy period does not converge.
    pub wcrt_ns: Option<u64>,
}

/// Bounds for every task, in the order given.
#[must_use]
pub fn response_times(tasks: &[Task], tau_ns: u64) -> Vec<Bound> {
    tasks.iter().enumerate().map(|(i, m)| bound(tasks, i, m, tau_ns)).collect()
}

fn bound(tasks: &[Task], index: usize, m: &Task, tau: u64) -> Bound {
    let hp: Vec<Task> =
        tasks.iter().enumerate().filter(|&(i, k)| i != index && k.key <= m.key).map(|(_, k)| *k).collect();
    let blocking_ns = tasks.iter().filter(|k| k.key > m.key).map(|k| k.c).max().unwrap_or(0);
    let utilisation: f64 = hp.iter().chain(std::iter::once(m)).map(|k| k.c as f64 / k.t as f64).sum();
    if utilisation >= 1.0 - 1e-12 || m.t == 0 {
        return Bound { blocking_ns, wcrt_ns: None };
    }
    let wcrt_ns = wcrt(&hp, m, blocking_ns, tau);
    Bound { blocking_ns, wcrt_ns }
}

/// Interference from `hp` in a window of length `w`, each release counted up to `w + extra`.
fn interference(hp: &[Task], w: u64, extra: u64) -> u64 {
    hp.iter().map(|k| (w + k.j + extra).div_ceil(k.t) * k.c).sum()
}

/// The least fixed point of `f` from `start`, or `None` past the limit. `f` is monotone.
fn fixed_point(start: u64, f: impl Fn(u64) -> u64) -> Option<u64> {
    let mut x = start;
    loop {
        let next = f(x);
        if next > BUSY_PERIOD_LIMIT_NS {
            return None;
        }
        if next <= x {
            return Some(x);
        }
        x = next;
    }
}

fn wcrt(hp: &[Task], m: &Task, b: u64, tau: u64) -> Option<u64> {
    // Level-m busy period: hep(m) is hp(m) plus m itself, without the τ term.
    let busy = fixed_point(b + m.c, |t| b + interference(hp, t, 0) + (t + m.j).div_ceil(m.t) * m.c)?;
    let instances = (busy + m.j).div_ceil(m.t);
    let hp_once: u64 = hp.iter().map(|k| k.c).sum();
    let mut worst = 0;
    let mut previous: Option<u64> = None;
    for q in 0..instances {
        // w(q) ≥ w(q−1) + C_m (same interference, one more own frame): a safe start.
        let start = (b + q * m.c + hp_once).max(previous.map_or(0, |w| w + m.c));
        let w = fixed_point(start, |w| b + q * m.c + interference(hp, w, tau))?;
        previous = Some(w);
        // R(q) = J + w(q) − qT + C; w(q) ≥ qC + ... may be below qT, so add before subtracting.
        worst = worst.max((m.j + w + m.c).saturating_sub(q * m.t));
    }
    Some(worst)
}
