//! `top`: a live view of the pool, each processor's load (with a bar for how
//! busy it is), memory and processes, asked of every board's process server
//! once a second until Ctrl-C or `q`. The view is drawn by a pure function
//! from one [`Snapshot`] ([`draw`]), tested on the host against a buffer; the
//! live loop around it only gathers, draws and reads keys. `--once` prints one
//! view as text, for a terminal that is not one (a pipe, a test).

use super::Workstation;
use super::processes::state_text;
use amoeba_abi::Status;
use amoeba_ipc::interfaces::process::{HostInfo, LOAD_UNIT, ProcessReport, ProcessState};
use amoeba_ipc::interfaces::process_server;
use anyhow::Result;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Gauge, Paragraph, Widget};
use std::time::Duration;

/// How often the view is refreshed.
pub const REFRESH: Duration = Duration::from_secs(1);

/// One board as `top` last saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardSnapshot {
    /// Its number.
    pub board: u16,
    /// Load and memory, or why it did not say.
    pub info: Result<HostInfo, Status>,
    /// Its live processes, or why it did not say.
    pub processes: Result<Vec<ProcessReport>, Status>,
}

/// Every board, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub boards: Vec<BoardSnapshot>,
}

/// Asks every board of the pool for its info and processes.
pub fn gather(workstation: &mut Workstation) -> Snapshot {
    let mut boards = workstation.boards();
    boards.sort_by_key(|(board, _)| *board);
    let boards = boards
        .into_iter()
        .map(|(board, host)| {
            let mut client = process_server::Client::new(workstation.rpc());
            let info = client.info(&host);
            // A board that did not answer once is not asked twice a round.
            let processes = match &info {
                Ok(_) => client.processes(&host).map(|mut list| {
                    list.retain(|p| !matches!(p.state, ProcessState::Exited(_)));
                    list
                }),
                Err(status) => Err(*status),
            };
            BoardSnapshot { board, info, processes }
        })
        .collect();
    Snapshot { boards }
}

/// What one board's part of the view says, before it is laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardView {
    /// `board2  load 1.98  free 200 MiB  largest run 180 MiB  3 processes`.
    pub title: String,
    /// How busy its processor was over the last second, 0.0 to 1.0.
    pub busy: f64,
    /// The bar's label: `load 1.98, busy 100 %`.
    pub bar_label: String,
    /// One line per process: pid, program, state, CPU time.
    pub lines: Vec<String>,
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// The content of one board's part (a pure function of the snapshot).
pub fn board_view(board: &BoardSnapshot) -> BoardView {
    let name = format!("board{}", board.board);
    let (title, busy, bar_label) = match &board.info {
        Ok(info) => {
            let load = info.load_milli() as f64 / f64::from(LOAD_UNIT);
            let busy = (f64::from(info.cpu_load_milli) / f64::from(LOAD_UNIT)).clamp(0.0, 1.0);
            (
                format!(
                    "{name}  load {load:.2}  free {} MiB  largest run {} MiB  {} processes",
                    mib(info.free_bytes),
                    mib(info.largest_free),
                    info.processes
                ),
                busy,
                format!("load {load:.2}, busy {:.0} %", busy * 100.0),
            )
        }
        Err(status) => (format!("{name}  not answering ({status})"), 0.0, String::from("no report")),
    };
    let lines = match &board.processes {
        Ok(list) => list
            .iter()
            .map(|p| {
                format!("{:>6}  {:<20} {:<10} {:>9.2} s", p.pid, p.name, state_text(p), p.cpu_us as f64 / 1e6)
            })
            .collect(),
        Err(status) => vec![format!("(no process list: {status})")],
    };
    BoardView { title, busy, bar_label, lines }
}

/// Rows one board's part takes: its frame (2), its bar, its processes.
fn board_height(view: &BoardView) -> u16 {
    3 + view.lines.len() as u16
}

