//! The active config as JSON, for `/config`.

use meshwork_config::Config;

pub fn to_json(config: &Config) -> serde_json::Value {
    // Interim: names only, until the model serializes itself.
    serde_json::json!({
        "listeners": config.listeners.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        "route_tables": config.route_tables.keys().cloned().collect::<Vec<_>>(),
        "clusters": config.clusters.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
    })
}
