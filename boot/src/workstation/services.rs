//! `services`: the services the boot service keeps up, as it reports them by
//! RPC: each one's board, state, restarts, when it last answered, and its
//! latest start.

use super::Workstation;
use amoeba::interfaces::boot::{RestartRecord, ServiceReport, ServiceState};
use amoeba::interfaces::boot_service;
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
