//! Area of pixels on the ground. In a geographic CRS a pixel shrinks towards the poles, so the
//! area is computed per row on the authalic sphere (equal-area radius of WGS 84); in a
//! projected CRS every pixel has the geotransform's area (CRS units assumed metres).

use crate::scene::{GeoTransform, Scene};

/// Radius of the sphere with the WGS 84 ellipsoid's surface area, in metres.
const AUTHALIC_RADIUS_M: f64 = 6_371_007.181;

#[derive(Clone, Copy, Debug)]
pub enum PixelArea {
    Geographic(GeoTransform),
    Projected { m2: f64 },
    Unknown,
}

impl PixelArea {
    pub fn of(scene: &Scene) -> PixelArea {
        let Some(gt) = scene.transform().copied() else {
            return PixelArea::Unknown;
        };
        match scene.crs().model_type {
            2 => PixelArea::Geographic(gt),
            1 => PixelArea::Projected {
                m2: (gt.pixel_width * gt.pixel_height - gt.skew_x * gt.skew_y).abs(),
            },
            _ => PixelArea::Unknown,
        }
    }

    /// Area of one pixel of scene row `y`, in m²; None without georeferencing.
    pub fn row_m2(&self, y: usize) -> Option<f64> {
        match *self {
            PixelArea::Geographic(gt) => {
                let lat = |row: f64| (gt.origin_y + row * gt.pixel_height).to_radians();
                let (top, bottom) = (lat(y as f64), lat(y as f64 + 1.0));
                let dlon = gt.pixel_width.abs().to_radians();
                Some(
                    AUTHALIC_RADIUS_M * AUTHALIC_RADIUS_M * dlon * (top.sin() - bottom.sin()).abs(),
                )
            }
            PixelArea::Projected { m2 } => Some(m2),
            PixelArea::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geographic(origin_lat: f64, deg: f64) -> PixelArea {
        PixelArea::Geographic(GeoTransform {
            origin_x: 0.0,
            pixel_width: deg,
            skew_x: 0.0,
            origin_y: origin_lat,
            skew_y: 0.0,
            pixel_height: -deg,
        })
    }

    #[test]
    fn a_one_degree_cell_at_the_equator_is_about_12364_km2() {
        // 2πR²/360 · sin(1°) on the authalic sphere.
        let km2 = geographic(1.0, 1.0).row_m2(0).unwrap() / 1e6;
        assert!((km2 - 12_363.7).abs() < 1.0, "{km2}");
    }

    #[test]
    fn pixels_shrink_with_latitude_like_the_cosine() {
        let deg = 8.983e-5; // Sen1Floods11's ~10 m
        let equator = geographic(0.0 + deg, deg).row_m2(0).unwrap();
        let sixty = geographic(60.0, deg).row_m2(0).unwrap();
        assert!((equator - 99.8).abs() < 0.5, "{equator}");
        assert!((sixty / equator - 0.5).abs() < 1e-3);
    }
}
