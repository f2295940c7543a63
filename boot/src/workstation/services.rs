//! `services`: the services the boot service keeps up, as it reports them by
//! RPC: each one's board, state, restarts, when it last answered, and its
//! latest start.

use super::Workstation;
use amoeba_ipc::interfaces::boot::{RestartRecord, ServiceReport, ServiceState};
use amoeba_ipc::interfaces::boot_service;
use anyhow::{Context, Result};
use std::fmt::Write as _;

fn state_text(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Up => "up",
        ServiceState::Suspect => "suspect",
        ServiceState::Restarting => "restarting",
        ServiceState::Dead => "dead",
    }
}

fn seconds(us: u64) -> String {
    format!("{:.1} s", us as f64 / 1e6)
}

fn last_start(record: &RestartRecord) -> String {
    let outcome = match &record.outcome {
        None => String::from("under way"),
        Some(Ok(())) => String::from("started"),
        Some(Err(why)) => format!("failed: {why}"),
    };
    format!(
        "on board {} {} ago ({}): {outcome}",
        record.board,
        seconds(record.ago_us),
        boot_server::reason_text(&record.reason)
    )
}

/// The table `services` prints.
pub fn services_table(reports: &[ServiceReport]) -> String {
    let mut table = format!(
        "{:<14} {:<18} {:>5}  {:<10} {:>8}  {:<10} {}\n",
        "SERVICE", "PROGRAM", "BOARD", "STATE", "RESTARTS", "ANSWERED", "WHY"
    );
    for report in reports {
        let board = report.board.map_or_else(|| String::from("-"), |b| b.to_string());
        let answered =
            report.answered_us_ago.map_or_else(|| String::from("never"), |us| format!("{} ago", seconds(us)));
        let _ = writeln!(
            table,
            "{:<14} {:<18} {:>5}  {:<10} {:>8}  {:<10} {}",
            report.name,
            report.program,
            board,
            state_text(report.state),
            report.restarts,
            answered,
            report.note
        );
    }
    let restarted: Vec<&ServiceReport> = reports.iter().filter(|r| !r.history.is_empty()).collect();
    if !restarted.is_empty() {
        table.push_str("\nlatest starts:\n");
        for report in restarted {
            if let Some(record) = report.history.last() {
                let _ = writeln!(table, "  {:<14} {}", report.name, last_start(record));
            }
        }
    }
    table
}

/// `services`: asks the boot service.
pub fn services(workstation: &mut Workstation) -> Result<String> {
    let boot = workstation
        .capability("boot")
        .context("the pool has no boot service (start the pool with `just up`)")?;
    let reports = boot_service::Client::new(workstation.rpc())
        .services(&boot)
        .map_err(|status| anyhow::anyhow!("the boot service is not reachable ({status})"))?;
    Ok(services_table(&reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amoeba_ipc::interfaces::boot::RestartReason;

    #[test]
    fn the_table_shows_each_service_and_the_latest_starts() {
        let report = |name: &str, state, restarts, history: Vec<RestartRecord>| ServiceReport {
            name: String::from(name),
            program: String::from("prog"),
            board: Some(0),
            state,
            note: String::from("why"),
            restarts,
            answered_us_ago: Some(1_500_000),
            history,
        };
        let start = RestartRecord {
            ago_us: 2_000_000,
            board: 0,
            reason: RestartReason::ProcessEnded,
            outcome: Some(Err(String::from("no memory"))),
        };
        let table = services_table(&[
            report("bullet", ServiceState::Up, 0, Vec::new()),
            report("run", ServiceState::Dead, 1, vec![start]),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].starts_with("bullet") && lines[1].contains(" up ") && lines[1].contains("1.5 s ago")
        );
        assert!(lines[2].starts_with("run") && lines[2].contains(" dead "), "{table}");
        assert!(
            table.contains("run            on board 0 2.0 s ago (its process ended): failed: no memory"),
            "{table}"
        );
    }
}
