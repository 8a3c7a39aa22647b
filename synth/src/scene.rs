//! What lies on the ground: a scene's geometry (rivers, flood plain, lakes, parcels, roads,
//! town, hills, swath edge) and the surface type of every pixel, drawn from one seed.
//!
//! Sizes are in pixels of about 10 m (Sentinel-1 GRD, Sen1Floods11), independent of the scene's
//! size: a 256-pixel chip sees a few fields and perhaps a stretch of river, a 16k scene a whole
//! valley.

use crate::noise::{fbm, hash2, unit, Draw};

/// What a pixel is. Water classes are what a hand labeller marks as water.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surface {
    /// Calm open water: specular, the darkest surface.
    OpenWater,
    /// Wind-roughened water: Bragg scattering makes it several dB brighter (mostly in VV).
    RoughWater,
    /// Flooded forest: trunk–water double bounce makes it brighter than dry forest.
    FloodedVegetation,
    /// A field or meadow parcel; the value picks its backscatter.
    Field(u64),
    Forest,
    Urban,
    /// A corner reflector in town (a building face on a street).
    BrightPoint,
    /// Dry sand on a bank: smooth, dark, not water.
    Sand,
    /// A road: smooth, dark, not water.
    Tarmac,
    /// Radar shadow behind a steep slope: no signal, dark, not water.
    Shadow,
    /// The slope facing the radar: folded over, bright.
    Layover,
    /// Outside the radar swath.
    NoData,
}

impl Surface {
    pub fn is_water(self) -> bool {
        matches!(
            self,
            Surface::OpenWater | Surface::RoughWater | Surface::FloodedVegetation
        )
    }

    /// The label a hand labeller gives it: 1 water, 0 not water, −1 no data.
    pub fn label(self) -> i8 {
        match self {
            Surface::NoData => -1,
            s => s.is_water() as i8,
        }
    }
}

/// A meandering river: a centre line along `angle` whose sideways offset is a sum of sines.
#[derive(Clone, Debug)]
struct River {
    /// Unit vector along the river and across it.
    along: (f64, f64),
    across: (f64, f64),
    /// Across-position of the mean centre line, px from the scene origin.
    offset: f64,
    /// (amplitude px, wavelength px, phase).
    meanders: Vec<(f64, f64, f64)>,
    half_width: f64,
}

impl River {
    /// Distance from the water's edge, px (negative inside the channel). Measured across
    /// the mean direction: close enough for meanders of moderate amplitude.
    fn edge_distance(&self, x: f64, y: f64) -> f64 {
        let t = x * self.along.0 + y * self.along.1;
        let s = x * self.across.0 + y * self.across.1;
        let centre: f64 = self.offset
            + self
                .meanders
                .iter()
                .map(|&(a, l, p)| a * (std::f64::consts::TAU * t / l + p).sin())
                .sum::<f64>();
        // The slope of the centre line shrinks true distance by cos(atan(slope)).
        let slope: f64 = self
            .meanders
            .iter()
            .map(|&(a, l, p)| {
                a * std::f64::consts::TAU / l * (std::f64::consts::TAU * t / l + p).cos()
            })
            .sum();
        (s - centre).abs() / (1.0 + slope * slope).sqrt() - self.half_width
    }
}

/// A straight road.
#[derive(Clone, Debug)]
struct Road {
    point: (f64, f64),
    normal: (f64, f64),
    half_width: f64,
}

/// Mean backscatter levels of a scene, dB, before texture, gain and speckle.
#[derive(Clone, Copy, Debug)]
pub struct Levels {
    pub water_vv: f64,
    pub water_vh: f64,
    pub land_vv: f64,
    pub land_vh: f64,
}

/// One synthetic scene: its size, parameters and seeds. Cheap to build; pixels are computed
/// on demand.
#[derive(Clone, Debug)]
pub struct Scene {
    pub rows: usize,
    pub cols: usize,
    pub seed: u64,
    /// Independent looks of the speckle (4 or 5, as in multi-looked GRD).
    pub looks: u32,
    pub levels: Levels,
    /// Calibration and incidence differences between acquisitions: a common offset, dB, and a
    /// linear ramp across the columns (near to far range), dB from edge to edge.
    pub gain_db: f64,
    pub ramp_db: f64,
    rivers: Vec<River>,
    /// Flooded where plain_slope·(distance from river) + relief·(noise − ½) < flood_level.
    flood_level: f64,
    relief: f64,
    relief_scale: f64,
    relief_seed: u64,
    lake_threshold: f64,
    lake_scale: f64,
    lake_seed: u64,
    wind_threshold: f64,
    wind_seed: u64,
    parcel_size: f64,
    parcel_seed: u64,
    roads: Vec<Road>,
    /// Town centre, radius px.
    urban: Option<((f64, f64), f64)>,
    sand_width: f64,
    sand_seed: u64,
    /// Whether forest standing in the flood shows double bounce (else it floods like a field).
    flooded_forest: bool,
    /// Terrain steepness seen by the radar; 0 = flat.
    hills: f64,
    hill_scale: f64,
    hill_seed: u64,
    texture_seed: u64,
    /// No data where x·cos φ + y·sin φ > c.
    swath: Option<((f64, f64), f64)>,
}

