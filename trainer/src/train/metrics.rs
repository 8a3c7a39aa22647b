//! Confusion counts and the paper's metrics: pooled water IoU, F1, precision, recall, mIoU,
//! per chip, per event and over the whole set.

use std::collections::BTreeMap;

/// Water-class confusion counts over valid pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
}

impl Confusion {
    pub fn add_pixel(&mut self, predicted_water: bool, is_water: bool) {
        match (predicted_water, is_water) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    pub fn merge(&mut self, other: &Confusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    fn ratio(num: u64, den: u64) -> f64 {
        if den == 0 {
            f64::NAN
        } else {
            num as f64 / den as f64
        }
    }

    /// TP / (TP + FP + FN): the paper's IoU.
    pub fn water_iou(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp + self.fn_)
    }
    pub fn land_iou(&self) -> f64 {
        Self::ratio(self.tn, self.tn + self.fp + self.fn_)
    }
    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }
    /// 2·TP / (2·TP + FP + FN) = 2·IoU / (1 + IoU).
    pub fn f1(&self) -> f64 {
        Self::ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    /// Mean of the water and land IoU.
    pub fn miou(&self) -> f64 {
        (self.water_iou() + self.land_iou()) / 2.0
    }

    pub fn summary(&self) -> Scores {
        Scores {
            water_iou: self.water_iou(),
            f1: self.f1(),
            precision: self.precision(),
            recall: self.recall(),
            miou: self.miou(),
            counts: *self,
        }
    }
}

/// Metrics of one group of pixels (NaN where undefined, e.g. IoU with no water at all).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Scores {
    pub water_iou: f64,
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub miou: f64,
    pub counts: Confusion,
}

/// Per-chip counts, grouped into events and pooled.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub chips: BTreeMap<String, (String, Confusion)>,
}

impl Evaluation {
    pub fn add_chip(&mut self, name: &str, event: &str, counts: Confusion) {
        let entry = self
            .chips
            .entry(name.to_string())
            .or_insert_with(|| (event.to_string(), Confusion::default()));
        entry.1.merge(&counts);
    }

    pub fn pooled(&self) -> Confusion {
        let mut all = Confusion::default();
        self.chips.values().for_each(|(_, c)| all.merge(c));
        all
    }

    pub fn events(&self) -> BTreeMap<String, Confusion> {
        let mut events = BTreeMap::<String, Confusion>::new();
        for (event, c) in self.chips.values() {
            events.entry(event.clone()).or_default().merge(c);
        }
        events
    }

    /// `{ "pooled": …, "events": {…}, "chips": {…} }`; NaN becomes null.
    pub fn to_json(&self) -> serde_json::Value {
        let scores =
            |c: &Confusion| serde_json::to_value(c.summary()).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "metric": "water IoU pooled over valid pixels (TP/(TP+FP+FN)); F1 = 2·IoU/(1+IoU); mIoU = mean of water and land IoU",
            "pooled": scores(&self.pooled()),
            "events": self.events().iter().map(|(k, c)| (k.clone(), scores(c))).collect::<serde_json::Map<_, _>>(),
            "chips": self.chips.iter().map(|(k, (_, c))| (k.clone(), scores(c))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_their_definitions() {
        let c = Confusion {
            tp: 6,
            fp: 2,
            fn_: 2,
            tn: 10,
        };
        assert!((c.water_iou() - 0.6).abs() < 1e-12);
        assert!((c.f1() - 2.0 * 0.6 / 1.6).abs() < 1e-12);
        assert!((c.land_iou() - 10.0 / 14.0).abs() < 1e-12);
        assert!((c.precision() - 0.75).abs() < 1e-12);
        assert!(Confusion::default().water_iou().is_nan());
    }

    #[test]
    fn events_and_pool_add_up_chips() {
        let mut e = Evaluation::default();
        e.add_chip(
            "A_1",
            "A",
            Confusion {
                tp: 1,
                fp: 0,
                fn_: 1,
                tn: 2,
            },
        );
        e.add_chip(
            "A_2",
            "A",
            Confusion {
                tp: 3,
                fp: 1,
                fn_: 0,
                tn: 0,
            },
        );
        e.add_chip(
            "B_1",
            "B",
            Confusion {
                tp: 0,
                fp: 1,
                fn_: 0,
                tn: 5,
            },
        );
        assert_eq!(
            e.events()["A"],
            Confusion {
                tp: 4,
                fp: 1,
                fn_: 1,
                tn: 2
            }
        );
        assert_eq!(e.pooled().tp, 4);
        assert_eq!(e.pooled().fp, 2);
        // NaN scores serialise as null rather than failing.
        assert!(e.to_json()["chips"]["B_1"]["water_iou"].is_number());
    }
}
