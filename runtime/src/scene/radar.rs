//! What a radar product says about itself: which polarisation a file or band holds and in which
//! units, read from band descriptions and from the names the common products give their files;
//! and whether the values agree with the units claimed.

use std::fmt;

/// Units of radar backscatter in a scene. Scenes are converted to dB as they are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RadarUnits {
    /// Decibels: 10·log10(power). Sen1Floods11, Earth Engine exports, SNAP `*_db` bands.
    Db,
    /// Linear power (intensity): ASF HyP3 `power`, Planetary Computer `sentinel-1-rtc`, SNAP.
    Linear,
    /// Amplitude, √power: ASF HyP3 `amplitude`.
    Amplitude,
}

impl fmt::Display for RadarUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RadarUnits::Db => "dB",
            RadarUnits::Linear => "linear power",
            RadarUnits::Amplitude => "amplitude",
        })
    }
}

impl RadarUnits {
    /// The `--scene-units` value that declares these units.
    pub fn flag(self) -> &'static str {
        match self {
            RadarUnits::Db => "db",
            RadarUnits::Linear => "linear",
            RadarUnits::Amplitude => "amplitude",
        }
    }

    /// One value in these units, in dB. Power and amplitude at or below zero have no dB value
    /// and become no data (NaN).
    #[inline]
    pub fn to_db(self, x: f32) -> f32 {
        match self {
            RadarUnits::Db => x,
            RadarUnits::Linear if x > 0.0 => 10.0 * x.log10(),
            RadarUnits::Amplitude if x > 0.0 => 20.0 * x.log10(),
            _ => f32::NAN,
        }
    }
}

/// Polarisations a Sentinel-1 (or any dual-pol C-band) product may hold.
pub const POLARISATIONS: [&str; 4] = ["vv", "vh", "hh", "hv"];

pub fn is_polarisation(band: &str) -> bool {
    POLARISATIONS.contains(&band.to_ascii_lowercase().as_str())
}

/// The words of a file name or description: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The one polarisation a name states (`…_VV.tif`, `iw-vh.rtc.tiff`, `Sigma0_VV_db`), or None
/// when it states none or several.
pub fn polarisation_in(text: &str) -> Option<&'static str> {
    let mut found = words(text).filter_map(|w| {
        POLARISATIONS
            .iter()
            .copied()
            .find(|p| w.eq_ignore_ascii_case(p))
    });
    let first = found.next()?;
    found.all(|other| other == first).then_some(first)
}

