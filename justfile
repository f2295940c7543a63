# Recipes for the Amoeba-style processor pool. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

nucleus_target := "aarch64-unknown-none"
boot := "target/release/boot"

# Show the recipes.
default:
    @just --list

# Build the nucleus and the user programs (aarch64), and the host program.
build:
    cargo build --release -p nucleus -p user-programs --target {{nucleus_target}}
    cargo build --release -p boot

# Boot a pool of N boards and keep it running until Ctrl-C or `just down`.
up n="4" *args: build
    {{boot}} up {{n}} {{args}}

# Stop the running pool.
down:
    {{boot}} down

# Show the running pool's boards, faults and switch counters.
status:
    {{boot}} status

# Change the running pool's faults, e.g. `just fault loss=20 dup=5`, `just fault partition=b0,h0/b1`, `just fault heal`.
fault +spec:
    {{boot}} fault {{spec}}

# Run a program where the run server puts it, as a session: input and output here, Ctrl-C interrupts it, its status is ax's (`--on 2`, `--detach`: output to a log).
[no-exit-message]
[positional-arguments]
ax +args:
    @{{boot}} ax "$@"

# The rows of a directory with their column masks, e.g. `just ls /bin`.
[no-exit-message]
[positional-arguments]
ls path="/":
    @{{boot}} ls "$1"

# Make a directory, e.g. `just mkdir /home`.
[no-exit-message]
[positional-arguments]
mkdir path:
    @{{boot}} mkdir "$1"

# Remove an entry (a file goes from the file server too; a directory must be empty).
[no-exit-message]
[positional-arguments]
rm path:
    @{{boot}} rm "$1"

# Set an entry's column masks (hex per column), e.g. `just chmod /home/notes ff:02:00`.
[no-exit-message]
[positional-arguments]
chmod path masks:
    @{{boot}} chmod "$1" "$2"

# Store a local file at a path, e.g. `just put README.md /home/readme`.
[no-exit-message]
[positional-arguments]
put local path:
    @{{boot}} put "$1" "$2"

# Fetch a file to LOCAL, or to standard output without it.
[no-exit-message]
[positional-arguments]
get path *local:
    @{{boot}} get "$@"

# What the object at a path says of itself.
[no-exit-message]
[positional-arguments]
info path:
    @{{boot}} info "$1"

# Every process on every board of the running pool: running, blocked (on output, a file, a server), serving, waiting (`--all`: also those that ended).
[no-exit-message]
[positional-arguments]
ps *args:
    @{{boot}} ps "$@"

# Each processor's load, free memory, largest free run, and whether the run server counts it alive.
[no-exit-message]
hosts:
    @{{boot}} hosts

# A live view of each processor's load (with a bar), memory and processes, every second until Ctrl-C (`--once`: one view as text).
[no-exit-message]
[positional-arguments]
top *args:
    @{{boot}} top "$@"

# The services the boot service keeps up: board, state (up / suspect / restarting / dead), restarts, last answer.
[no-exit-message]
services:
    @{{boot}} services

# Kill board N of the running pool (SIGKILL) and boot it again; the boot service restarts what ran there.
restart-board n:
    {{boot}} restart-board {{n}}

# Freeze a process (capability, BOARD/PID, or a program name `ps` shows).
[no-exit-message]
[positional-arguments]
stun process:
    @{{boot}} stun "$1"

# Let a stunned process run again.
[no-exit-message]
[positional-arguments]
resume process:
    @{{boot}} resume "$1"

# End a process (`just kill --all hog`: every process running hog).
[no-exit-message]
[positional-arguments]
kill +args:
    @{{boot}} kill "$@"

# Print a detached program's log (BOARD/PID, capability or program name; `--follow` keeps printing).
[no-exit-message]
[positional-arguments]
log +args:
    @{{boot}} log "$@"

# Run a program of the bundle on board N of the running pool, e.g. `just run 1 hello`.
run n program *args:
    {{boot}} run {{n}} {{program}} {{args}}

# Boot 4 boards, echo each from the host, print round-trip times, shut down.
ping: build
    {{boot}} ping 4 --run-dir run/ping

# Boot 3 boards: an echo server on board 0 answers a client on board 1 and the host.
rpc-demo: build
    {{boot}} rpc-demo --run-dir run/rpc-demo

# Replicated counter on 4 boards and the host: same value and order everywhere.
group-demo: build
    {{boot}} group-demo --run-dir run/group-demo

# Ordered chat on 4 boards: all send at once, every board's log is the same.
chat-demo: build
    {{boot}} chat-demo --run-dir run/chat-demo

# Kill the sequencer's board mid-stream: the group resets, goes on, loses nothing delivered.
sequencer-crash-demo: build
    {{boot}} sequencer-crash-demo --run-dir run/crash-demo

# Attach GDB to board N of the running pool.
gdb n: build
    {{boot}} gdb {{n}}

# Run every test: formatting and lints, host unit and simulation tests, and pool tests on real boards.
test: lint build
    cargo test

# Soak the nucleus: 70,000 process create/exit cycles on one board (about 2.5 minutes).
soak-nucleus: build
    cargo test -p pool-tests --test processes -- --ignored

# The whole system on 32 boards, `times` in a row: 64 `ax --detach hog`, read through `hosts` (about two minutes each; once in CI).
soak-pool times="5": build
    #!/usr/bin/env bash
    set -euo pipefail
    for run in $(seq {{times}}); do
        echo "run $run of {{times}}"
        cargo test -p pool-tests --test sessions sixty_four_detached -- --nocapture
    done

# Soak the simulations (release, niced): `seeds` per sequencer scenario and for the FLIP simulation; prints each scenario's counts and every failing seed with how to replay it.
soak seeds="1000000" threads="1":
    #!/usr/bin/env bash
    set -uo pipefail
    status=0
    SEQ_SEEDS={{seeds}} nice cargo test --release -p sequencer --test sim -- --nocapture --test-threads {{threads}} || status=1
    FLIP_SEEDS={{seeds}} nice cargo test --release -p flip --test sim simulation_seeds -- --nocapture || status=1
    exit $status

# Benchmarks (not tests): frame echo, RPC, nucleus, pool boot time, group broadcast, process creation, Bullet, directory, whole system (`just bench --only group`: that alone; `just bench --instructions`: guest instruction counts under QEMU -icount).
bench *args: build
    {{boot}} bench --run-dir run/bench {{args}}

# Formatting and lints for host crates and the aarch64 nucleus.
lint:
    cargo fmt --all --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy -p nucleus -p user-programs --target {{nucleus_target}} -- -D warnings
    cargo clippy -p amoeba-rt --target {{nucleus_target}} -- -D warnings
