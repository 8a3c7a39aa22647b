//! The coordinate systems outlines are written in: the scene's own, or WGS 84 longitude and
//! latitude (what GeoJSON's RFC 7946 asks for), reprojected with proj4rs, a pure-Rust port of
//! PROJ. floodrt names the systems Sentinel-1 products come in (WGS 84 geographic, WGS 84 /
//! UTM, ETRS89 / UTM) rather than link a database of every EPSG code into the binary.

use proj4rs::proj::Proj;

#[derive(Debug, thiserror::Error)]
pub enum CrsError {
    #[error("the scene has no EPSG code, so its outlines cannot be reprojected; write them in the scene's CRS (leave out --vector-crs)")]
    Unnamed,
    #[error("EPSG:{0} is not one floodrt can reproject from (it knows EPSG:4326, WGS 84 / UTM 32601–32660 and 32701–32760, ETRS89 / UTM 25828–25838); warp the scene to UTM first (gdalwarp -t_srs EPSG:326NN) or leave out --vector-crs")]
    Unknown(u32),
    #[error("reprojecting EPSG:{epsg} to WGS 84 failed: {reason}")]
    Proj { epsg: u32, reason: String },
}

/// A coordinate system by EPSG code, with what PROJ and GeoPackage need to know of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Crs {
    pub epsg: u32,
    pub name: String,
    /// PROJ.4 definition.
    pub proj: String,
    /// OGC WKT 1 definition (GeoPackage's `gpkg_spatial_ref_sys`).
    pub wkt: String,
}

const WGS84_GEOGCS: &str = r#"GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]]"#;
const ETRS89_GEOGCS: &str = r#"GEOGCS["ETRS89",DATUM["European_Terrestrial_Reference_System_1989",SPHEROID["GRS 1980",6378137,298.257222101,AUTHORITY["EPSG","7019"]],TOWGS84[0,0,0,0,0,0,0],AUTHORITY["EPSG","6258"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4258"]]"#;

impl Crs {
    pub fn wgs84() -> Crs {
        Crs {
            epsg: 4326,
            name: "WGS 84".into(),
            proj: "+proj=longlat +datum=WGS84 +no_defs".into(),
            wkt: WGS84_GEOGCS.into(),
        }
    }

    /// The system `epsg` names, if floodrt knows it.
    pub fn from_epsg(epsg: u32) -> Result<Crs, CrsError> {
        let utm = |zone: u32, south: bool, etrs: bool| {
            let (datum, geogcs, tag) = if etrs {
                (
                    "+ellps=GRS80 +towgs84=0,0,0,0,0,0,0",
                    ETRS89_GEOGCS,
                    "ETRS89",
                )
            } else {
                ("+datum=WGS84", WGS84_GEOGCS, "WGS 84")
            };
            let hemisphere = if south { "S" } else { "N" };
            let name = format!("{tag} / UTM zone {zone}{hemisphere}");
            let meridian = zone as i32 * 6 - 183;
            let northing = if south { 10_000_000 } else { 0 };
            Crs {
                epsg,
                proj: format!(
                    "+proj=utm +zone={zone}{} {datum} +units=m +no_defs",
                    if south { " +south" } else { "" }
                ),
                wkt: format!(
                    r#"PROJCS["{name}",{geogcs},PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",{meridian}],PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",{northing}],UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["Easting",EAST],AXIS["Northing",NORTH],AUTHORITY["EPSG","{epsg}"]]"#
                ),
                name,
            }
        };
        match epsg {
            4326 => Ok(Crs::wgs84()),
            32601..=32660 => Ok(utm(epsg - 32600, false, false)),
            32701..=32760 => Ok(utm(epsg - 32700, true, false)),
            25828..=25838 => Ok(utm(epsg - 25800, false, true)),
            other => Err(CrsError::Unknown(other)),
        }
    }
}

/// Turns scene coordinates into WGS 84 degrees (longitude, latitude).
pub struct ToWgs84 {
    epsg: u32,
    from: Proj,
    to: Proj,
}

impl ToWgs84 {
    pub fn new(scene: &Crs) -> Result<ToWgs84, CrsError> {
        let proj = |text: &str| {
            Proj::from_proj_string(text).map_err(|e| CrsError::Proj {
                epsg: scene.epsg,
                reason: e.to_string(),
            })
        };
        Ok(ToWgs84 {
            epsg: scene.epsg,
            from: proj(&scene.proj)?,
            to: proj(&Crs::wgs84().proj)?,
        })
    }

    pub fn point(&self, x: f64, y: f64) -> Result<(f64, f64), CrsError> {
        // proj4rs takes and gives geographic coordinates in radians.
        let mut p = if self.from.is_latlong() {
            (x.to_radians(), y.to_radians(), 0.0)
        } else {
            (x, y, 0.0)
        };
        proj4rs::transform::transform(&self.from, &self.to, &mut p).map_err(|e| {
            CrsError::Proj {
                epsg: self.epsg,
                reason: format!("at ({x}, {y}): {e}"),
            }
        })?;
        Ok((p.0.to_degrees(), p.1.to_degrees()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_points_land_where_proj_puts_them() {
        // Against PROJ (GDAL 3.6's gdaltransform -s_srs EPSG:… -t_srs EPSG:4326 -output_xy).
        for (epsg, x, y, want_lon, want_lat) in [
            (32633, 500_000.0, 5_000_000.0, 15.0, 45.153477183356),
            (
                32633,
                612_345.6,
                4_123_456.7,
                16.2667961988656,
                37.2508886955414,
            ),
            (
                25832,
                612_345.6,
                4_123_456.7,
                10.2667961988746,
                37.2508886965298,
            ),
        ] {
            let t = ToWgs84::new(&Crs::from_epsg(epsg).unwrap()).unwrap();
            let (lon, lat) = t.point(x, y).unwrap();
            // 1e-8° is about a millimetre.
            assert!((lon - want_lon).abs() < 1e-8, "EPSG:{epsg} lon {lon}");
            assert!((lat - want_lat).abs() < 1e-8, "EPSG:{epsg} lat {lat}");
        }
        // Southern hemisphere: northing 10,000,000 at the equator.
        let t = ToWgs84::new(&Crs::from_epsg(32720).unwrap()).unwrap();
        let (lon, lat) = t.point(500_000.0, 10_000_000.0).unwrap();
        assert!((lon + 63.0).abs() < 1e-9 && lat.abs() < 1e-9, "{lon} {lat}");
        // WGS 84 to itself is the identity.
        let t = ToWgs84::new(&Crs::wgs84()).unwrap();
        let (lon, lat) = t.point(-63.25, -14.5).unwrap();
        assert!((lon + 63.25).abs() < 1e-12 && (lat + 14.5).abs() < 1e-12);
    }

    #[test]
    fn unknown_codes_are_refused_with_the_way_out() {
        let err = Crs::from_epsg(2154).unwrap_err().to_string();
        assert!(
            err.contains("EPSG:2154") && err.contains("gdalwarp"),
            "{err}"
        );
        assert!(Crs::from_epsg(32633)
            .unwrap()
            .wkt
            .contains(r#"AUTHORITY["EPSG","32633"]"#));
    }
}