/// For a file name stating VV or VH as one word (`…_VV.tif`, `iw-vh.rtc.tiff`): that
/// polarisation and the same name with the other one, in the same letter case.
pub fn partner_name(name: &str) -> Option<(&'static str, String)> {
    let given = polarisation_in(name).filter(|p| matches!(*p, "vv" | "vh"))?;
    let other = if given == "vv" { "vh" } else { "vv" };
    let mut out = String::with_capacity(name.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.eq_ignore_ascii_case(given) {
            let upper = word.chars().all(|c| c.is_ascii_uppercase());
            out.push_str(&if upper {
                other.to_ascii_uppercase()
            } else {
                other.to_string()
            });
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    Some((given, out))
}

/// Units stated by a product's file name, with the product that names files that way.
///
/// - ASF HyP3 RTC: `S1A_IW_20180128T161201_DVP_RTC30_G_gpuned_FD6A_VV.tif`, where the second
///   letter of the six after `RTC30_G_` is the scale: `p` power, `a` amplitude, `d` dB.
/// - Microsoft Planetary Computer `sentinel-1-rtc`: `iw-vv.rtc.tiff`, linear power.
pub fn units_in_file_name(name: &str) -> Option<(RadarUnits, &'static str)> {
    let w: Vec<&str> = words(name).collect();
    for i in 0..w.len().saturating_sub(2) {
        let is_rtc = w[i].starts_with("RTC") && w[i][3..].bytes().all(|b| b.is_ascii_digit());
        let options = w[i + 2].as_bytes();
        if is_rtc && matches!(w[i + 1], "G" | "I") && options.len() == 6 {
            let units = match options[1] {
                b'p' => RadarUnits::Linear,
                b'a' => RadarUnits::Amplitude,
                b'd' => RadarUnits::Db,
                _ => continue,
            };
            return Some((units, "the ASF HyP3 file name"));
        }
    }
    let lower = name.to_ascii_lowercase();
    let planetary = [".rtc.tif", ".rtc.tiff"].iter().any(|s| lower.ends_with(s));
    planetary.then_some((
        RadarUnits::Linear,
        "the Planetary Computer sentinel-1-rtc file name",
    ))
}

/// Units stated by a band's GDAL unit type or by its description (SNAP names its bands
/// `Sigma0_VV` in linear power and `Sigma0_VV_db` in dB).
pub fn units_in_band(description: Option<&str>, unit_type: Option<&str>) -> Option<RadarUnits> {
    if let Some(unit) = unit_type.map(|u| u.trim().to_ascii_lowercase()) {
        match unit.as_str() {
            "db" | "decibel" | "decibels" => return Some(RadarUnits::Db),
            "linear" | "power" | "intensity" => return Some(RadarUnits::Linear),
            "amplitude" => return Some(RadarUnits::Amplitude),
            _ => {}
        }
    }
    let description = description?;
    let has = |word: &str| words(description).any(|w| w.eq_ignore_ascii_case(word));
    if has("db") || has("decibel") {
        return Some(RadarUnits::Db);
    }
    if has("amplitude") || words(description).any(|w| w.starts_with("Amplitude")) {
        return Some(RadarUnits::Amplitude);
    }
    let snap_linear = ["Sigma0", "Gamma0", "Beta0", "Intensity"];
    words(description)
        .any(|w| snap_linear.iter().any(|s| w.eq_ignore_ascii_case(s)))
        .then_some(RadarUnits::Linear)
}

/// What sampled values say about their units: a refusal reason when they contradict `units`.
pub fn contradiction(units: RadarUnits, sample: &mut [f32]) -> Option<String> {
    // Fewer than this and a scene of mostly no data could be judged on noise.
    if sample.len() < 256 {
        return None;
    }
    let negative = sample.iter().filter(|&&x| x < 0.0).count() as f64 / sample.len() as f64;
    let mid = sample.len() / 2;
    let median = *sample.select_nth_unstable_by(mid, f32::total_cmp).1;
    match units {
        RadarUnits::Linear | RadarUnits::Amplitude if negative > 0.01 => Some(format!(
            "{:.0} % of the sampled values are negative (median {median:.2}), which {units} never is: they look like dB",
            100.0 * negative
        )),
        RadarUnits::Db if negative < 0.001 && median > 0.0 && median <= 1.0 => Some(format!(
            "no sampled value is negative and their median is {median:.4}: they look like linear power or amplitude, not dB (water and land are both well below 0 dB)"
        )),
        RadarUnits::Db if median > 60.0 => Some(format!(
            "their median is {median:.0}, far above any backscatter in dB: they look like uncalibrated digital numbers"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_state_their_polarisation_in_their_names() {
        let hyp3 = "S1A_IW_20180128T161201_DVP_RTC30_G_gpuned_FD6A_VH.tif";
        assert_eq!(polarisation_in(hyp3), Some("vh"));
        assert_eq!(polarisation_in("measurement/iw-vv.rtc.tiff"), Some("vv"));
        assert_eq!(polarisation_in("Sigma0_VV_db"), Some("vv"));
        assert_eq!(polarisation_in("stack_vv_vh.tif"), None);
        assert_eq!(polarisation_in("river.tif"), None);
        // A word that merely contains the letters is not a polarisation.
        assert_eq!(polarisation_in("vvv_hvac.tif"), None);
    }

    #[test]
    fn split_products_name_their_other_polarisation() {
        let hyp3 = "S1A_IW_20180128T161201_DVP_RTC30_G_gpuned_FD6A_VV.tif";
        assert_eq!(
            partner_name(hyp3),
            Some(("vv", hyp3.replace("_VV.tif", "_VH.tif")))
        );
        assert_eq!(
            partner_name("iw-vh.rtc.tiff"),
            Some(("vh", "iw-vv.rtc.tiff".to_string()))
        );
        assert_eq!(partner_name("scene.tif"), None);
        assert_eq!(partner_name("hh_only.tif"), None);
    }

    #[test]
    fn hyp3_and_planetary_computer_names_state_units() {
        let name =
            |scale: &str| format!("S1A_IW_20180128T161201_DVP_RTC30_G_g{scale}uned_FD6A_VV.tif");
        assert_eq!(
            units_in_file_name(&name("p")).map(|u| u.0),
            Some(RadarUnits::Linear)
        );
        assert_eq!(
            units_in_file_name(&name("a")).map(|u| u.0),
            Some(RadarUnits::Amplitude)
        );
        assert_eq!(
            units_in_file_name(&name("d")).map(|u| u.0),
            Some(RadarUnits::Db)
        );
        assert_eq!(units_in_file_name(&name("x")), None);
        assert_eq!(
            units_in_file_name("iw-vh.rtc.tiff").map(|u| u.0),
            Some(RadarUnits::Linear)
        );
        assert_eq!(units_in_file_name("flood_VV.tif"), None);
    }

    #[test]
    fn band_metadata_states_units() {
        assert_eq!(
            units_in_band(Some("Sigma0_VV"), None),
            Some(RadarUnits::Linear)
        );
        assert_eq!(
            units_in_band(Some("Sigma0_VV_db"), None),
            Some(RadarUnits::Db)
        );
        assert_eq!(
            units_in_band(Some("Amplitude_VH"), None),
            Some(RadarUnits::Amplitude)
        );
        assert_eq!(units_in_band(Some("VV"), Some("dB")), Some(RadarUnits::Db));
        assert_eq!(units_in_band(Some("VV"), None), None);
        assert_eq!(units_in_band(None, None), None);
    }

    #[test]
    fn values_that_contradict_their_units_are_caught() {
        let db: Vec<f32> = (0..1000).map(|i| -25.0 + (i % 30) as f32).collect();
        let linear: Vec<f32> = db.iter().map(|&x| 10f32.powf(x / 10.0)).collect();
        let amplitude: Vec<f32> = linear.iter().map(|x| x.sqrt()).collect();
        let digital: Vec<f32> = (0..1000).map(|i| 80.0 + i as f32).collect();
        let judge = |u, v: &[f32]| contradiction(u, &mut v.to_vec());
        assert!(judge(RadarUnits::Db, &db).is_none());
        assert!(judge(RadarUnits::Linear, &linear).is_none());
        assert!(judge(RadarUnits::Amplitude, &amplitude).is_none());
        assert!(judge(RadarUnits::Linear, &db)
            .unwrap()
            .contains("look like dB"));
        assert!(judge(RadarUnits::Amplitude, &db).is_some());
        assert!(judge(RadarUnits::Db, &linear)
            .unwrap()
            .contains("linear power"));
        assert!(judge(RadarUnits::Db, &amplitude).is_some());
        assert!(judge(RadarUnits::Db, &digital)
            .unwrap()
            .contains("digital numbers"));
        assert!(
            judge(RadarUnits::Linear, &db[..10]).is_none(),
            "too few to judge"
        );
    }

    #[test]
    fn conversion_to_db_inverts_each_scale() {
        for db in [-30.0f32, -12.5, 0.0, 3.0] {
            let p = 10f32.powf(db / 10.0);
            assert!((RadarUnits::Linear.to_db(p) - db).abs() < 1e-4);
            assert!((RadarUnits::Amplitude.to_db(p.sqrt()) - db).abs() < 1e-4);
            assert_eq!(RadarUnits::Db.to_db(db), db);
        }
        assert!(RadarUnits::Linear.to_db(0.0).is_nan());
    }
}
