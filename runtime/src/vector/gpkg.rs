//! GeoPackage (OGC 12-128r18) outlines: one SQLite file with the GeoPackage metadata tables
//! and a `water` feature table of polygons in GeoPackage binary geometry (a small header with
//! the envelope, then little-endian WKB). Written to a temporary file, renamed into place.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{params, Connection};
use tempfile::NamedTempFile;

use super::{Feature, FeatureWriter, Georef};

/// The feature table's name, as GIS tools list the layer.
const TABLE: &str = "water";

pub struct GeoPackageWriter {
    target: PathBuf,
    temp: NamedTempFile,
    db: Connection,
    srs_id: i32,
    /// min x, min y, max x, max y of everything written.
    bounds: [f64; 4],
}

impl GeoPackageWriter {
    pub fn create(target: &Path, geo: &Georef) -> anyhow::Result<GeoPackageWriter> {
        let temp = crate::sink::temp_beside(target)?;
        let target = target.to_owned();
        let db = Connection::open(temp.path())
            .with_context(|| format!("creating the GeoPackage {}", target.display()))?;
        // The file is renamed into place only when complete, so SQLite's own journal buys
        // nothing here; one transaction holds every insert.
        db.execute_batch(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA application_id = 1196444487;
             PRAGMA user_version = 10300;
             BEGIN;
             CREATE TABLE gpkg_spatial_ref_sys (
               srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY,
               organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL,
               definition TEXT NOT NULL, description TEXT);
             CREATE TABLE gpkg_contents (
               table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
               identifier TEXT UNIQUE, description TEXT DEFAULT '',
               last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
               min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
               CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
             CREATE TABLE gpkg_geometry_columns (
               table_name TEXT NOT NULL, column_name TEXT NOT NULL,
               geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL,
               z TINYINT NOT NULL, m TINYINT NOT NULL,
               CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
               CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
               CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
             INSERT INTO gpkg_spatial_ref_sys VALUES
               ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
               ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system');",
        )?;
        let wgs84 = super::crs::Crs::wgs84();
        let srs_id = match &geo.crs {
            Some(crs) => {
                for c in [&wgs84, crs] {
                    db.execute(
                        "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?1, ?2, 'EPSG', ?2, ?3, NULL)",
                        params![c.name, c.epsg, c.wkt],
                    )?;
                }
                crs.epsg as i32
            }
            None => -1,
        };
        db.execute_batch(&format!(
            "CREATE TABLE {TABLE} (
               fid INTEGER PRIMARY KEY AUTOINCREMENT, geom POLYGON,
               class TEXT NOT NULL, pixels INTEGER NOT NULL, area_m2 REAL);"
        ))?;
        db.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id)
             VALUES (?1, 'features', ?1, 'water outlines traced by floodrt', ?2)",
            params![TABLE, srs_id],
        )?;
        db.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?1, 'geom', 'POLYGON', ?2, 0, 0)",
            params![TABLE, srs_id],
        )?;
        Ok(GeoPackageWriter {
            target,
            temp,
            db,
            srs_id,
            bounds: [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ],
        })
    }
}

impl FeatureWriter for GeoPackageWriter {
    fn feature(&mut self, f: &Feature) -> anyhow::Result<()> {
        let blob = geometry_blob(self.srs_id, &f.rings);
        for &(x, y) in f.rings.iter().flatten() {
            let b = &mut self.bounds;
            (b[0], b[1], b[2], b[3]) = (b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y));
        }
        self.db
            .prepare_cached(&format!(
                "INSERT INTO {TABLE} (geom, class, pixels, area_m2) VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute(params![blob, f.class, f.pixels as i64, f.area_m2])?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        let [x0, y0, x1, y1] = self.bounds;
        if x0.is_finite() {
            self.db.execute(
                "UPDATE gpkg_contents SET min_x = ?1, min_y = ?2, max_x = ?3, max_y = ?4",
                params![x0, y0, x1, y1],
            )?;
        }
        self.db.execute_batch("COMMIT;")?;
        self.db
            .close()
            .map_err(|(_, e)| e)
            .context("closing the GeoPackage")?;
        crate::sink::publish(self.temp, &self.target)
    }
}

/// GeoPackage binary: "GP", version 0, flags (little-endian, XY envelope), SRS id, envelope
/// (min x, max x, min y, max y), then the polygon as little-endian WKB.
fn geometry_blob(srs_id: i32, rings: &[Vec<(f64, f64)>]) -> Vec<u8> {
    let points: usize = rings.iter().map(|r| r.len()).sum();
    let mut b = Vec::with_capacity(8 + 32 + 9 + 4 * rings.len() + 16 * points);
    let (mut x0, mut y0, mut x1, mut y1) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in rings.iter().flatten() {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    b.extend_from_slice(b"GP");
    b.push(0); // version 1.0
    b.push(0b0000_0011); // envelope [minx, maxx, miny, maxy], little-endian
    b.extend_from_slice(&srs_id.to_le_bytes());
    for v in [x0, x1, y0, y1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.push(1); // WKB little-endian
    b.extend_from_slice(&3u32.to_le_bytes()); // Polygon
    b.extend_from_slice(&(rings.len() as u32).to_le_bytes());
    for ring in rings {
        b.extend_from_slice(&(ring.len() as u32).to_le_bytes());
        for &(x, y) in ring {
            b.extend_from_slice(&x.to_le_bytes());
            b.extend_from_slice(&y.to_le_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::geometry_blob;

    #[test]
    fn the_geometry_blob_has_the_header_envelope_and_wkb() {
        let square = vec![(0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (0.0, 1.0), (0.0, 0.0)];
        let b = geometry_blob(32633, &[square]);
        assert_eq!(&b[..4], b"GP\0\x03");
        assert_eq!(i32::from_le_bytes(b[4..8].try_into().unwrap()), 32633);
        let envelope: Vec<f64> = (0..4)
            .map(|i| f64::from_le_bytes(b[8 + 8 * i..16 + 8 * i].try_into().unwrap()))
            .collect();
        assert_eq!(envelope, [0.0, 2.0, 0.0, 1.0]);
        assert_eq!(b[40], 1);
        assert_eq!(u32::from_le_bytes(b[41..45].try_into().unwrap()), 3);
        assert_eq!(b.len(), 40 + 9 + 4 + 5 * 16);
    }
}
