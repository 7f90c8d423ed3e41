//! Every Loki query of every dashboard is well-formed LogQL and uses only
//! label names our log shipper's configs produce: stream selectors only
//! stream labels, label filters and groupings only stream labels or
//! fields the query's own pipeline extracts. A dashboard filtering on a
//! label no shipper sets shows "No data" forever; this is where it fails
//! instead. (No Loki runs here: dashboards_data.rs lists these panels as
//! having no data yet.)

use e2e_tests::assert_no_problems;
use e2e_tests::dashboard::{loki_variables, substitute, Dashboard};
use e2e_tests::grafana::{dashboard_files, example_environment, file_name, Provisioning};
use e2e_tests::logql::{self, LabelUse};
use e2e_tests::shipper_labels::shipper_labels;
use serde_json::Value;

/// Labels Loki itself gives every parsed line.
const LOKI_BUILTIN_LABELS: &[&str] = &["__error__", "__error_details__"];

#[test]
fn loki_queries_use_only_the_labels_the_shipper_attaches() {
    let labels = shipper_labels().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "stream labels from {}: {:?}; line fields: {:?}",
        labels.source, labels.stream, labels.line_fields
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for f in dashboard_files() {
        let name = file_name(&f);
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let dashboard = Dashboard::from_json(json);
        let vars = loki_variables(&dashboard.variables);
        // Loki label-values variables list a stream label.
        for v in &dashboard.variables {
            if let Some(label) = v.loki_label() {
                if !labels.stream.contains(label) {
                    problems.push(format!(
                        "{name}: variable ${} lists the values of {label:?}, which no shipper config attaches",
                        v.name
                    ));
                }
            }
        }
        for q in dashboard
            .queries
            .iter()
            .filter(|q| q.datasource.as_deref() == Some("loki"))
        {
            checked += 1;
            let at = format!("{name}: panel {:?}", q.panel);
            let expr = match substitute(&q.expr, &vars) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(format!("{at}: {e}"));
                    continue;
                }
            };
            let parsed = match logql::parse(&expr) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("{at}: not LogQL: {e}\n      {expr}"));
                    continue;
                }
            };
            let known = |l: &String| {
                labels.stream.contains(l)
                    || parsed.extracted.contains(l)
                    || LOKI_BUILTIN_LABELS.contains(&l.as_str())
                    || (parsed.extracts_all_fields && labels.line_fields.contains(l))
            };
            for u in &parsed.uses {
                match u {
                    LabelUse::Stream(l) if !labels.stream.contains(l) => problems.push(format!(
                        "{at}: stream selector uses {l:?}, which no shipper config attaches"
                    )),
                    LabelUse::Filter(l) if !known(l) => problems.push(format!(
                        "{at}: uses the label {l:?}, neither a stream label nor one its pipeline extracts"
                    )),
                    _ => {}
                }
            }
        }
    }
    // Derived fields that match a label match a stream label.
    let prov = Provisioning::load(&example_environment()).unwrap_or_else(|p| panic!("{p:#?}"));
    for ds in &prov.datasources {
        for f in ds
            .derived_fields
            .iter()
            .filter(|f| f.matcher_type == "label")
        {
            if !labels.stream.contains(&f.matcher_regex) {
                problems.push(format!(
                    "datasource {:?}: derived field {:?} matches the label {:?}, which no shipper config attaches",
                    ds.name, f.name, f.matcher_regex
                ));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} Loki queries found in the dashboards"
    );
    eprintln!("checked {checked} Loki queries");
    assert_no_problems("Loki queries", &problems);
}
