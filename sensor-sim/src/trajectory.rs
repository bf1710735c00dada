//! The ego vehicle's path: a closed loop of waypoints driven at constant speed.
//!
//! Corners are rounded with circular fillets (so the heading turns smoothly), the result is
//! sampled densely once, and the pose at time t is interpolated between samples by arc
//! length. The heading is the path's tangent. The vehicle stays on the ground (z = 0).
//!
//! At t = 0 the vehicle is at the first waypoint, or, if the path rounds a corner there, at
//! the middle of that corner's arc (the path's point nearest the waypoint). Put the first
//! waypoint on a straight to start exactly on it.

use nalgebra::{Isometry3, Translation3, UnitQuaternion};

/// A precomputed closed path.
#[derive(Clone, Debug)]
pub struct Trajectory {
    /// (x, y, heading) samples; the last sample closes the loop at the first one's position.
    samples: Vec<(f64, f64, f64)>,
    /// Arc length at each sample.
    s: Vec<f64>,
    speed: f64,
    /// Arc length of the start (t = 0).
    start: f64,
}

/// Ego pose in the world, planar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose2 {
    /// x, metres.
    pub x: f64,
    /// y, metres.
    pub y: f64,
    /// Heading, radians, counter-clockwise from +x.
    pub heading: f64,
}

impl Pose2 {
    /// Vehicle frame → world frame.
    #[must_use]
    pub fn to_isometry(&self) -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(self.x, self.y, 0.0),
            UnitQuaternion::from_euler_angles(0.0, 0.0, self.heading),
        )
    }
}

fn wrap(a: f64) -> f64 {
    let mut a = a % std::f64::consts::TAU;
    if a > std::f64::consts::PI {
        a -= std::f64::consts::TAU;
    } else if a < -std::f64::consts::PI {
        a += std::f64::consts::TAU;
    }
    a
}

impl Trajectory {
    /// Builds the loop through `points` (at least 3, consecutive points distinct) with corners
    /// rounded to `corner_radius` (shrunk where segments are too short), driven at `speed`.
    ///
    /// # Panics
    /// If fewer than 2 distinct points are given (the scenario validates this first).
    #[must_use]
    pub fn new(points: &[(f64, f64)], speed: f64, corner_radius: f64) -> Self {
        let n = points.len();
        assert!(n >= 2, "a loop needs at least two points");
        // For each vertex: (arc start, arc end, centre, radius, turn angle) or a sharp pass.
        let seg = |i: usize| {
            let a = points[i % n];
            let b = points[(i + 1) % n];
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let len = dx.hypot(dy);
            (dx / len, dy / len, len)
        };
        struct Corner {
            start: (f64, f64),
            end: (f64, f64),
            h_in: f64,
            turn: f64,
            radius: f64,
        }
        let corners: Vec<Corner> = (0..n)
            .map(|i| {
                let (ax, ay, alen) = seg(i + n - 1);
                let (bx, by, blen) = seg(i);
                let h_in = ay.atan2(ax);
                let h_out = by.atan2(bx);
                let turn = wrap(h_out - h_in);
                let p = points[i];
                if turn.abs() < 1e-9 || corner_radius <= 0.0 {
                    return Corner { start: p, end: p, h_in, turn, radius: 0.0 };
                }
                let half = (turn.abs() / 2.0).tan();
                let tangent = (corner_radius * half).min(0.45 * alen).min(0.45 * blen);
                let radius = tangent / half;
                Corner {
                    start: (p.0 - ax * tangent, p.1 - ay * tangent),
                    end: (p.0 + bx * tangent, p.1 + by * tangent),
                    h_in,
                    turn,
                    radius,
                }
            })
            .collect();
        let mut samples = Vec::new();
        let mut start_sample = 0;
        for (i, c) in corners.iter().enumerate() {
            if c.radius == 0.0 {
                // A sharp corner (or a straight pass): heading jumps at the vertex.
                let (bx, by, _) = seg(i);
                samples.push((c.start.0, c.start.1, c.h_in));
                samples.push((c.end.0, c.end.1, by.atan2(bx)));
                continue;
            }
            // Arc: centre is to the left (turn > 0) or right of the incoming direction.
            let side = c.turn.signum();
            let (nx, ny) = (-c.h_in.sin() * side, c.h_in.cos() * side);
            let centre = (c.start.0 + nx * c.radius, c.start.1 + ny * c.radius);
            let mut steps = ((c.turn.abs() / 2f64.to_radians()).ceil() as usize).max(2);
            steps += steps % 2; // even, so the arc's middle is a sample
            if i == 0 {
                start_sample = steps / 2;
            }
            for k in 0..=steps {
                let h = c.h_in + c.turn * k as f64 / steps as f64;
                // Position on the circle: centre minus the normal rotated by the turn so far.
                let (px, py) = (-h.sin() * side, h.cos() * side);
                samples.push((centre.0 - px * c.radius, centre.1 - py * c.radius, h));
            }
        }
        // Close the loop.
        let first = samples[0];
        let last_h = samples.last().map_or(first.2, |l| l.2);
        samples.push((first.0, first.1, last_h + wrap(first.2 - last_h)));
        // Unwrap headings so interpolation never goes the long way round.
        for k in 1..samples.len() {
            let prev = samples[k - 1].2;
            samples[k].2 = prev + wrap(samples[k].2 - prev);
        }
        let mut s = Vec::with_capacity(samples.len());
        let mut acc = 0.0;
        for k in 0..samples.len() {
            if k > 0 {
                acc += (samples[k].0 - samples[k - 1].0).hypot(samples[k].1 - samples[k - 1].1);
            }
            s.push(acc);
        }
        let start = s[start_sample];
        Self { samples, s, speed, start }
    }