/// Draws the whole view into `area` of `buffer` (boards that do not fit are
/// left out, with a note of how many).
pub fn draw(snapshot: &Snapshot, area: Rect, buffer: &mut Buffer) {
    let views: Vec<BoardView> = snapshot.boards.iter().map(board_view).collect();
    let header = Line::from(format!(
        "pool: {} boards, {} processes — q or Ctrl-C to quit",
        snapshot.boards.len(),
        views.iter().map(|v| v.lines.len()).sum::<usize>()
    ));
    let [top, mut rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    Paragraph::new(header).render(top, buffer);
    for (shown, view) in views.iter().enumerate() {
        let height = board_height(view);
        if height > rest.height {
            let left = views.len() - shown;
            if rest.height > 0 {
                Paragraph::new(format!("... {left} more boards (a taller terminal shows them)"))
                    .render(Rect { height: 1, ..rest }, buffer);
            }
            return;
        }
        let [part, below] = Layout::vertical([Constraint::Length(height), Constraint::Min(0)]).areas(rest);
        rest = below;
        let block = Block::bordered().title(view.title.as_str());
        let inner = block.inner(part);
        block.render(part, buffer);
        let [bar, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
        let color = if view.busy > 0.9 {
            Color::Red
        } else if view.busy > 0.5 {
            Color::Yellow
        } else {
            Color::Green
        };
        Gauge::default()
            .gauge_style(Style::default().fg(color))
            .ratio(view.busy)
            .label(view.bar_label.as_str())
            .render(bar, buffer);
        let lines: Vec<Line> = view.lines.iter().map(|l| Line::from(l.as_str())).collect();
        Paragraph::new(lines).render(list, buffer);
    }
}

/// The view as plain text, `width` columns wide and as tall as it needs.
pub fn text(snapshot: &Snapshot, width: u16) -> String {
    let height = 1 + snapshot.boards.iter().map(|b| board_height(&board_view(b))).sum::<u16>();
    let area = Rect::new(0, 0, width, height);
    let mut buffer = Buffer::empty(area);
    draw(snapshot, area, &mut buffer);
    let mut out = String::new();
    for y in 0..area.height {
        let row: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

/// The live view until Ctrl-C, `q` or Esc.
pub fn run(workstation: &mut Workstation) -> Result<()> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> Result<()> {
        loop {
            let snapshot = gather(workstation);
            terminal.draw(|frame: &mut Frame| draw(&snapshot, frame.area(), frame.buffer_mut()))?;
            let deadline = std::time::Instant::now() + REFRESH;
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                if !event::poll(left)? {
                    break;
                }
                if let Event::Key(key) = event::read()?
                    && key.kind == KeyEventKind::Press
                {
                    let ctrl_c =
                        key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                        return Ok(());
                    }
                }
            }
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use amoeba_ipc::interfaces::process::Activity;

    fn process(pid: u32, name: &str, activity: Activity, cpu_us: u64) -> ProcessReport {
        ProcessReport {
            pid,
            name: String::from(name),
            state: ProcessState::Running,
            threads: 1,
            cpu_us,
            segments: Vec::new(),
            pc: 0,
            sp: 0,
            activity,
            owned: false,
        }
    }

    fn snapshot() -> Snapshot {
        let info = HostInfo {
            runnable_milli: 2_000,
            cpu_load_milli: 1_000,
            free_bytes: 200 << 20,
            largest_free: 180 << 20,
            processes: 2,
            ..HostInfo::default()
        };
        Snapshot {
            boards: vec![
                BoardSnapshot {
                    board: 0,
                    info: Ok(info),
                    processes: Ok(vec![
                        process(3, "hog", Activity::Runnable, 12_340_000),
                        process(4, "ticker", Activity::Transaction, 10_000),
                    ]),
                },
                BoardSnapshot { board: 1, info: Err(Status::RpcFailure), processes: Err(Status::RpcFailure) },
            ],
        }
    }

    #[test]
    fn a_board_shows_its_load_memory_and_processes() {
        let view = board_view(&snapshot().boards[0]);
        assert_eq!(view.title, "board0  load 2.00  free 200 MiB  largest run 180 MiB  2 processes");
        assert!((view.busy - 1.0).abs() < 1e-9);
        assert_eq!(view.bar_label, "load 2.00, busy 100 %");
        assert_eq!(view.lines.len(), 2);
        assert!(
            view.lines[0].contains("hog")
                && view.lines[0].contains("running")
                && view.lines[0].contains("12.34 s")
        );
        assert!(view.lines[1].contains("ticker") && view.lines[1].contains("blocked"), "{:?}", view.lines);
    }

    #[test]
    fn a_silent_board_says_so() {
        let view = board_view(&snapshot().boards[1]);
        assert!(view.title.contains("board1") && view.title.contains("not answering"), "{}", view.title);
        assert_eq!(view.busy, 0.0);
    }

    #[test]
    fn the_drawn_view_has_every_board_with_a_bar() {
        let text = text(&snapshot(), 80);
        assert!(text.starts_with("pool: 2 boards, 3 processes"), "{text}");
        assert!(text.contains("board0  load 2.00"), "{text}");
        assert!(text.contains("load 2.00, busy 100 %"), "{text}");
        assert!(text.contains("hog") && text.contains("ticker"), "{text}");
        assert!(text.contains("board1  not answering"), "{text}");
        // A full bar fills its row with the block symbol.
        assert!(text.lines().any(|l| l.matches('█').count() > 40), "{text}");
    }

    #[test]
    fn boards_that_do_not_fit_are_counted() {
        let area = Rect::new(0, 0, 60, 7);
        let mut buffer = Buffer::empty(area);
        draw(&snapshot(), area, &mut buffer);
        let text: String = (0..area.height)
            .map(|y| (0..area.width).map(|x| buffer[(x, y)].symbol()).collect::<String>() + "\n")
            .collect();
        assert!(text.contains("board0") && text.contains("... 1 more boards"), "{text}");
    }
}