impl Scene {
    /// Draws a scene of `rows`×`cols` pixels from `seed`.
    pub fn new(seed: u64, rows: usize, cols: usize) -> Scene {
        let mut d = Draw::new(seed);
        let size = rows.max(cols) as f64;
        // Levels span the events of Sen1Floods11: open water VH −28…−24 dB (VV 6–10 dB above),
        // land VH −18.5…−14.5 dB (VV 5.5–7.5 above); a common gain moves both.
        let water_vh = d.range(-28.5, -24.0);
        let land_vh = d.range(-18.5, -14.5);
        let gain = d.normal(0.0, 1.0);
        let levels = Levels {
            water_vv: water_vh + d.range(6.0, 10.0),
            water_vh,
            land_vv: land_vh + d.range(5.5, 7.5),
            land_vh,
        };
        let mut rivers = Vec::new();
        let n_rivers = if d.chance(0.2) {
            0
        } else if d.chance(0.2) {
            2
        } else {
            1
        };
        for _ in 0..n_rivers {
            let angle = d.range(0.0, std::f64::consts::PI);
            let meanders = (0..3)
                .map(|_| {
                    let wavelength = d.log_range(150.0, 1500.0);
                    (
                        wavelength * d.range(0.03, 0.22),
                        wavelength,
                        d.range(0.0, std::f64::consts::TAU),
                    )
                })
                .collect();
            let across = (-angle.sin(), angle.cos());
            // Somewhere across the scene, so that most chips hold a stretch of river.
            let (cx, cy) = (
                d.range(0.1, 0.9) * cols as f64,
                d.range(0.1, 0.9) * rows as f64,
            );
            rivers.push(River {
                along: (angle.cos(), angle.sin()),
                across,
                offset: cx * across.0 + cy * across.1,
                meanders,
                half_width: d.log_range(1.0, 18.0),
            });
        }
        // A quarter of the scenes are not flooded at all (only their rivers and lakes hold water).
        let flood_level = if d.chance(0.25) {
            f64::NEG_INFINITY
        } else if rivers.is_empty() {
            d.range(-25.0, 5.0)
        } else {
            d.log_range(5.0, 220.0)
        };
        let roads = (0..(d.range(0.0, 3.99) as usize))
            .map(|_| {
                let angle = d.range(0.0, std::f64::consts::PI);
                Road {
                    point: (d.range(0.0, cols as f64), d.range(0.0, rows as f64)),
                    normal: (-angle.sin(), angle.cos()),
                    half_width: d.range(0.6, 1.8),
                }
            })
            .collect();
        let urban = d.chance(0.3).then(|| {
            (
                (d.range(0.0, cols as f64), d.range(0.0, rows as f64)),
                d.range(20.0, 90.0),
            )
        });
        let swath = d.chance(0.2).then(|| {
            let phi = d.range(0.0, std::f64::consts::TAU);
            let (nx, ny) = (phi.cos(), phi.sin());
            // The far corner's projection, pulled in so that 5–40 % of the scene is lost.
            let far = (0.0f64).max(nx * cols as f64) + (0.0f64).max(ny * rows as f64);
            (
                (nx, ny),
                far - d.range(0.05, 0.4) * size * (nx.abs() + ny.abs()),
            )
        });
        Scene {
            rows,
            cols,
            seed,
            looks: if d.chance(0.5) { 4 } else { 5 },
            levels,
            gain_db: gain,
            ramp_db: d.range(-1.5, 1.5),
            rivers,
            flood_level,
            relief: d.range(15.0, 90.0),
            relief_scale: d.range(40.0, 200.0),
            relief_seed: d.seed(),
            lake_threshold: d.range(0.62, 0.9),
            lake_scale: d.range(30.0, 120.0),
            lake_seed: d.seed(),
            wind_threshold: d.range(0.5, 1.3),
            wind_seed: d.seed(),
            parcel_size: d.range(12.0, 50.0),
            parcel_seed: d.seed(),
            roads,
            urban,
            sand_width: if d.chance(0.4) {
                d.range(1.0, 8.0)
            } else {
                0.0
            },
            sand_seed: d.seed(),
            flooded_forest: d.chance(0.3),
            hills: if d.chance(0.3) {
                d.range(0.6, 1.4)
            } else {
                0.0
            },
            hill_scale: d.range(15.0, 50.0),
            hill_seed: d.seed(),
            texture_seed: d.seed(),
            swath,
        }
    }