    /// Length of one lap, metres.
    #[must_use]
    pub fn length(&self) -> f64 {
        *self.s.last().unwrap_or(&0.0)
    }

    /// Speed, m/s.
    #[must_use]
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The pose after driving for `t_s` seconds from the start (see the module docs).
    #[must_use]
    pub fn pose_at(&self, t_s: f64) -> Pose2 {
        let len = self.length();
        if len <= 0.0 {
            let p = self.samples[0];
            return Pose2 { x: p.0, y: p.1, heading: p.2 };
        }
        let d = (self.start + self.speed * t_s).rem_euclid(len);
        let k = self.s.partition_point(|&s| s <= d).clamp(1, self.s.len() - 1);
        let (s0, s1) = (self.s[k - 1], self.s[k]);
        let f = if s1 > s0 { (d - s0) / (s1 - s0) } else { 0.0 };
        let (a, b) = (self.samples[k - 1], self.samples[k]);
        Pose2 { x: a.0 + (b.0 - a.0) * f, y: a.1 + (b.1 - a.1) * f, heading: wrap(a.2 + (b.2 - a.2) * f) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_loop_is_smooth_and_closed() {
        let t = Trajectory::new(&[(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)], 10.0, 8.0);
        // Four sides minus the corner cuts plus four quarter arcs.
        let expected = 400.0 - 8.0 * 8.0 + 4.0 * std::f64::consts::FRAC_PI_2 * 8.0;
        assert!((t.length() - expected).abs() < 0.1, "{}", t.length());
        // Starts in the middle of the first corner's arc, heading south-east.
        let p = t.pose_at(0.0);
        assert!((p.heading + std::f64::consts::FRAC_PI_4).abs() < 1e-9, "{p:?}");
        let mid = 8.0 - 8.0 * std::f64::consts::FRAC_1_SQRT_2;
        assert!((p.x - mid).abs() < 1e-9 && (p.y - mid).abs() < 1e-9, "{p:?}");
        // 50 m later it is on the first side, heading east.
        let p = t.pose_at(5.0);
        assert!(p.y.abs() < 1e-9 && (p.heading).abs() < 1e-9, "{p:?}");
        // A first waypoint on a straight is the start exactly.
        let t2 = Trajectory::new(
            &[(50.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0), (0.0, 0.0)],
            10.0,
            8.0,
        );
        assert_eq!(t2.pose_at(0.0), Pose2 { x: 50.0, y: 0.0, heading: 0.0 });
        let lap = t.length() / 10.0;
        let a = t.pose_at(1.0);
        let b = t.pose_at(1.0 + lap);
        assert!((a.x - b.x).abs() < 1e-6 && (a.y - b.y).abs() < 1e-6);
        // Heading changes smoothly: no jump bigger than a few degrees per 0.1 s.
        let mut prev = t.pose_at(0.0);
        for i in 1..400 {
            let p = t.pose_at(f64::from(i) * 0.1);
            assert!(wrap(p.heading - prev.heading).abs() < 0.2, "jump at {i}");
            assert!((p.x - prev.x).hypot(p.y - prev.y) < 1.01, "step at {i}");
            prev = p;
        }
    }
}
