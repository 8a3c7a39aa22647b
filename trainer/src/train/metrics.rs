//! Per-chip, per-event and pooled water metrics (the definitions live in
//! `flood_models::metrics`, shared with `floodrt eval`).

use std::collections::BTreeMap;

pub use flood_models::metrics::{Confusion, Scores};

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
        entry.1.add(&counts);
    }

    pub fn pooled(&self) -> Confusion {
        let mut all = Confusion::default();
        self.chips.values().for_each(|(_, c)| all.add(c));
        all
    }

    pub fn events(&self) -> BTreeMap<String, Confusion> {
        let mut events = BTreeMap::<String, Confusion>::new();
        for (event, c) in self.chips.values() {
            events.entry(event.clone()).or_default().add(c);
        }
        events
    }

    /// `{ "pooled": …, "events": {…}, "chips": {…} }`, each `{iou, f1, precision, recall, miou,
    /// counts}` as `floodrt eval` writes them; undefined scores are null.
    pub fn to_json(&self) -> serde_json::Value {
        let scores = |c: &Confusion| {
            let mut value = serde_json::to_value(c.scores()).unwrap_or_default();
            value["counts"] = serde_json::to_value(c).unwrap_or_default();
            value
        };
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
                fp: 0,
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
        let json = e.to_json();
        assert_eq!(json["chips"]["A_1"]["iou"], 0.5);
        assert_eq!(json["chips"]["A_1"]["counts"]["fn"], 1);
        // No water anywhere: IoU is undefined, written as null.
        assert!(json["chips"]["B_1"]["iou"].is_null());
    }
}