    /// The surface at pixel (x, y): x is the column, y the row. Pure: the same for every call.
    pub fn surface(&self, x: i64, y: i64) -> Surface {
        let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
        if let Some(((nx, ny), c)) = self.swath {
            if fx * nx + fy * ny > c {
                return Surface::NoData;
            }
        }
        let river = self
            .rivers
            .iter()
            .map(|r| r.edge_distance(fx, fy))
            .fold(f64::INFINITY, f64::min);
        let low = fbm(self.relief_seed, fx, fy, self.relief_scale) - 0.5;
        let ground = if self.rivers.is_empty() {
            self.relief * low
        } else {
            river.max(0.0) + self.relief * low
        };
        let lake = fbm(self.lake_seed, fx, fy, self.lake_scale) > self.lake_threshold;
        let land = self.land(x, y, fx, fy, river);
        if river < 0.0 || lake || ground < self.flood_level {
            if self.flooded_forest && land == Surface::Forest && river >= 0.0 && !lake {
                return Surface::FloodedVegetation;
            }
            return if fbm(self.wind_seed, fx, fy, 60.0) > self.wind_threshold {
                Surface::RoughWater
            } else {
                Surface::OpenWater
            };
        }
        land
    }

    /// The dry surface at a pixel: banks, roads, town, hills, then parcels.
    fn land(&self, x: i64, y: i64, fx: f64, fy: f64, river: f64) -> Surface {
        if river >= 0.0 && river < self.sand_width && fbm(self.sand_seed, fx, fy, 25.0) > 0.5 {
            return Surface::Sand;
        }
        if self.roads.iter().any(|r| {
            ((fx - r.point.0) * r.normal.0 + (fy - r.point.1) * r.normal.1).abs() < r.half_width
        }) {
            return Surface::Tarmac;
        }
        if let Some(((cx, cy), radius)) = self.urban {
            let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() / radius;
            if d + 0.8 * (fbm(self.texture_seed, fx, fy, 30.0) - 0.5) < 1.0 {
                return if unit(hash2(self.seed ^ 0xB1, x, y)) < 0.04 {
                    Surface::BrightPoint
                } else {
                    Surface::Urban
                };
            }
        }
        if self.hills > 0.0 {
            // Slope along the range direction (columns): steep away from the radar hides the
            // ground behind (shadow), steep towards it folds it over (layover).
            let h = |x: f64| fbm(self.hill_seed, x, fy, self.hill_scale);
            let slope = (h(fx + 1.0) - h(fx - 1.0)) * self.hill_scale / 2.0 * self.hills;
            let hilly = fbm(self.hill_seed ^ 0x11, fx, fy, 150.0) > 0.5;
            if hilly && slope < -1.1 {
                return Surface::Shadow;
            }
            if hilly && slope > 1.3 {
                return Surface::Layover;
            }
        }
        let id = self.parcel(fx, fy);
        if id.is_multiple_of(7) {
            Surface::Forest
        } else {
            Surface::Field(id)
        }
    }

    /// Voronoi parcels on a jittered grid: the id of the nearest parcel seed point.
    fn parcel(&self, fx: f64, fy: f64) -> u64 {
        let s = self.parcel_size;
        let (cx, cy) = ((fx / s).floor() as i64, (fy / s).floor() as i64);
        let mut best = (f64::INFINITY, 0u64);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let h = hash2(self.parcel_seed, cx + dx, cy + dy);
                let px = ((cx + dx) as f64 + unit(h)) * s;
                let py = ((cy + dy) as f64 + unit(h.rotate_left(32))) * s;
                let d = (px - fx).powi(2) + (py - fy).powi(2);
                if d < best.0 {
                    best = (d, h);
                }
            }
        }
        best.1
    }

    /// Mean (VV, VH) backscatter of a surface at a pixel, dB, with texture, gain and ramp, before
    /// speckle; None outside the swath.
    pub fn mean_db(&self, surface: Surface, x: i64, y: i64) -> Option<(f64, f64)> {
        let l = self.levels;
        let (vv, vh) = match surface {
            Surface::NoData => return None,
            Surface::OpenWater => (l.water_vv, l.water_vh),
            Surface::RoughWater => (l.water_vv + 7.0, l.water_vh + 3.5),
            Surface::FloodedVegetation => (-5.5, -14.5),
            Surface::Field(id) => {
                let (a, b) = crate::noise::normal_pair(id);
                let dv = 1.8 * a;
                (l.land_vv + dv, l.land_vh + 0.7 * dv + 0.8 * b)
            }
            Surface::Forest => (-7.5, -13.5),
            Surface::Urban => (-5.0, -12.0),
            Surface::BrightPoint => (3.0, -4.0),
            Surface::Sand => (-19.0, -26.0),
            Surface::Tarmac => (-18.0, -25.0),
            Surface::Shadow => (-23.0, -29.0),
            Surface::Layover => (-2.0, -9.0),
        };
        let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
        let texture = if surface.is_water() { 0.6 } else { 2.0 }
            * (fbm(self.texture_seed ^ 0x7E, fx, fy, 8.0) - 0.5);
        let shift = self.gain_db + self.ramp_db * (fx / self.cols.max(1) as f64 - 0.5) + texture;
        Some((vv + shift, vh + shift))
    }
}
